"""Generate data/tiny-vqa/: eval.jsonl (250 items per family), calib.json (320 LLaVA
conversations from the training distribution) and their PNG images.

    /usr/bin/python3 tools/tinyvlm/gen_data.py [--out data/tiny-vqa]

Seeds: eval 1001, calibration 2002 (training draws on the fly from seed 7 + step).
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FAMILIES, make_item, render  # noqa: E402

EVAL_SEED = 1001
CALIB_SEED = 2002
EVAL_PER_FAMILY = 250
N_CALIB = 320


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "data", "tiny-vqa"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    img_dir = os.path.join(out, "images")
    os.makedirs(img_dir, exist_ok=True)

    rng = random.Random(EVAL_SEED)
    lines = []
    n = 0
    for fam in FAMILIES:
        for k in range(EVAL_PER_FAMILY):
            cells, q, a, choices = make_item(rng, fam)
            name = f"eval_{n:04d}.png"
            render(cells, rng).save(os.path.join(img_dir, name), optimize=True)
            rec = {"id": f"{fam}-{k:03d}", "image": f"images/{name}", "question": q, "answer": a}
            if choices is not None:
                rec["choices"] = choices
            rec["family"] = fam
            lines.append(rec)
            n += 1
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")

    rng = random.Random(CALIB_SEED)
    calib = []
    for k in range(N_CALIB):
        fam = FAMILIES[k % len(FAMILIES)]
        cells, q, a, _ = make_item(rng, fam)
        name = f"calib_{k:04d}.png"
        render(cells, rng).save(os.path.join(img_dir, name), optimize=True)
        calib.append({
            "id": f"calib-{k:04d}",
            "image": f"images/{name}",
            "conversations": [
                {"from": "human", "value": "<image>\n" + q},
                {"from": "gpt", "value": a},
            ],
        })
    with open(os.path.join(out, "calib.json"), "w") as f:
        json.dump(calib, f, indent=1)
    print(f"wrote {len(lines)} eval items, {len(calib)} calibration samples to {out}")


if __name__ == "__main__":
    main()
