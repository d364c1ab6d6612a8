#!/usr/bin/env bash
# Paired whole-process benchmarks against plain `dbt build` (see bench/README.md).
#   bench/run_bench.sh [MODELS...]          default: 50 200
# Env: RUNS (default 3), WARMUP (1), MODES (default "per-wave per-node:1 per-node:4"),
#      SHARED (default ../shared), PREFECT_API_URL (a running server; unset = temporary server).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
modes=${MODES:-"per-wave per-node:1 per-node:4"}
work=${BENCH_WORK:-/tmp/dbt-orchestrator-bench}
mkdir -p "$work"
for models in "${@:-50 200}"; do
  for n in $models; do
    for copy in ours theirs; do
      dir="$work/p$n-$copy"
      generate "$n" "$dir" "$dir/bench.duckdb"
      (cd "$dir" && "$bin/dbt" parse --profiles-dir . -q > /dev/null)
    done
    for mode in $modes; do
      kind=${mode%%:*}; conc=${mode#*:}; [ "$conc" = "$mode" ] && conc=""
      ours=("$bin/dbt-orchestrate" build --project-dir "$work/p$n-ours" --profiles-dir "$work/p$n-ours" --mode "$kind")
      [ -n "$conc" ] && ours+=(--concurrency "$conc")
      [ -n "${EXTRA:-}" ] && ours+=($EXTRA)
      echo "=== $n models, $mode ${EXTRA:-}"
      "$py" "$shared/bench/paired_timer.py" -n "$runs" --warmup "$warmup" \
        --vs "sh -c 'cd $work/p$n-theirs && exec $bin/dbt build --profiles-dir .'" -- "${ours[@]}"
    done
  done
done
