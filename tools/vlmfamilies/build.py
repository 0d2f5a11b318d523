"""Build the miniature SmolVLM (Idefics3-style) and Gemma 3-style packages and their PyTorch
references.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/vlmfamilies/build.py [--family smolvlm|gemma3|all]

Writes models/tiny-<family>/ in the transformers.js layout (config.json, generation_config.json,
preprocessor_config.json, processor_config.json, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, chat_template.jinja; onnx/vision_encoder.onnx, onnx/embed_tokens.onnx,
onnx/decoder_model_merged.onnx with past_key_values.{i}.key/value -> present.{i}.key/value) and
data/tiny-vqa/reference/<family>.json: for a few evaluation items the prompt, the token ids,
the last-position logits with several sets of decoder layers skipped, and greedy answers.
Prompts and pixels are built here independently of transformers.js (own tokenizer, own
image splitting), so the TypeScript tests compare two implementations.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models as M  # noqa: E402
from models import C  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OPSET = 14
SEED = {"smolvlm": 11, "gemma3": 13, "llava_onevision": 17}
SKIP_SETS = [[], [3], [7], [0], [2, 5], [1, 4, 6]]
GREEDY_SKIPS = [[], [2, 5]]
MAX_NEW = 4
WORDS = list(dict.fromkeys(C.WORDS))  # the tiny VQA's words, as in the bundled LLaVA

# ----------------------------------------------------------------------------- families
SMOLVLM = {
    "family": "smolvlm",
    "specials": ["<unk>", "<|im_start|>", "<end_of_utterance>", "<pad>", "<image>", "<fake_token_around_image>",
                 "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)],
    "words": ["User", "Assistant"] + WORDS,
    "bos": "<|im_start|>", "eos": "<end_of_utterance>", "pad": "<pad>", "unk": "<unk>",
    "add_bos": False,
    "frame": 32, "image_longest_edge": 64, "image_seq_len": 16, "scale_factor": 2,
    "vision": {"hidden_size": 32, "heads": 2, "intermediate_size": 64, "layers": 2, "image_size": 32,
               "patch_size": 4},
    "text": {"hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "intermediate_size": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "max_position_embeddings": 512},
    # The template loops over content lists, as SmolVLM's does (string content is not iterable there).
    "chat_template": (
        "<|im_start|>{% for message in messages %}"
        "{% if message['role'] == 'user' %}User:{% else %}Assistant:{% endif %}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<image>{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif %}"
        "{% endfor %}<end_of_utterance>\n{% endfor %}"
        "{% if add_generation_prompt %}Assistant:{% endif %}"),
}
GEMMA3 = {
    "family": "gemma3",
    "specials": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                 "<end_of_image>", "<image_soft_token>"],
    "words": ["user", "model"] + WORDS,
    "bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "unk": "<unk>",
    "add_bos": True,
    "image": 64, "mm_tokens_per_image": 16,
    "vision": {"hidden_size": 32, "heads": 2, "intermediate_size": 64, "layers": 2, "image_size": 64,
               "patch_size": 8, "layer_norm_eps": 1e-6},
    "text": {"hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "intermediate_size": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "rope_local_base_freq": 10000.0, "query_pre_attn_scalar": 16, "sliding_window": 512,
             "sliding_window_pattern": 4, "max_position_embeddings": 512},
    "chat_template": (
        "{% for message in messages %}<start_of_turn>"
        "{% if message['role'] == 'assistant' %}model{% else %}{{ message['role'] }}{% endif %}{{ '\\n' }}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
}
ONEVISION = {
    "family": "llava_onevision",
    "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
    "words": ["user", "assistant"] + WORDS,
    "bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|endoftext|>", "unk": "<|endoftext|>",
    "add_bos": False,
    # A 64x64 image as a 2x2 grid of 32x32 tiles plus the base view, 16 tokens each (patch 8):
    # 16 base + 8 rows x (8 + image_newline) = 88 image tokens.
    "image": 64, "patch_size": 8,
    "vision": {"hidden_size": 32, "heads": 2, "intermediate_size": 64, "layers": 2, "image_size": 32,
               "patch_size": 8},
    "text": {"hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "intermediate_size": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "max_position_embeddings": 512},
    # Loops over content lists, as OneVision's template does; the image first, then the text.
    "chat_template": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}{{ '\\n' }}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<image>{{ '\\n' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}<|im_end|>{{ '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"),
}
ONEVISION["image_tokens"] = (ONEVISION["image"] // 2 // ONEVISION["patch_size"]) ** 2 + \
    (ONEVISION["image"] // ONEVISION["patch_size"]) * (ONEVISION["image"] // ONEVISION["patch_size"] + 1)

GEMMA3["text"]["layer_types"] = [
    "full_attention" if (i + 1) % GEMMA3["text"]["sliding_window_pattern"] == 0 else "sliding_attention"
    for i in range(GEMMA3["text"]["num_hidden_layers"])]


class Vocab:
    """Word-level tokenizer: special tokens split first, then the Whitespace pre-tokenizer
    (regex \\w+|[^\\w\\s]+), then a lookup; the same algorithm tokenizer.json describes."""

    def __init__(self, fam):
        self.fam = fam
        self.ids = {}
        for t in fam["specials"] + fam["words"]:
            self.ids.setdefault(t, len(self.ids))
        self.tokens = {i: t for t, i in self.ids.items()}
        import re
        self.special_re = re.compile("(" + "|".join(re.escape(t) for t in fam["specials"]) + ")")
        self.word_re = re.compile(r"\w+|[^\w\s]+", re.ASCII)

    def __getitem__(self, t):
        return self.ids[t]

    def encode(self, text, special=True):
        out = [self.ids[self.fam["bos"]]] if self.fam["add_bos"] and special else []
        for part in self.special_re.split(text):
            if part in self.fam["specials"]:
                out.append(self.ids[part])
            elif part:
                out += [self.ids.get(w, self.ids[self.fam["unk"]]) for w in self.word_re.findall(part)]
        return out


def tokenizer_json(fam, vocab):
    bos = fam["bos"]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in fam["specials"]],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}},
        } if fam["add_bos"] else None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab.ids, "unk_token": fam["unk"]},
    }


# ----------------------------------------------------------------------------- prompts, pixels
def chat_prompt(fam, question):
    """What the chat template renders for [image, question] + the generation prompt."""
    if fam["family"] == "smolvlm":
        return "<|im_start|>User:<image> " + question + "<end_of_utterance>\nAssistant:"
    if fam["family"] == "llava_onevision":
        return "<|im_start|>user\n<image>\n" + question + "<|im_end|>\n<|im_start|>assistant\n"
    return "<start_of_turn>user\n<start_of_image>" + question + "<end_of_turn>\n<start_of_turn>model\n"


def expand_prompt(fam, prompt, rows=0, cols=0):
    """The processor's image-token expansion (Idefics3: tiles row by row, each behind its
    <row_r_col_c>, then the global image; Gemma 3: <start_of_image> -> the full image block)."""
    if fam["family"] == "llava_onevision":
        return prompt.replace("<image>", "<image>" * fam["image_tokens"])
    if fam["family"] == "gemma3":
        block = "\n\n<start_of_image>" + "<image_soft_token>" * fam["mm_tokens_per_image"] + "<end_of_image>\n\n"
        return prompt.replace("<start_of_image>", block)
    n, fake, img = fam["image_seq_len"], "<fake_token_around_image>", "<image>"
    s = ""
    for r in range(rows):
        for c in range(cols):
            s += f"{fake}<row_{r + 1}_col_{c + 1}>" + img * n
        s += "\n"
    s += f"\n{fake}<global-img>" + img * n + fake
    return prompt.replace("<image>", s)


def normalized(img):
    a = np.asarray(img.convert("RGB"), dtype=np.float32) * np.float32(1 / 255)
    return torch.from_numpy(((a - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1).copy())


def smolvlm_pixels(fam, img):
    """[1, frames, 3, f, f] and its mask: the image (64x64, already a multiple of the frame size)
    cut into rows x cols frames, then the whole image resized to one frame (bilinear,
    half-pixel centres), as Idefics3's image splitting does."""
    x = normalized(img)
    f = fam["frame"]
    _, H, W = x.shape
    assert H == W == fam["image_longest_edge"], "the tiny VQA images are 64x64"
    rows, cols = H // f, W // f
    frames = [x[:, r * f:(r + 1) * f, c * f:(c + 1) * f] for r in range(rows) for c in range(cols)]
    frames.append(F.interpolate(x[None], size=(f, f), mode="bilinear", align_corners=False)[0])
    pv = torch.stack(frames)[None]
    return pv, torch.ones(1, pv.shape[1], f, f, dtype=torch.bool), rows, cols


