"""Train the tiny LLaVA-style VLM on procedurally generated VQA (generated on the fly).

    /usr/bin/python3 tools/tinyvlm/train.py --out tools/tinyvlm/runs/full

Writes <out>/train.log (also stdout), <out>/ckpt.pt (latest, every --save-every steps)
and <out>/final.pt. Per-family eval accuracy (greedy first token) every --eval-every steps.
"""
import argparse
import json
import math
import os

# Measured on the 2-core machines (batch 24): 2 spinning OpenMP threads 1.1 s/step on an idle
# machine, 1 thread 2.0 s/step; but spinning threads slow down 10x when another process
# shares the cores, so there use `OMP_WAIT_POLICY=PASSIVE ... --threads 1`. Set before torch
# is imported. OpenBLAS stays single-threaded (torch parallelises around it).
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAMILY_WEIGHTS = {"pope": 0.35, "mcq": 0.2, "count": 0.25, "attr": 0.2}


def load_eval(path, limit=None):
    base = os.path.dirname(path)
    recs = [json.loads(l) for l in open(path)]
    if limit:
        # keep the first `limit` of each family
        per = {}
        out = []
        for r in recs:
            per[r["family"]] = per.get(r["family"], 0) + 1
            if per[r["family"]] <= limit:
                out.append(r)
        recs = out
    imgs = [C.preprocess(Image.open(os.path.join(base, r["image"]))) for r in recs]
    return recs, imgs


@torch.no_grad()
def evaluate(model, recs, imgs, skip=(), bs=100):
    model.eval()
    correct = {}
    total = {}
    preds = []
    for i in range(0, len(recs), bs):
        chunk = recs[i:i + bs]
        items = [(C.prompt_ids(r["question"]), []) for r in chunk]
        L = max(len(p) for p, _ in items)
        B = len(items)
        # left-pad so the last position is the prediction position for all
        ids = torch.full((B, L), C.PAD_ID, dtype=torch.long)
        am = torch.zeros((B, L), dtype=torch.long)
        for b, (p, _) in enumerate(items):
            ids[b, L - len(p):] = torch.tensor(p)
            am[b, L - len(p):] = 1
        pv = torch.from_numpy(np.stack(imgs[i:i + bs]))
        logits = model(ids, pv, attention_mask=am, skip=skip)[:, -1]
        pred = logits.argmax(-1).tolist()
        for r, t in zip(chunk, pred):
            word = C.ID_TO_TOKEN[t]
            ok = word.lower() == r["answer"].lower()
            f = r["family"]
            correct[f] = correct.get(f, 0) + int(ok)
            total[f] = total.get(f, 0) + 1
            preds.append(word)
    model.train()
    acc = {f: correct[f] / total[f] for f in total}
    acc["mean"] = sum(correct.values()) / sum(total.values())
    return acc, preds


def make_batch(rng, bs, extra_turns=0, caption_p=0.0):
    """First turn from make_item (the eval distribution); then up to `extra_turns` more
    questions about the same image (LLaVA-665k style multi-turn conversations), and with
    probability caption_p a "What is in the image?" turn answered by a short description."""
    fams = list(FAMILY_WEIGHTS)
    w = [FAMILY_WEIGHTS[f] for f in fams]
    items, imgs = [], []
    for _ in range(bs):
        fam = rng.choices(fams, w)[0]
        cells, q, a, _ = C.make_item(rng, fam)
        imgs.append(C.preprocess(C.render(cells, rng)))
        if extra_turns == 0 and caption_p == 0:
            items.append((C.prompt_ids(q), C.answer_ids(a)))
            continue
        turns = [(q, a)]
        extra = [("caption" if rng.random() < caption_p else None)] + \
            [rng.choices(fams, w)[0] for _ in range(rng.randint(0, extra_turns))]
        rng.shuffle(extra)
        for f in extra:
            if f is None:
                continue
            qa = C.question_for_scene(rng, cells, f)
            if qa is not None:
                turns.append(qa)
        items.append(C.multiturn_ids(turns))
    return C.collate(items, imgs)


