#!/usr/bin/env bash
# Exports the second tiny VLM (train_second.sh) to models/tiny-llava-12, with its PyTorch accuracy
# and predictions in data/tiny-vqa/reference-12 (no single-layer sweep). Used by bench/sweep.sh
# (MODEL=models/tiny-llava-12) to check that pruning defaults hold beyond the bundled model.
set -euo pipefail
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 /usr/bin/python3 tools/tinyvlm/export.py --ckpt "${1:-tools/tinyvlm/runs/second/final.pt}" \
  --out models/tiny-llava-12 --ref data/tiny-vqa/reference-12 --quick-refs --threads 1
