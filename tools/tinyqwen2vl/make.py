"""Build the miniature Qwen2-VL package: seeded init, optional brief training on the tiny-vqa
task, export in the layout transformers.js' Qwen2VLForConditionalGeneration loads, and
PyTorch references (logits with and without skipped layers, greedy answers through the KV
cache with M-RoPE decoding positions).

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/tinyqwen2vl/make.py [--steps 500] \
        [--out models/tiny-qwen2vl] [--ref data/tiny-vqa/reference-qwen2vl]
"""
import argparse
import json
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

V = M.V
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "data", "tiny-vqa")
OPSET = 14
SEED = 11


# ----------------------------------------------------------------------------- training
def make_batch(rng, bs):
    seqs, patches = [], []
    for _ in range(bs):
        cells, q, ans, _ = V.make_item(rng, rng.choice(V.FAMILIES))
        p, grid = M.preprocess(V.render(cells, rng))
        prompt = M.prompt_ids(q, grid)
        answer = M.tokenize(ans) + [M.IM_END_ID]
        seqs.append((prompt, answer, grid))
        patches.append(p)
    L = max(len(p) + len(a) for p, a, _ in seqs)
    ids = torch.full((bs, L), M.PAD_ID, dtype=torch.long)
    am = torch.zeros((bs, L), dtype=torch.long)
    labels = torch.full((bs, L), -100, dtype=torch.long)
    pos = torch.zeros((3, bs, L), dtype=torch.long)
    for b, (p, a, grid) in enumerate(seqs):
        s = p + a
        ids[b, :len(s)] = torch.tensor(s)
        am[b, :len(s)] = 1
        labels[b, len(p) - 1:len(s) - 1] = torch.tensor(a)
        pos[:, b, :len(s)] = torch.from_numpy(M.rope_index(s, grid)[0])
    return ids, am, labels, pos, torch.from_numpy(np.stack(patches)), seqs[0][2]


def train(model, steps, bs=32, lr=2e-3):
    rng = random.Random(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * (1 - step / max(1, steps)))
        ids, am, labels, pos, patches, grid = make_batch(rng, bs)
        logits = model(ids, patches, grid, pos, am)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)


# ----------------------------------------------------------------------------- export
class VisionExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.visual = m.visual

    def forward(self, pixel_values, grid_thw):
        return self.visual(pixel_values, grid_thw)


class EmbedExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.embed_tokens = m.embed_tokens

    def forward(self, input_ids):
        return self.embed_tokens(input_ids)


class DecoderExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.decoder = m.decoder
        self.n = m.cfg["num_hidden_layers"]

    def forward(self, inputs_embeds, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(self.n)]
        logits, presents = self.decoder(inputs_embeds, attention_mask, position_ids, past=past)
        return tuple([logits] + [t for kv in presents for t in kv])


def export_onnx(model, out):
    cfg = model.cfg
    d = os.path.join(out, "onnx")
    os.makedirs(d, exist_ok=True)
    n, H = cfg["num_hidden_layers"], cfg["hidden_size"]
    kvh, hd = cfg["num_key_value_heads"], H // cfg["num_attention_heads"]
    grid = torch.tensor([[1, 8, 12]], dtype=torch.long)  # not the runtime grid: the graph must not bake it in
    pv = torch.randn(8 * 12, 3 * M.TEMPORAL * M.PATCH * M.PATCH)
    torch.onnx.export(VisionExport(model), (pv, grid), os.path.join(d, "vision_encoder.onnx"),
                      input_names=["pixel_values", "grid_thw"], output_names=["image_features"],
                      dynamic_axes={"pixel_values": {0: "num_patches"}, "image_features": {0: "num_features"}},
                      opset_version=OPSET, do_constant_folding=True)
    ids = torch.tensor([[2, 9, 10]], dtype=torch.long)
    torch.onnx.export(EmbedExport(model), (ids,), os.path.join(d, "embed_tokens.onnx"),
                      input_names=["input_ids"], output_names=["inputs_embeds"],
                      dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                    "inputs_embeds": {0: "batch_size", 1: "sequence_length"}},
                      opset_version=OPSET, do_constant_folding=True)
    B, S, P = 2, 3, 4
    names_in = ["inputs_embeds", "attention_mask", "position_ids"]
    names_out = ["logits"]
    dyn = {"inputs_embeds": {0: "batch_size", 1: "sequence_length"},
           "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "position_ids": {1: "batch_size", 2: "sequence_length"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    past = []
    for i in range(n):
        for kv in ("key", "value"):
            past.append(torch.randn(B, kvh, P, hd))
            names_in.append(f"past_key_values.{i}.{kv}")
            names_out.append(f"present.{i}.{kv}")
            dyn[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    pos = torch.arange(P, P + S)[None, None].repeat(3, B, 1)
    torch.onnx.export(DecoderExport(model), (torch.randn(B, S, H), torch.ones(B, P + S, dtype=torch.long), pos, *past),
                      os.path.join(d, "decoder_model_merged.onnx"), input_names=names_in, output_names=names_out,
                      dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True)
    import onnx
    for f in ("vision_encoder", "embed_tokens", "decoder_model_merged"):
        p = os.path.join(d, f + ".onnx")
        onnx.checker.check_model(onnx.load(p))
        print(f"  {os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")


def write_package(model, out):
    cfg = model.cfg
    j = lambda name, obj: json.dump(obj, open(os.path.join(out, name), "w"), indent=2)  # noqa: E731
    j("config.json", {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "vocab_size": cfg["vocab_size"], "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"], "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"], "hidden_act": "silu", "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg["rope_theta"], "max_position_embeddings": cfg["max_position_embeddings"],
        "rope_scaling": {"type": "mrope", "mrope_section": cfg["mrope_section"]},
        "tie_word_embeddings": False, "bos_token_id": None, "eos_token_id": M.IM_END_ID, "pad_token_id": M.PAD_ID,
        "image_token_id": M.IMAGE_PAD_ID, "video_token_id": M.VIDEO_PAD_ID,
        "vision_start_token_id": M.VISION_START_ID, "vision_end_token_id": M.VISION_END_ID,
        "vision_config": {"depth": cfg["vision_depth"], "embed_dim": cfg["vision_embed_dim"], "hidden_size": cfg["hidden_size"],
                          "num_heads": cfg["vision_heads"], "mlp_ratio": cfg["vision_mlp_ratio"], "in_chans": 3,
                          "patch_size": M.PATCH, "spatial_merge_size": M.MERGE, "temporal_patch_size": M.TEMPORAL},
        "torch_dtype": "float32",
        "transformers.js_config": {"dtype": "fp32", "use_external_data_format": False},
    })
    j("generation_config.json", {"eos_token_id": M.IM_END_ID, "pad_token_id": M.PAD_ID, "do_sample": False, "max_new_tokens": 4})
    j("preprocessor_config.json", {
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
        "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": M.IMAGE_MEAN, "image_std": M.IMAGE_STD, "do_convert_rgb": True,
        "min_pixels": 32 * 32, "max_pixels": 128 * 128,
        "patch_size": M.PATCH, "temporal_patch_size": M.TEMPORAL, "merge_size": M.MERGE,
    })
    j("tokenizer.json", M.tokenizer_json())
    j("tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": False,
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>",
        "additional_special_tokens": M.SPECIAL_TOKENS[2:],
        "clean_up_tokenization_spaces": True, "model_max_length": 512, "padding_side": "left",
        "processor_class": "Qwen2VLProcessor", "chat_template": M.CHAT_TEMPLATE,
    })


