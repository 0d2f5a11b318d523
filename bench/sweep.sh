#!/usr/bin/env bash
# The ablation table of the README: Short-LVLM's choices against its baselines and the
# output-aware variants (issue 10) on the bundled tiny VLM, for 10-40 % of the layers removed.
# Writes bench/sweep-tiny-llava.{json,txt}. A second model: MODEL=models/tiny-llava-12 TAG=tiny-llava-12.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/tiny-llava}
tag=${TAG:-tiny-llava}
methods=${METHODS:-svl,svl-noscp,svl-ls,cosine,cosine-scp,text,visual,greedy,greedy-ls,greedy-scp,greedy-wide,greedy-wide-ls}
npm run --silent build
npm run --silent cli -- sweep "$model" \
  --calib data/tiny-vqa/calib.json --eval data/tiny-vqa/eval.jsonl \
  --ratios 0.1,0.2,0.3,0.4 --samples 128 --eval-samples 400 --methods "$methods" \
  --random-seeds "${SEEDS:-5}" --exhaustive-limit "${EXHAUSTIVE:-60}" \
  --out "bench/sweep-$tag.json" | tee "bench/sweep-$tag.txt"
