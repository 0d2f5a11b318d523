#!/usr/bin/env bash
# The ablation table of the README: Short-LVLM's choices against its baselines on the bundled
# tiny VLM, for 10-40 % of the layers removed. Writes bench/sweep-tiny-llava.{json,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
npm run --silent cli -- sweep models/tiny-llava \
  --calib data/tiny-vqa/calib.json --eval data/tiny-vqa/eval.jsonl \
  --ratios 0.1,0.2,0.3,0.4 --samples 128 --eval-samples 400 \
  --random-seeds 5 --exhaustive-limit 60 \
  --out bench/sweep-tiny-llava.json | tee bench/sweep-tiny-llava.txt
