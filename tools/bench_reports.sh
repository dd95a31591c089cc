#!/usr/bin/env bash
# Refresh the committed benchmark reports under docs/benchmarks/ in one command (run it on a quiet
# machine: nothing else running). Exports first where an export is missing (bundled model ~5 min,
# d16 20+ min on 2 CPU cores). Environment: REF / D16 export directories, D16=skip to leave d16 out,
# BENCH_ARGS extra options for both runs (e.g. "--threads 2").
#
#     tools/bench_reports.sh
set -euo pipefail
BENCH_ARGS=${BENCH_ARGS:-}
cd "$(dirname "$0")/.."
REF=${REF:-engines/nova-ref}
D16=${D16:-engines/d16}

[ -f "$REF/manifest.json" ] || nova-deploy export --out "$REF"
# shellcheck disable=SC2086
nova-deploy bench --engines "$REF" --backends torch,onnxruntime,onnxruntime-prepack \
  --policies none,nova,fastvar,fixed:nova-ref --batch 1,8 --repeat 5 --warmup 1 --memory all \
  --quality-samples 64 --name ref $BENCH_ARGS

if [ "$D16" != skip ]; then
  [ -f "$D16/manifest.json" ] || nova-deploy export --preset d16 --out "$D16"
  # shellcheck disable=SC2086
  nova-deploy bench --engines "$D16" --backends torch,onnxruntime,onnxruntime-prepack \
    --policies none,fixed:nova-ref --batch 1,8 --repeat 3 --warmup 1 --memory dense --name d16 $BENCH_ARGS
fi
