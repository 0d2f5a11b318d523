#!/usr/bin/env bash
# The main job on the bundled tiny model: prune 30 % of its decoder layers with the default
# method (output-aware greedy choice, no compensation; `--method svl` is the paper's Short-LVLM
# with SCP) from the bundled calibration set, printing every layer's measured skip cost and the
# method used, then benchmark original against pruned.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npm run --silent build
out=models/tiny-llava-short-lvlm-demo
npm run --silent cli -- prune models/tiny-llava --calib data/tiny-vqa/calib.json --ratio 0.3 --out "$out" --overwrite
npm run --silent cli -- bench models/tiny-llava "$out" --eval data/tiny-vqa/eval.jsonl
echo "report: $out/short-lvlm-report.json"
