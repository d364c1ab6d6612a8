"""Time ``derive_cache_keys`` over every member of the tuva corpus manifest (not a test).

    .venv/bin/python bench/cache_keys_bench.py [--runs 5] [--project tuva] [--code-bytes N]

Loads ``<corpus>/<project>/manifest.json`` (``DBT_CORPUS_DIR``, else
``../shared/corpus`` beside the repository), runs one warm-up call, then
prints the member count and the median of ``--runs`` timed calls
(``time.perf_counter``; process CPU time beside it), in milliseconds.

The corpus blanks every ``raw_code`` and ``macro_sql``. ``--code-bytes N``
fills each with N bytes of filler SQL (with a ``var()`` and an ``env_var()``
call) to see what scanning and hashing real code adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment, derive_cache_keys
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
ENVIRONMENT = KeyEnvironment(
    target_name="dev",
    adapter_type="duckdb",
    dbt_version="1.11.16",
    adapter_version="1.11.1",
    vars={"snapshots_enabled": True},
    packages={"dbt_utils": "1.4.1", "dbt_expectations": "0.10.9", "dbt_date": "0.17.2"},
    env={"USER": "bench"},
)


def find_corpus() -> Path:
    override = os.environ.get("DBT_CORPUS_DIR")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared" / "corpus", Path("/work/shared/corpus")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SystemExit("the dbt corpus was not found; set DBT_CORPUS_DIR to its path")


def fill_code(data: dict[str, Any], size: int) -> None:
    """Give every node and macro ``size`` bytes of SQL reading a var and an env var."""
    line = "select {{ var('snapshots_enabled') }}, '{{ env_var('USER') }}' as col\n"
    filler = (line * (size // len(line) + 1))[:size]
    for node in data["nodes"].values():
        node["raw_code"] = filler
    for macro in data["macros"].values():
        macro["macro_sql"] = filler


def load(project: str, code_bytes: int) -> Manifest:
    path = find_corpus() / project / "manifest.json"
    data = json.loads(path.read_text())
    if code_bytes:
        fill_code(data, code_bytes)
    return structure_manifest(data, source=str(path))


def time_keys(manifest: Manifest, runs: int) -> tuple[int, float, float]:
    """The member count and the median wall and CPU milliseconds of ``runs`` calls after
    a warm-up (CPU time shows how much of the wall time other processes took)."""
    ids = list(manifest.all_resources())
    derive_cache_keys(manifest, ids, ENVIRONMENT)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        derive_cache_keys(manifest, ids, ENVIRONMENT)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return len(ids), statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--project", default="tuva")
    parser.add_argument("--code-bytes", type=int, default=0)
    args = parser.parse_args()
    count, median, cpu = time_keys(load(args.project, args.code_bytes), args.runs)
    code = f", {args.code_bytes} B of code per node and macro" if args.code_bytes else ""
    print(f"{args.project}: {count} nodes{code}")
    print(f"derive_cache_keys, median of {args.runs} runs: {median:.1f} ms (CPU {cpu:.1f} ms)")


if __name__ == "__main__":
    main()
