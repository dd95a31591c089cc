#!/usr/bin/env bash
# export -> build-engines -> generate, into /out (mount it to keep the results).
set -euo pipefail
OUT=${OUT:-/out}
mkdir -p "$OUT"
nova-deploy export --out "$OUT/export" --max-batch 8
nova-deploy build-engines "$OUT/export" --library tensorrt --timing-cache "$OUT/timing.cache"
nova-deploy inspect "$OUT/export"
nova-deploy generate --engines "$OUT/export" --backend tensorrt --out "$OUT/grid.png"
