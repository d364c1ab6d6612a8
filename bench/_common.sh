# Sourced by the bench scripts: where things are, the run counts, and the
# generated project (see bench/README.md).
# Env: RUNS (default 3), WARMUP (1), SHARED (default ../shared).
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
repo=$(dirname "$here")
shared=${SHARED:-$(cd "$repo/.." && pwd)/shared}
py="$repo/.venv/bin/python"
bin="$repo/.venv/bin"
runs=${RUNS:-3}
warmup=${WARMUP:-1}

generate() {  # $1: models, $2: the project's folder (made afresh), $3: its DuckDB path
  local layers
  layers=$([ "$1" -ge 200 ] && echo 8 || echo 5)
  rm -rf "$2"
  "$py" "$shared/bench/gen_project.py" --models "$1" --layers "$layers" --tests-per-model 2 \
    --seed 42 --out "$2" --db-path "$3" > /dev/null
}