# ----------------------------------------------------------------------------- references
SKIP_SETS = [[], [3], [7], [0], [4, 5], [1, 6]]


def load_item(rec):
    p, grid = M.preprocess(Image.open(os.path.join(DATA, rec["image"])))
    return torch.from_numpy(p)[None], grid


@torch.no_grad()
def greedy(model, ids, patches, grid, max_new=3):
    """Greedy answer through the KV cache: decoding positions are max(prompt positions) + 1 + j."""
    pos, delta = M.rope_index(ids, grid)
    x = model.embed(torch.tensor([ids]), patches, grid)
    am = torch.ones(1, len(ids), dtype=torch.long)
    logits, past = model.decoder(x, am, torch.from_numpy(pos)[:, None])
    out = []
    for j in range(max_new):
        nxt = int(logits[0, -1].argmax())
        if nxt == M.IM_END_ID:
            break
        out.append(nxt)
        S = len(ids) + len(out)
        am = torch.ones(1, S, dtype=torch.long)
        p = torch.full((3, 1, 1), S - 1 + delta, dtype=torch.long)
        logits, past = model.decoder(model.embed_tokens(torch.tensor([[nxt]])), am, p, past=past)
    return out


@torch.no_grad()
def references(model, ref_dir, n_samples=6, n_acc=200):
    recs = [json.loads(l) for l in open(os.path.join(DATA, "eval.jsonl"))]
    by_family = {}
    for r in recs:
        by_family.setdefault(r["family"], []).append(r)
    picked = [by_family[f][i] for i in range(2) for f in sorted(by_family)][:n_samples]
    samples = []
    for r in picked:
        patches, grid = load_item(r)
        ids = M.prompt_ids(r["question"], grid)
        pos = torch.from_numpy(M.rope_index(ids, grid)[0])[:, None]
        skips = [{"skip": s, "logits_f32": model(torch.tensor([ids]), patches, grid, pos, skip=s)[0, -1].tolist()} for s in SKIP_SETS]
        samples.append({"id": r["id"], "image": r["image"], "question": r["question"], "answer": r["answer"], "family": r["family"],
                        "input_ids": ids, "position_ids": pos[:, 0].tolist(), "greedy_ids": greedy(model, ids, patches, grid), "skips": skips})
    correct = {}
    for r in [x for f in sorted(by_family) for x in by_family[f][:n_acc // len(by_family)]]:
        patches, grid = load_item(r)
        toks = greedy(model, M.prompt_ids(r["question"], grid), patches, grid)
        pred = " ".join(M.ID_TO_TOKEN[t] for t in toks).split(" ")[0].lower() if toks else ""
        c = correct.setdefault(r["family"], [0, 0])
        c[0] += pred == r["answer"].lower()
        c[1] += 1
    os.makedirs(ref_dir, exist_ok=True)
    acc = {f: c[0] / c[1] for f, c in sorted(correct.items())}
    json.dump({"model": "tiny-qwen2vl", "seed": SEED, "samples": samples}, open(os.path.join(ref_dir, "logits.json"), "w"))
    json.dump({"items": n_acc, "torch_fp32": acc}, open(os.path.join(ref_dir, "accuracy.json"), "w"), indent=1)
    print(f"accuracy on {n_acc} eval items ({n_acc // len(by_family)} per family):", acc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "tiny-qwen2vl"))
    ap.add_argument("--ref", default=os.path.join(DATA, "reference-qwen2vl"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = M.TinyQwen2VL(dict(M.DEFAULT_CFG))
    M.init_weights(model, SEED)
    if a.steps:
        model.train()
        train(model, a.steps)
    model.eval()
    tmp = a.out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    export_onnx(model, tmp)
    write_package(model, tmp)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    references(model, a.ref)


if __name__ == "__main__":
    main()
