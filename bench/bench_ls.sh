#!/usr/bin/env bash
# Paired whole-process timing: `dbt-orchestrate ls` against `dbt ls` on the
# generated 575-node project, manifest (and dbt's partial-parse file) present
# for both (see bench/README.md, "Selection and planning").
#   bench/bench_ls.sh [SELECT...]      default: no --select (the whole project)
# Env: RUNS (default 10), WARMUP (1), OUTPUT (selector), SHARED (../shared),
#      BENCH_WORK (/tmp/dbt-orchestrator-bench-ls), BENCH_TIMER (paired_timer.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
shared=${SHARED:-$(cd "$repo/.." && pwd)/shared}
py="$repo/.venv/bin/python"
bin="$repo/.venv/bin"
timer=${BENCH_TIMER:-$shared/bench/paired_timer.py}
work=${BENCH_WORK:-/tmp/dbt-orchestrator-bench-ls}
output=${OUTPUT:-selector}
select=()
[ $# -gt 0 ] && select=(--select "$@")
mkdir -p "$work"
for copy in ours theirs; do
  dir="$work/p200-$copy"
  if [ ! -f "$dir/target/manifest.json" ]; then
    rm -rf "$dir"
    "$py" "$shared/bench/gen_project.py" --models 200 --layers 8 --tests-per-model 2 \
      --seed 42 --out "$dir" --db-path "$dir/bench.duckdb" > /dev/null
    (cd "$dir" && "$bin/dbt" parse --profiles-dir . -q > /dev/null)
  fi
done
ours="$work/p200-ours"
theirs="$work/p200-theirs"
# Same stdout from both, checked once before timing.
diff <(cd "$ours" && "$bin/dbt-orchestrate" ls --output "$output" "${select[@]}") \
     <(cd "$theirs" && "$bin/dbt" ls --profiles-dir . -q --output "$output" "${select[@]}") \
  > /dev/null && echo "same output: yes" || echo "same output: NO (see diff of the two commands)"
echo "=== dbt-orchestrate ls (A) vs dbt ls (B), 575 nodes, --output $output ${select[*]}"
"$py" "$timer" -n "${RUNS:-10}" --warmup "${WARMUP:-1}" \
  --vs "sh -c 'cd $theirs && exec $bin/dbt ls --profiles-dir . -q --output $output ${select[*]}'" \
  -- sh -c "cd $ours && exec $bin/dbt-orchestrate ls --output $output ${select[*]}"
