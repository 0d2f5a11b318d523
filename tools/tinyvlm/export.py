"""Export a trained checkpoint to a transformers.js / Optimum-style LLaVA package and write
reference files.

    /usr/bin/python3 tools/tinyvlm/export.py --ckpt tools/tinyvlm/runs/full/final.pt \
        [--out models/tiny-llava] [--ref data/tiny-vqa/reference] [--no-refs] [--quick-refs]

Writes <out>/onnx/{vision_encoder,embed_tokens,decoder_model_merged}.onnx, config.json,
generation_config.json, preprocessor_config.json, processor_config.json, tokenizer.json,
tokenizer_config.json, special_tokens_map.json; and <ref>/{logits,layer_cosine,
single_layer_skip_accuracy,accuracy}.json (computed with PyTorch).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
from train import evaluate, load_eval  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OPSET = 14
SKIP_SETS = [[], [8], [15], [0], [9, 10], [3, 7, 12]]


# ----------------------------------------------------------------------------- ONNX wrappers
class VisionExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.vision = m.vision

    def forward(self, pixel_values):
        return self.vision(pixel_values)


class EmbedExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.embed_tokens = m.model.embed_tokens

    def forward(self, input_ids):
        return self.embed_tokens(input_ids)


class DecoderExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.model = m.model
        self.lm_head = m.lm_head
        self.n = m.cfg["num_hidden_layers"]

    def forward(self, inputs_embeds, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(self.n)]
        h, presents = self.model(inputs_embeds, attention_mask, position_ids, past=past)
        out = [self.lm_head(h)]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def export_onnx(model, out_dir):
    cfg = model.cfg
    onnx_dir = os.path.join(out_dir, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    n, kvh, hd, H = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["hidden_size"]

    pv = torch.randn(2, 3, C.IMAGE_SIZE, C.IMAGE_SIZE)
    torch.onnx.export(VisionExport(model), (pv,), os.path.join(onnx_dir, "vision_encoder.onnx"),
                      input_names=["pixel_values"], output_names=["image_features"],
                      dynamic_axes={"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}},
                      opset_version=OPSET, do_constant_folding=True)

    ids = torch.tensor([[1, 5, 6], [1, 7, 8]], dtype=torch.long)
    torch.onnx.export(EmbedExport(model), (ids,), os.path.join(onnx_dir, "embed_tokens.onnx"),
                      input_names=["input_ids"], output_names=["inputs_embeds"],
                      dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                    "inputs_embeds": {0: "batch_size", 1: "sequence_length"}},
                      opset_version=OPSET, do_constant_folding=True)

    B, S, P = 2, 3, 4
    emb = torch.randn(B, S, H)
    am = torch.ones(B, P + S, dtype=torch.long)
    pos = torch.arange(P, P + S, dtype=torch.long)[None].repeat(B, 1)
    past = []
    in_names = ["inputs_embeds", "attention_mask", "position_ids"]
    out_names = ["logits"]
    dyn = {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
           "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "position_ids": {0: "batch_size", 1: "sequence_length"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(n):
        for kv in ("key", "value"):
            past.append(torch.randn(B, kvh, P, hd))
            in_names.append(f"past_key_values.{i}.{kv}")
            out_names.append(f"present.{i}.{kv}")
            dyn[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    torch.onnx.export(DecoderExport(model), (emb, am, pos, *past),
                      os.path.join(onnx_dir, "decoder_model_merged.onnx"),
                      input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                      opset_version=OPSET, do_constant_folding=True)
    import onnx
    for f in ("vision_encoder", "embed_tokens", "decoder_model_merged"):
        p = os.path.join(onnx_dir, f + ".onnx")
        onnx.checker.check_model(onnx.load(p))
        print(f"  {p}: {os.path.getsize(p)} bytes")


# ----------------------------------------------------------------------------- package files
def tokenizer_json():
    added = [{"id": C.VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in C.SPECIAL_TOKENS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [C.BOS_ID], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": C.VOCAB, "unk_token": "<unk>"},
    }


def write_package(model, out_dir):
    cfg = model.cfg
    j = lambda name, obj: json.dump(obj, open(os.path.join(out_dir, name), "w"), indent=2)  # noqa: E731
    text_config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": cfg["vocab_size"],
        "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"],
        "head_dim": cfg["head_dim"],
        "hidden_act": "silu",
        "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg["rope_theta"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": C.BOS_ID,
        "eos_token_id": C.EOS_ID,
        "pad_token_id": C.PAD_ID,
        "torch_dtype": "float32",
    }
    vision_config = {
        "model_type": "clip_vision_model",
        "hidden_size": cfg["vision_hidden_size"],
        "intermediate_size": cfg["vision_intermediate_size"],
        "num_hidden_layers": cfg["vision_layers"],
        "num_attention_heads": cfg["vision_heads"],
        "image_size": C.IMAGE_SIZE,
        "patch_size": C.PATCH,
        "num_channels": 3,
        "hidden_act": "gelu",
        "layer_norm_eps": cfg["layer_norm_eps"],
        "projection_dim": cfg["hidden_size"],
    }
    j("config.json", {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": C.IMAGE_ID,
        "image_seq_length": C.N_PATCHES,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
        "text_config": text_config,
        "vision_config": vision_config,
        "bos_token_id": C.BOS_ID,
        "eos_token_id": C.EOS_ID,
        "pad_token_id": C.PAD_ID,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.46.0",
        "transformers.js_config": {"dtype": "fp32", "use_external_data_format": False},
    })
    j("generation_config.json", {
        "bos_token_id": C.BOS_ID, "eos_token_id": C.EOS_ID, "pad_token_id": C.PAD_ID,
        "do_sample": False, "max_new_tokens": 4,
    })
    j("preprocessor_config.json", {
        "image_processor_type": "CLIPImageProcessor",
        "processor_class": "LlavaProcessor",
        "do_resize": True,
        "size": {"shortest_edge": C.IMAGE_SIZE},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": C.IMAGE_SIZE, "width": C.IMAGE_SIZE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": C.IMAGE_MEAN,
        "image_std": C.IMAGE_STD,
        "do_convert_rgb": True,
    })
    # transformers.js 4.3.1 LlavaProcessor expands <image> into
    # (H/patch)*(W/patch) + num_additional_image_tokens tokens and does not subtract the CLS
    # token for the "default" strategy; 0 gives exactly the 64 features the encoder returns.
    j("processor_config.json", {
        "processor_class": "LlavaProcessor",
        "image_token": "<image>",
        "patch_size": C.PATCH,
        "num_additional_image_tokens": 0,
        "vision_feature_select_strategy": "default",
    })
    j("tokenizer.json", tokenizer_json())
    j("special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                                  "unk_token": "<unk>", "additional_special_tokens": ["<image>"]})
    j("tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "additional_special_tokens": ["<image>"],
        "added_tokens_decoder": {str(C.VOCAB[t]): {"content": t, "lstrip": False, "normalized": False,
                                                   "rstrip": False, "single_word": False, "special": True}
                                 for t in C.SPECIAL_TOKENS},
        "clean_up_tokenization_spaces": True,
        "model_max_length": cfg["max_position_embeddings"],
        "padding_side": "left",
        "processor_class": "LlavaProcessor",
        "chat_template": C.CHAT_TEMPLATE,
    })


# ----------------------------------------------------------------------------- references
def load_image(rel, base):
    return C.preprocess(Image.open(os.path.join(base, rel)))


@torch.no_grad()
def ref_logits(model, model64, recs, base):
    out = []
    for r in recs:
        ids = C.prompt_ids(r["question"])
        pv = torch.from_numpy(load_image(r["image"], base))[None]
        ans = C.answer_ids(r["answer"])[0]
        item = {"id": r["id"], "family": r["family"], "image": r["image"], "question": r["question"],
                "answer": r["answer"], "prompt": C.prompt_text(r["question"]), "input_ids": ids,
                "num_image_tokens": ids.count(C.IMAGE_ID), "next_token_id": ans, "skips": []}
        t = torch.tensor([ids])
        t2 = torch.tensor([ids + [ans]])
        for skip in SKIP_SETS:
            l32 = model(t, pv, skip=skip)[0, -1]
            l64 = model64(t, pv.double(), skip=skip)[0, -1]
            n32 = model(t2, pv, skip=skip)[0, -1]
            top = torch.topk(l32, 20)
            item["skips"].append({
                "skip": skip,
                "logits_f32": [float(x) for x in l32],
                "logits_f64": [float(x) for x in l64],
                "top20_ids": top.indices.tolist(),
                "top20_logits": [float(x) for x in top.values],
                "argmax": int(l32.argmax()),
                "argmax_token": C.ID_TO_TOKEN[int(l32.argmax())],
                # logits at the next position after appending next_token_id (a generation step)
                "next_logits_f32": [float(x) for x in n32],
            })
        out.append(item)
    return out


@torch.no_grad()
def ref_layer_cosine(model64, recs, base):
    n = model64.cfg["num_hidden_layers"]
    samples = []
    for r in recs:
        ids = C.prompt_ids(r["question"])
        pv = torch.from_numpy(load_image(r["image"], base))[None].double()
        cos = [None] * n

        def hook(i, x_in, x_out, probs):
            c = torch.nn.functional.cosine_similarity(x_in[0], x_out[0], dim=-1)  # per token
            cos[i] = float(c.mean())

        model64(torch.tensor([ids]), pv, hooks=hook)
        samples.append({"id": r["id"], "image": r["image"], "question": r["question"],
                        "num_tokens": len(ids), "cosine": cos})
    mean = [float(np.mean([s["cosine"][i] for s in samples])) for i in range(n)]
    return {"description": "cosine(input residual, output residual) per decoder layer, averaged over all "
                           "tokens of the prompt (input_ids after image-token expansion, no answer), "
                           "float64 PyTorch", "samples": samples, "mean": mean}


def tokenizer_cases(recs):
    """Strings with their Python token ids (add_special_tokens: <s> prepended), for checking
    that transformers.js tokenizes identically."""
    cases = []
    texts = ["yes", "A", "Is there a red circle in the image?", "purple unicorns: 3!", "USER:\nASSISTANT:",
             "<image>\nWhat colour is the circle?", "  spaced\n\n out  ", "</s>"]
    for t in texts:
        cases.append({"text": t, "ids": C.tokenize(t), "decoded": C.decode(C.tokenize(t))})
    for r in recs:
        p = C.prompt_text(r["question"])
        cases.append({"text": p, "ids": C.tokenize(p), "question": r["question"], "prompt": p})
        e = C.expand_image_token(p)
        cases.append({"text": e, "ids": C.tokenize(e), "decoded": C.decode(C.tokenize(e))})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "tools", "tinyvlm", "runs", "full", "final.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "tiny-llava"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "data", "tiny-vqa", "reference"))
    ap.add_argument("--no-refs", action="store_true")
    ap.add_argument("--quick-refs", action="store_true", help="skip the single-layer-skip accuracy sweep")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    st = torch.load(args.ckpt, map_location="cpu")
    cfg = st["cfg"]
    model = C.TinyLlava(cfg)
    model.load_state_dict(st["model"])
    model.eval()
    print(f"loaded {args.ckpt} (step {st['step']})")

    os.makedirs(args.out, exist_ok=True)
    export_onnx(model, args.out)
    write_package(model, args.out)
    print(f"package written to {args.out}")
    if args.no_refs:
        return

    os.makedirs(args.ref, exist_ok=True)
    model64 = C.TinyLlava(cfg).double()
    model64.load_state_dict({k: v.double() for k, v in st["model"].items()})
    model64.eval()
    eval_path = os.path.join(ROOT, "data", "tiny-vqa", "eval.jsonl")
    base = os.path.dirname(eval_path)
    recs = [json.loads(l) for l in open(eval_path)]
    by_fam = {}
    for r in recs:
        by_fam.setdefault(r["family"], []).append(r)
    meta = {"checkpoint_step": st["step"], "eval": "data/tiny-vqa/eval.jsonl",
            "image_paths": "relative to data/tiny-vqa/", "skip_indices": "0-based decoder layers"}

    json.dump(tokenizer_cases([by_fam[f][i] for f in C.FAMILIES for i in range(3)]),
              open(os.path.join(args.ref, "tokenizer_cases.json"), "w"), indent=1)
    t = time.time()
    sel = [by_fam[f][0] for f in C.FAMILIES]
    json.dump({**meta, "vocab_size": cfg["vocab_size"], "samples": ref_logits(model, model64, sel, base)},
              open(os.path.join(args.ref, "logits.json"), "w"))
    sel16 = [by_fam[f][i] for f in C.FAMILIES for i in range(4)]
    json.dump({**meta, **ref_layer_cosine(model64, sel16, base)},
              open(os.path.join(args.ref, "layer_cosine.json"), "w"), indent=1)
    print(f"logits/cosine refs in {time.time() - t:.0f}s")
    recs, imgs = load_eval(eval_path)
    t = time.time()
    full, preds = evaluate(model, recs, imgs)
    acc_path = os.path.join(args.ref, "accuracy.json")
    old = json.load(open(acc_path)) if os.path.exists(acc_path) else {}
    acc = {**meta, "metric": "greedy first token == answer (case-insensitive), prompt from the chat template",
           "n_per_family": {f: len(by_fam[f]) for f in C.FAMILIES},
           "torch_fp32": {k: round(v, 4) for k, v in full.items()}}
    if "onnx" in old and old.get("checkpoint_step") == st["step"]:
        acc["onnx"] = old["onnx"]
    json.dump(acc, open(acc_path, "w"), indent=1)
    print("full model accuracy", full, f"({time.time() - t:.0f}s)")
    json.dump({**meta, "description": "greedy first token of the full model (PyTorch fp32) per eval item",
               "predictions": {r["id"]: p for r, p in zip(recs, preds)}},
              open(os.path.join(args.ref, "predictions.json"), "w"), indent=0)
    if args.quick_refs:
        return
    res = {**meta, "metric": acc["metric"], "full": {k: round(v, 4) for k, v in full.items()}, "skip_one": []}
    for i in range(cfg["num_hidden_layers"]):
        a, _ = evaluate(model, recs, imgs, skip=(i,))
        res["skip_one"].append({"layer": i, **{k: round(v, 4) for k, v in a.items()}})
        print(f"skip {i}: " + " ".join(f"{k} {v:.3f}" for k, v in a.items()), flush=True)
    json.dump(res, open(os.path.join(args.ref, "single_layer_skip_accuracy.json"), "w"), indent=1)
    print(f"done in {time.time() - t:.0f}s")


if __name__ == "__main__":
    main()
