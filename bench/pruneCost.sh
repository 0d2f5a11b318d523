#!/usr/bin/env bash
# Prune time of the default method (greedy + least squares) against the paper's (svl + SCP) on
# the bundled model at 30 %, all 320 calibration samples, with the stage timings and the
# trials' cost in forward-pass equivalents per calibration sample (from each report).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || npm run --silent build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in svl greedy; do
  node "${CLI:-dist/cli.js}" prune models/tiny-llava --calib data/tiny-vqa/calib.json --ratio 0.3 \
    --method "$m" --out "$tmp/$m" --json --quiet > "$tmp/$m.json"
done
node -e '
const fs = require("fs");
const dir = process.argv[1];
const rows = [["method", "removed", "total s", "calibrate", "skip cost", "select", "compensate", "write", "trials", "fwd-pass eq./sample"]];
for (const m of ["svl", "greedy"]) {
  const s = JSON.parse(fs.readFileSync(`${dir}/${m}.json`, "utf8"));
  const r = JSON.parse(fs.readFileSync(s.report, "utf8"));
  const t = r.timings;
  const f = (x) => (x === undefined ? "-" : x.toFixed(1));
  rows.push([`${m} + ${s.compensation}`, s.removed.join(","), f(s.seconds), f(t.calibrateSeconds), f(t.skipCostSeconds), f(t.selectSeconds), f(t.compensateSeconds), f(t.writeSeconds), String(r.measurement?.trials ?? "-"), f(r.measurement?.forwardPassesPerSample)]);
}
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) console.log(r.map((c, i) => c.padStart(w[i])).join("  "));
' "$tmp"