def _cell_of_patch():
    """Index (0..3, row-major 2x2) of the grid cell each patch (8x8 grid, row-major) lies in."""
    g = C.IMAGE_SIZE // C.PATCH
    return np.array([(p // g) // (g // 2) * 2 + (p % g) // (g // 2) for p in range(C.N_PATCHES)],
                    dtype=np.int64)


CELL_OF_PATCH = _cell_of_patch()


def cell_labels(cells):
    """Per patch labels of the object in its grid cell: colour idx and shape idx, 4 = empty."""
    col = np.zeros(C.N_PATCHES, dtype=np.int64)
    shp = np.zeros(C.N_PATCHES, dtype=np.int64)
    for p, cell in enumerate(CELL_OF_PATCH):
        obj = cells[cell]
        col[p] = 4 if obj is None else C.COLOUR_NAMES.index(obj[1])
        shp[p] = 4 if obj is None else C.SHAPES.index(obj[0])
    return col, shp


def pretrain_vision(model, rng, steps, bs, lr, log):
    """Stage 1 (stands in for LLaVA's pretrained CLIP encoder): train the ViT alone so that
    every patch token linearly encodes the colour and shape of the object in its grid cell, and
    which cell it lies in (the decoder sees image tokens at prompt-dependent distances, so the
    position has to be in the features for "top left" questions). Probe heads are discarded."""
    d = model.cfg["vision_hidden_size"]
    heads = torch.nn.Linear(d, 14)
    v = model.vision
    params = [p for n, p in v.named_parameters() if not n.startswith("linear_")] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 30) * (0.5 * (1 + math.cos(math.pi * step / steps)))
        imgs, cols, shps = [], [], []
        for _ in range(bs):
            cells = C.random_scene(rng, n_objects=rng.randint(0, 4))
            imgs.append(C.preprocess(C.render(cells, rng)))
            c, s = cell_labels(cells)
            cols.append(c)
            shps.append(s)
        pv = torch.from_numpy(np.stack(imgs))
        x = v.patch_embedding(pv).flatten(2).transpose(1, 2)
        cls = v.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = v.pre_layrnorm(torch.cat([cls, x], 1) + v.position_embedding[None])
        for layer in v.layers:
            x = layer(x)
        out = heads(x[:, 1:])
        col = torch.from_numpy(np.stack(cols))
        shp = torch.from_numpy(np.stack(shps))
        lc = torch.nn.functional.cross_entropy(out[..., :5].reshape(-1, 5), col.view(-1))
        ls = torch.nn.functional.cross_entropy(out[..., 5:10].reshape(-1, 5), shp.view(-1))
        cell = torch.from_numpy(CELL_OF_PATCH).expand(col.shape[0], -1)
        lp = torch.nn.functional.cross_entropy(out[..., 10:].reshape(-1, 4), cell.reshape(-1))
        loss = lc + ls + lp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 25 == 0 or step + 1 == steps:
            with torch.no_grad():
                ac = (out[..., :5].argmax(-1) == col).float().mean().item()
                ash = (out[..., 5:10].argmax(-1) == shp).float().mean().item()
            log(f"vision-pretrain step {step + 1} loss {loss.item():.4f} colour acc {ac:.3f} shape acc {ash:.3f} "
                f"elapsed {time.time() - t0:.0f}s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2600)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--head-dim", type=int, default=24)
    ap.add_argument("--inter", type=int, default=256)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-limit", type=int, default=0, help="items per family in periodic eval (0 = all)")
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--vision-pretrain-steps", type=int, default=4000)
    ap.add_argument("--vision-pretrain-batch", type=int, default=64)
    ap.add_argument("--vision-pretrain-only", action="store_true")
    ap.add_argument("--extra-turns", type=int, default=3, help="up to N more questions per image")
    ap.add_argument("--caption-p", type=float, default=0.5)
    ap.add_argument("--vision-lr-mult", type=float, default=0.3,
                    help="lr multiplier of the (pretrained) vision tower in the VLM stage")
    ap.add_argument("--shuffle-mcq", action="store_true", help="shuffle MCQ options (default: canonical order)")
    ap.add_argument("--family-weights", default="", help="e.g. pope=0.2,mcq=0.35,count=0.25,attr=0.2")
    ap.add_argument("--existence-single-p", type=float, default=0.25,
                    help="share of extra-turn existence questions about one attribute")
    ap.add_argument("--existence-colour", action="store_true",
                    help="extra-turn existence questions may ask about a colour alone")
    ap.add_argument("--stop-at", type=int, default=0, help="stop after this step (the lr schedule still spans --steps)")
    ap.add_argument("--init-scheme", default="scaled", choices=["scaled", "gpt2"])
    ap.add_argument("--init", default="", help="start from this checkpoint's weights (fresh optimizer)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    # Subnormal floats (tiny gradients/moments) run ~100x slower on x86; flush them to zero.
    torch.set_flush_denormal(True)
    C.SHUFFLE_MCQ = args.shuffle_mcq
    C.EXISTENCE_SINGLE_P = args.existence_single_p
    C.EXISTENCE_COLOUR = args.existence_colour
    if args.family_weights:
        FAMILY_WEIGHTS.clear()
        for kv in args.family_weights.split(","):
            k, v = kv.split("=")
            FAMILY_WEIGHTS[k] = float(v)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "train.log"), "a")

    def log(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    cfg = dict(C.DEFAULT_CFG)
    cfg.update(hidden_size=args.hidden, head_dim=args.head_dim, intermediate_size=args.inter,
               num_hidden_layers=args.layers)
    model = C.TinyLlava(cfg)
    C.init_weights(model, args.seed, args.init_scheme)
    n_params = sum(p.numel() for p in model.parameters())
    groups = {}
    for n, p in model.named_parameters():
        tower = n.startswith("vision.") and not n.startswith("vision.linear_")
        key = (p.dim() >= 2, tower)
        groups.setdefault(key, []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": args.wd if dec else 0.0,
                              "lr_mult": args.vision_lr_mult if tower else 1.0}
                             for (dec, tower), ps in groups.items()], lr=args.lr, betas=(0.9, 0.98))
    start = 0
    rng = random.Random(args.seed)
    ck = os.path.join(args.out, "ckpt.pt")
    if args.resume and os.path.exists(ck):
        st = torch.load(ck)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        start = st["step"]
        rng = random.Random(args.seed * 100003 + start)
        log(f"resumed from step {start}")
    if args.init and start == 0:
        model.load_state_dict(torch.load(args.init)["model"])
        args.vision_pretrain_steps = 0
        log(f"initialised from {args.init}")
    log(f"config {json.dumps(cfg)}")
    log(f"params {n_params} args {vars(args)}")

    if start == 0 and args.vision_pretrain_steps > 0:
        pretrain_vision(model, random.Random(args.seed + 1), args.vision_pretrain_steps,
                        args.vision_pretrain_batch, args.lr, log)
        if args.vision_pretrain_only:
            return
    recs, imgs = load_eval(os.path.join(ROOT, "data", "tiny-vqa", "eval.jsonl"), args.eval_limit or None)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    def save(path, step):
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cfg": cfg,
                    "args": vars(args)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    model.train()
    t0 = time.time()
    ema = None
    end = min(args.steps, args.stop_at) if args.stop_at else args.steps
    for step in range(start, end):
        for g in opt.param_groups:
            g["lr"] = lr_at(step) * g.get("lr_mult", 1.0)
        ids, am, labels, pv = make_batch(rng, args.batch, args.extra_turns, args.caption_p)
        logits = model(ids, pv, attention_mask=am)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                                                 ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if (step + 1) % 10 == 0:
            el = time.time() - t0
            log(f"step {step + 1} loss {loss.item():.4f} ema {ema:.4f} lr {lr_at(step):.2e} "
                f"elapsed {el:.0f}s ({el / (step + 1 - start):.2f}s/step)")
        if (step + 1) % args.save_every == 0:
            save(ck, step + 1)
        if (step + 1) % args.eval_every == 0 or step + 1 == end:
            te = time.time()
            acc, _ = evaluate(model, recs, imgs)
            log(f"eval step {step + 1} " + " ".join(f"{k} {v:.3f}" for k, v in acc.items())
                + f" ({time.time() - te:.0f}s)")
    save(ck, end)
    save(os.path.join(args.out, "final.pt"), end)
    log(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
