#!/usr/bin/env bash
# Reruns the training of the shipped models/tiny-llava checkpoint step for step (seed 7: same
# data stream and hyper-parameters; floating-point results may differ in the last bits, as the
# original run also switched flush-to-zero on at step 600). About 55 min on an idle 2-core
# machine; then export with
#   /usr/bin/python3 tools/tinyvlm/export.py --ckpt tools/tinyvlm/runs/shipped/final.pt
#
# It runs in segments because that is how the checkpoint was made: a training process runs
# about 2x slower after its first periodic evaluation (cause not found; a fresh process is fast
# again), so training was stopped at evaluations and resumed. A resume reseeds the data stream
# with the step it starts from, which is why the segment boundaries are part of the recipe.
# From step 1200 on, the mix leans towards existence questions: the model had answered "no" to
# every POPE item until then, and learnt them within 400 steps of the new mix.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tools/tinyvlm/runs/shipped}
train() { /usr/bin/python3 tools/tinyvlm/train.py --out "$out" --steps 2600 --batch 24 --lr 2e-3 \
  --eval-every 200 --eval-limit 100 "$@"; }
boost=(--family-weights pope=0.5,mcq=0.15,count=0.2,attr=0.15 --existence-single-p 0.5 --existence-colour)

train --threads 1 --stop-at 300                    # stage 1 (ViT) + the first 300 VLM steps
train --resume --stop-at 600
train --resume --stop-at 800
train --resume --stop-at 1200
for stop in 1400 1600 1800 2000 2200 2400 2600; do
  train --resume --stop-at "$stop" "${boost[@]}"
done
