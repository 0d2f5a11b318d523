#!/bin/sh
# The family miniatures (tools/vlmfamilies) through the CLI: calibrate -> prune 25 % -> bench
# against the original on 200 evaluation items. Prints each family's benchmark table.
set -e
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/short-lvlm-families
rm -rf "$out" && mkdir -p "$out"
for f in smolvlm gemma3 onevision; do
  node dist/cli.js prune models/tiny-$f --calib data/tiny-vqa/calib.json --ratio 0.25 --samples 64 --method svl --out "$out/$f-r0.25" --quiet
  node dist/cli.js bench models/tiny-$f "$out/$f-r0.25" --eval data/tiny-vqa/eval.jsonl --samples 200 --no-save --quiet
done
# Gemma 3: SCP on the input side (q, k, v, gate, up), the one target its sandwich norms allow.
node dist/cli.js prune models/tiny-gemma3 --calib data/tiny-vqa/calib.json --ratio 0.25 --samples 64 --method svl --scp-target input --out "$out/gemma3-r0.25-input" --quiet
node dist/cli.js bench models/tiny-gemma3 "$out/gemma3-r0.25" "$out/gemma3-r0.25-input" --eval data/tiny-vqa/eval.jsonl --samples 200 --no-save --quiet
