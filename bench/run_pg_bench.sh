#!/usr/bin/env bash
# PER_NODE on PostgreSQL, paired against plain `dbt build --threads 4` on the same server,
# on each task runner (see bench/README.md).
#   bench/run_pg_bench.sh [MODELS...]        default: 200
# Env: RUNS (default 3), WARMUP (1), RUNNERS (default "thread process:4 dask:4"),
#      CONCURRENCY (4), SHARED (../shared), PREFECT_API_URL (a running server; unset =
#      temporary server), PG_DIR (scripts/postgres --dir; default: its own, stopped at the end).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
runners=${RUNNERS:-"thread process:4 dask:4"}
concurrency=${CONCURRENCY:-4}
work=${BENCH_WORK:-/tmp/dbt-orchestrator-pg-bench}
pg_dir=${PG_DIR:-$work/postgres}
mkdir -p "$work"
started_here=""
if ! "$repo/scripts/postgres" --dir "$pg_dir" status > /dev/null 2>&1; then
  started_here=1
fi
eval "$("$repo/scripts/postgres" --dir "$pg_dir" start | grep '^PG[A-Z]*=' | sed 's/^/export /')"
[ -n "$started_here" ] && trap '"$repo/scripts/postgres" --dir "$pg_dir" stop > /dev/null' EXIT

write_profile() {  # $1: project dir, $2: schema
  cat > "$1/profiles.yml" <<PROFILE
bench:
  target: dev
  outputs:
    dev:
      type: postgres
      host: $PGHOST
      port: $PGPORT
      user: $PGUSER
      password: ""
      dbname: $PGDATABASE
      schema: $2
      threads: 4
PROFILE
}

for n in "${@:-200}"; do
  for copy in ours theirs; do
    dir="$work/p$n-$copy"
    generate "$n" "$dir" "$dir/unused.duckdb"
    write_profile "$dir" "bench_${n}_$copy"
    # the generator's source lives in DuckDB's schema `main`: on PostgreSQL, the seed's schema
    sed -i "s/^    schema: main$/    schema: bench_${n}_$copy/" "$dir/models/staging/_sources.yml"
    (cd "$dir" && "$bin/dbt" parse --profiles-dir . -q > /dev/null)
  done
  for runner in $runners; do
    ours=("$bin/dbt-orchestrate" build --project-dir "$work/p$n-ours" --profiles-dir "$work/p$n-ours"
          --mode per-node --concurrency "$concurrency" --task-runner "$runner")
    echo "=== $n models, PER_NODE concurrency $concurrency, --task-runner $runner"
    "$py" "$shared/bench/paired_timer.py" -n "$runs" --warmup "$warmup" \
      --vs "sh -c 'cd $work/p$n-theirs && exec $bin/dbt build --profiles-dir . --threads 4'" \
      -- "${ours[@]}"
    # one more run, its log kept: each worker's session-open time
    "${ours[@]}" > "$work/last-$runner.log" 2>&1 || true
    grep -o "opened its dbt session for this build in [0-9.]* s" "$work/last-$runner.log" \
      | awk '{s+=$(NF-1); n++} END {if (n) printf "session opens: %d, mean %.2f s\n", n, s/n}' \
      || true
  done
done
