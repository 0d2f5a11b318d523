"""Briefly train a miniature family VLM on the tiny VQA task (scenes and questions generated on
the fly by tools/tinyvlm/common.py), so that its answers depend on the image and a benchmark of
a pruned copy means something. Not meant to reach the bundled LLaVA's accuracy.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/vlmfamilies/train.py --family smolvlm [--steps 600]

Writes tools/vlmfamilies/runs/<family>.pt (git-ignored); build.py exports from it.
"""
import argparse
import json
import os
import random
import time

import torch
import torch.nn.functional as F
from PIL import Image

import build as B
from models import C


def batch(fam, vocab, rng, n):
    seqs, pix, tgt = [], [], []
    for _ in range(n):
        family = rng.choice(C.FAMILIES)
        cells, q, ans, _ = C.make_item(rng, family)
        _, ids, p = B.model_inputs(fam, vocab, C.render(cells, rng), q)
        a = vocab.encode(ans, special=False) + [vocab[fam["eos"]]]
        seqs.append(ids + a)
        tgt.append(len(ids))
        pix.append(p)
    L = max(len(s) for s in seqs)
    pad = vocab[fam["pad"]]
    ids = torch.full((n, L), pad, dtype=torch.long)
    labels = torch.full((n, L), -100, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
        labels[b, tgt[b] - 1:len(s) - 1] = torch.tensor(s[tgt[b]:])  # position t predicts token t+1
    # Right padding: causal attention keeps the real positions unaffected by the pads.
    return ids, tuple(torch.cat(x) for x in zip(*pix)), labels


@torch.no_grad()
def accuracy(model, fam, vocab, items):
    model.eval()
    right = {}
    for family, img, q, ans in items:
        _, ids, pix = B.model_inputs(fam, vocab, img, q)
        pred = int(model(torch.tensor([ids]), *pix)[0, -1].argmax())
        right.setdefault(family, []).append(pred == vocab.encode(ans, special=False)[0])
    model.train()
    return {f: sum(v) / len(v) for f, v in right.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=["smolvlm", "gemma3", "llava_onevision"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--runs", default=os.path.join(B.HERE, "runs"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    fam = {"smolvlm": B.SMOLVLM, "gemma3": B.GEMMA3, "llava_onevision": B.ONEVISION}[args.family]
    model, vocab, fam = B.make_model(fam)
    model.train()
    base = os.path.join(B.ROOT, "data", "tiny-vqa")
    recs = [json.loads(line) for line in open(os.path.join(base, "eval.jsonl"))][::5]
    held = [(r["family"], Image.open(os.path.join(base, r["image"])).convert("RGB"), r["question"], r["answer"])
            for r in recs]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    rng = random.Random(7)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        ids, pix, labels = batch(fam, vocab, rng, args.batch)
        logits = model(ids, *pix)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    acc = accuracy(model, fam, vocab, held)
    print("held-out accuracy (200 eval items):", acc, flush=True)
    os.makedirs(args.runs, exist_ok=True)
    torch.save({"model": model.state_dict(), "steps": args.steps, "accuracy": acc},
               os.path.join(args.runs, f"{args.family}.pt"))


if __name__ == "__main__":
    main()
