#!/usr/bin/env bash
# Refresh the committed benchmark reports under docs/benchmarks/ in one command (run it on a quiet
# machine: nothing else running). Exports first where an export is missing (2-core CPU, quiet: the
# bundled model ~2 min, d16 ~10 min). Environment: REF / D16 export directories, D16=skip to leave
# d16 out, BENCH_ARGS extra options for every run. torch-compile compiles before the timed rounds
# (minutes on 2 cores).
#
#     tools/bench_reports.sh
set -euo pipefail
BENCH_ARGS=${BENCH_ARGS:-}
cd "$(dirname "$0")/.."
REF=${REF:-engines/nova-ref}
D16=${D16:-engines/d16}

[ -f "$REF/manifest.json" ] || nova-deploy export --out "$REF"
# shellcheck disable=SC2086
nova-deploy bench --engines "$REF" --backends onnxruntime,torch,torch-compile --reference \
  --policies none,nova,fixed:nova-ref --batch 1,8 --repeat 3 --warmup 1 --memory dense \
  --quality-samples 64 --threads 2 --name ref $BENCH_ARGS

if [ "$D16" != skip ]; then
  [ -f "$D16/manifest.json" ] || nova-deploy export --preset d16 --out "$D16"
  # shellcheck disable=SC2086
  nova-deploy bench --engines "$D16" --backends onnxruntime,torch,torch-bf16 --reference \
    --policies none,fixed:nova-ref --batch 1,4,8 --repeat 2 --warmup 1 --memory off --quality-samples 0 \
    --threads 2 --name d16 $BENCH_ARGS
  # shellcheck disable=SC2086
  nova-deploy bench --engines "$D16" --backends onnxruntime,onnxruntime-prepack,torch --no-reference \
    --policies none --batch 1 --repeat 1 --warmup 0 --memory dense --threads 2 --name d16-memory $BENCH_ARGS
fi