def model_inputs(fam, vocab, img, question):
    """(prompt, input ids, pixel tensors) for one image and question."""
    prompt = chat_prompt(fam, question)
    if fam["family"] == "smolvlm":
        pv, pm, rows, cols = smolvlm_pixels(fam, img)
        return prompt, vocab.encode(expand_prompt(fam, prompt, rows, cols)), (pv, pm)
    if fam["family"] == "llava_onevision":
        assert img.size == (fam["image"], fam["image"]), "the tiny VQA images are 64x64"
    return prompt, vocab.encode(expand_prompt(fam, prompt)), (normalized(img)[None],)


# ----------------------------------------------------------------------------- export
class DecoderExport(nn.Module):
    """The decoder as transformers.js calls it: no token_type_ids (its Gemma 3 class passes none)."""

    def __init__(self, model, n):
        super().__init__()
        self.m, self.n = model, n

    def forward(self, inputs_embeds, attention_mask, position_ids, *rest):
        past = [(rest[2 * i], rest[2 * i + 1]) for i in range(self.n)]
        logits, presents = self.m.decode(inputs_embeds, attention_mask, position_ids, past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


class Fn(nn.Module):
    """Exports `f`, a method of `owner` (registered so its weights become initializers)."""

    def __init__(self, owner, f):
        super().__init__()
        self.owner, self.f = owner, f

    def forward(self, *a):
        return self.f(*a)


def export(model, fam, onnx_dir):
    import onnx
    os.makedirs(onnx_dir, exist_ok=True)
    t = fam["text"]
    dyn_ids = {0: "batch_size", 1: "sequence_length"}
    if fam["family"] == "smolvlm":
        f = fam["frame"]
        pv = torch.randn(1, 3, 3, f, f)
        pm = torch.ones(1, 3, f, f, dtype=torch.bool)
        torch.onnx.export(Fn(model.vision, model.vision), (pv, pm), os.path.join(onnx_dir, "vision_encoder.onnx"),
                          input_names=["pixel_values", "pixel_attention_mask"], output_names=["image_features"],
                          dynamic_axes={"pixel_values": {0: "batch_size", 1: "num_images"},
                                        "pixel_attention_mask": {0: "batch_size", 1: "num_images"},
                                        "image_features": {0: "batch_size_x_num_images"}},
                          opset_version=OPSET, do_constant_folding=True)
        embed = model.model.embed_tokens
    elif fam["family"] == "llava_onevision":
        s = fam["image"]
        torch.onnx.export(Fn(model.vision, model.vision), (torch.randn(2, 3, s, s),), os.path.join(onnx_dir, "vision_encoder.onnx"),
                          input_names=["pixel_values"], output_names=["image_features"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size_x_image_tokens"}},
                          opset_version=OPSET, do_constant_folding=True)
        embed = model.model.embed_tokens
    else:
        s = fam["image"]
        torch.onnx.export(Fn(model.vision, model.vision), (torch.randn(2, 3, s, s),), os.path.join(onnx_dir, "vision_encoder.onnx"),
                          input_names=["pixel_values"], output_names=["image_features"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}},
                          opset_version=OPSET, do_constant_folding=True)
        embed = model.model.scaled_embed
    torch.onnx.export(Fn(model.model, embed), (torch.tensor([[1, 5, 6]]),), os.path.join(onnx_dir, "embed_tokens.onnx"),
                      input_names=["input_ids"], output_names=["inputs_embeds"],
                      dynamic_axes={"input_ids": dyn_ids, "inputs_embeds": dyn_ids},
                      opset_version=OPSET, do_constant_folding=True)
    B, S, P = 1, 3, 2
    args = [torch.randn(B, S, t["hidden_size"]), torch.ones(B, P + S, dtype=torch.long),
            torch.arange(P, P + S)[None]]
    names = ["inputs_embeds", "attention_mask", "position_ids"]
    dyn = {"inputs_embeds": dyn_ids, "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "position_ids": dyn_ids, "logits": dyn_ids}
    outs = ["logits"]
    for i in range(t["num_hidden_layers"]):
        for kv in ("key", "value"):
            args.append(torch.randn(B, t["num_key_value_heads"], P, t["head_dim"]))
            names.append(f"past_key_values.{i}.{kv}")
            outs.append(f"present.{i}.{kv}")
            dyn[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    path = os.path.join(onnx_dir, "decoder_model_merged.onnx")
    torch.onnx.export(DecoderExport(model, t["num_hidden_layers"]), tuple(args), path,
                      input_names=names, output_names=outs, dynamic_axes=dyn,
                      opset_version=OPSET, do_constant_folding=True)
    for f in sorted(os.listdir(onnx_dir)):
        onnx.checker.check_model(onnx.load(os.path.join(onnx_dir, f)))


# ----------------------------------------------------------------------------- package files
def write_package(fam, vocab, out):
    j = lambda name, obj: json.dump(obj, open(os.path.join(out, name), "w"), indent=2)  # noqa: E731
    t, v = fam["text"], fam["vision"]
    ids = {k: vocab[fam[k]] for k in ("bos", "eos", "pad")}
    common_text = {
        "vocab_size": len(vocab.ids), "hidden_size": t["hidden_size"], "intermediate_size": t["intermediate_size"],
        "num_hidden_layers": t["num_hidden_layers"], "num_attention_heads": t["num_attention_heads"],
        "num_key_value_heads": t["num_key_value_heads"], "head_dim": t["head_dim"],
        "rms_norm_eps": t["rms_norm_eps"], "rope_theta": t["rope_theta"],
        "max_position_embeddings": t["max_position_embeddings"], "attention_bias": False,
        "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"], "torch_dtype": "float32",
    }
    if fam["family"] == "smolvlm":
        config = {
            "architectures": ["SmolVLMForConditionalGeneration"], "model_type": "smolvlm",
            "image_token_id": vocab["<image>"], "scale_factor": fam["scale_factor"],
            "text_config": {**common_text, "model_type": "llama", "architectures": ["LlamaForCausalLM"],
                            "hidden_act": "silu", "mlp_bias": False, "tie_word_embeddings": False},
            "vision_config": {"model_type": "smolvlm_vision", "hidden_size": v["hidden_size"],
                              "intermediate_size": v["intermediate_size"], "num_hidden_layers": v["layers"],
                              "num_attention_heads": v["heads"], "image_size": v["image_size"],
                              "patch_size": v["patch_size"], "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
                              "layer_norm_eps": 1e-6},
            "tie_word_embeddings": False,
        }
        pre = {"image_processor_type": "Idefics3ImageProcessor", "processor_class": "Idefics3Processor",
               "do_convert_rgb": True, "do_resize": True, "size": {"longest_edge": fam["image_longest_edge"]},
               "resample": 1, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_pad": False,
               "do_image_splitting": True, "max_image_size": {"longest_edge": fam["frame"]}}
        proc = {"processor_class": "Idefics3Processor", "image_seq_len": fam["image_seq_len"]}
        extra_tok = {}
    elif fam["family"] == "llava_onevision":
        p = fam["patch_size"]
        config = {
            "architectures": ["LlavaOnevisionForConditionalGeneration"], "model_type": "llava_onevision",
            "image_token_index": vocab["<image>"], "vision_feature_select_strategy": "full",
            "vision_feature_layer": -1, "vision_aspect_ratio": "anyres_max_9",
            "image_grid_pinpoints": [[fam["image"], fam["image"]]], "projector_hidden_act": "gelu",
            "text_config": {**common_text, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                            "hidden_act": "silu", "tie_word_embeddings": False},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": v["hidden_size"],
                              "intermediate_size": v["intermediate_size"], "num_hidden_layers": v["layers"],
                              "num_attention_heads": v["heads"], "image_size": v["image_size"],
                              "patch_size": v["patch_size"], "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
                              "layer_norm_eps": 1e-6, "vision_use_head": False},
            "tie_word_embeddings": False,
        }
        # transformers.js has no OneVision processor: LLaVA's expands <image> into
        # (64/8)^2 + num_additional_image_tokens tokens, which is OneVision's count for this grid.
        pre = {"image_processor_type": "LlavaOnevisionImageProcessor", "processor_class": "LlavaProcessor",
               "do_convert_rgb": True, "do_resize": True, "size": {"shortest_edge": fam["image"]}, "resample": 3,
               "do_center_crop": True, "crop_size": {"height": fam["image"], "width": fam["image"]},
               "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
               "image_grid_pinpoints": [[fam["image"], fam["image"]]]}
        proc = {"processor_class": "LlavaProcessor", "image_token": "<image>", "patch_size": p,
                "num_additional_image_tokens": fam["image_tokens"] - (fam["image"] // p) ** 2,
                "vision_feature_select_strategy": "full"}
        extra_tok = {}
    else:
        config = {
            "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "image_token_index": vocab["<image_soft_token>"], "boi_token_index": vocab["<start_of_image>"],
            "eoi_token_index": vocab["<end_of_image>"], "mm_tokens_per_image": fam["mm_tokens_per_image"],
            "text_config": {**common_text, "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
                            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": t["query_pre_attn_scalar"],
                            "rope_local_base_freq": t["rope_local_base_freq"], "sliding_window": t["sliding_window"],
                            "layer_types": t["layer_types"],
                            "attn_logit_softcapping": None, "final_logit_softcapping": None,
                            "tie_word_embeddings": True},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": v["hidden_size"],
                              "intermediate_size": v["intermediate_size"], "num_hidden_layers": v["layers"],
                              "num_attention_heads": v["heads"], "image_size": v["image_size"],
                              "patch_size": v["patch_size"], "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
                              "layer_norm_eps": v["layer_norm_eps"], "vision_use_head": False},
            "tie_word_embeddings": True,
        }
        pre = {"image_processor_type": "Gemma3ImageProcessor", "processor_class": "Gemma3Processor",
               "do_convert_rgb": True, "do_resize": True, "size": {"height": fam["image"], "width": fam["image"]},
               "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_pan_and_scan": False,
               "image_seq_length": fam["mm_tokens_per_image"]}
        proc = {"processor_class": "Gemma3Processor", "image_seq_length": fam["mm_tokens_per_image"]}
        extra_tok = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
        with open(os.path.join(out, "chat_template.jinja"), "w") as fh:
            fh.write(fam["chat_template"])
    config.update({"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
                   "torch_dtype": "float32", "transformers_version": "4.53.0",
                   "transformers.js_config": {"dtype": "fp32", "use_external_data_format": False}})
    j("config.json", config)
    j("generation_config.json", {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
                                 "do_sample": False, "max_new_tokens": MAX_NEW})
    j("preprocessor_config.json", pre)
    j("processor_config.json", proc)
    j("tokenizer.json", tokenizer_json(fam, vocab))
    specials_extra = [s for s in fam["specials"] if s not in (fam["bos"], fam["eos"], fam["pad"], fam["unk"])]
    j("special_tokens_map.json", {"bos_token": fam["bos"], "eos_token": fam["eos"], "pad_token": fam["pad"],
                                  "unk_token": fam["unk"], "additional_special_tokens": specials_extra})
    j("tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": fam["add_bos"], "add_eos_token": False,
        "bos_token": fam["bos"], "eos_token": fam["eos"], "pad_token": fam["pad"], "unk_token": fam["unk"],
        "additional_special_tokens": specials_extra,
        "added_tokens_decoder": {str(vocab[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                                 "single_word": False, "special": True} for s in fam["specials"]},
        "clean_up_tokenization_spaces": True, "model_max_length": fam["text"]["max_position_embeddings"],
        "padding_side": "left", "processor_class": proc["processor_class"], "chat_template": fam["chat_template"],
        **extra_tok,
    })


# ----------------------------------------------------------------------------- references
@torch.no_grad()
def greedy(model, ids, pix, eos, skip, **kw):
    """Greedy decoding by full recomputation (no cache): an independent path from the cached
    generation transformers.js does."""
    out = []
    cur = list(ids)
    for _ in range(MAX_NEW):
        nxt = int(model(torch.tensor([cur]), *pix, skip=skip, **kw)[0, -1].argmax())
        out.append(nxt)
        if nxt == eos:
            break
        cur.append(nxt)
    return out


@torch.no_grad()
def references(model, fam, vocab, n_per_family=1):
    base = os.path.join(ROOT, "data", "tiny-vqa")
    recs = [json.loads(line) for line in open(os.path.join(base, "eval.jsonl"))]
    picked, seen = [], {}
    for r in recs:
        if seen.get(r["family"], 0) < n_per_family:
            seen[r["family"]] = seen.get(r["family"], 0) + 1
            picked.append(r)
    samples = []
    for r in picked:
        prompt, ids, pix = model_inputs(fam, vocab, Image.open(os.path.join(base, r["image"])), r["question"])
        item = {"id": r["id"], "family": r["family"], "image": r["image"], "question": r["question"],
                "prompt": prompt, "input_ids": ids, "skips": [], "greedy": []}
        for skip in SKIP_SETS:
            logits = model(torch.tensor([ids]), *pix, skip=skip)[0, -1]
            item["skips"].append({"skip": skip, "logits_f32": [float(x) for x in logits]})
        for skip in GREEDY_SKIPS:
            item["greedy"].append({"skip": skip, "tokens": greedy(model, ids, pix, vocab[fam["eos"]], skip)})
        if fam["family"] == "gemma3":
            # The same prompt with image tokens attending to each other both ways, as Hugging
            # Face's Gemma 3 does when token_type_ids are given (transformers.js passes none).
            bi = model(torch.tensor([ids]), *pix, bidirectional=True)[0, -1]
            item["bidirectional"] = {"skip": [], "logits_f32": [float(x) for x in bi]}
        samples.append(item)
    return samples


def make_model(fam):
    """(model with seeded random weights, vocab, fam with the vocabulary size filled in)."""
    torch.manual_seed(0)
    vocab = Vocab(fam)
    fam = {**fam, "text": {**fam["text"], "vocab_size": len(vocab.ids)}}
    if fam["family"] == "smolvlm":
        cfg = {"vision": fam["vision"], "text": fam["text"], "scale_factor": fam["scale_factor"],
               "image_token_id": vocab["<image>"]}
        model = M.TinySmolVlm(cfg)
        M.randomize(model, SEED["smolvlm"], {"lm_head": 0.5})
    elif fam["family"] == "llava_onevision":
        cfg = {"vision": fam["vision"], "text": fam["text"], "image_token_id": vocab["<image>"]}
        model = M.TinyOneVision(cfg)
        M.randomize(model, SEED["llava_onevision"], {"lm_head": 0.5})
    else:
        cfg = {"vision": fam["vision"], "text": fam["text"], "mm_tokens_per_image": fam["mm_tokens_per_image"],
               "image_token_index": vocab["<image_soft_token>"]}
        model = M.TinyGemma3(cfg)
        M.randomize(model, SEED["gemma3"], {"embed_tokens": 0.3})
    return model, vocab, fam


def build(fam, out_root, ref_dir, ckpt=None):
    model, vocab, fam = make_model(fam)
    trained = None
    if ckpt and os.path.exists(ckpt):
        st = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(st["model"])
        trained = {k: st[k] for k in ("steps", "accuracy") if k in st}
        print(f"loaded {ckpt}: {trained}")
    model.eval()
    out = os.path.join(out_root, f"tiny-{fam['family'].replace('llava_', '')}")
    os.makedirs(out, exist_ok=True)
    export(model, fam, os.path.join(out, "onnx"))
    write_package(fam, vocab, out)
    meta = {"package": os.path.relpath(out, ROOT), "seed": SEED[fam["family"]], "trained": trained, "vocab_size": len(vocab.ids),
            "eos_token_id": vocab[fam["eos"]], "max_new_tokens": MAX_NEW,
            "image_paths": "relative to data/tiny-vqa/", "skip_indices": "0-based decoder layers",
            "logits": "last prompt position, PyTorch float32, layers in `skip` bypassed"}
    os.makedirs(ref_dir, exist_ok=True)
    json.dump({**meta, "samples": references(model, fam, vocab)},
              open(os.path.join(ref_dir, f"{fam['family']}.json"), "w"))
    sizes = {f: os.path.getsize(os.path.join(out, "onnx", f)) for f in os.listdir(os.path.join(out, "onnx"))}
    print(f"{out}: {sizes}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="all", choices=["all", "smolvlm", "gemma3", "llava_onevision"])
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "data", "tiny-vqa", "reference"))
    ap.add_argument("--runs", default=os.path.join(HERE, "runs"), help="checkpoints of train.py (random weights if absent)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for fam in (SMOLVLM, GEMMA3, ONEVISION):
        if args.family in ("all", fam["family"]):
            build(fam, args.out, args.ref, os.path.join(args.runs, f"{fam['family']}.pt"))


if __name__ == "__main__":
    main()
