"""Selection + planning in-process, with no dbt process (see bench/README.md).

    .venv/bin/python bench/bench_selection.py [--runs 30] [--work /tmp/...]

Generates the 575-node project (``gen_project.py --models 200 --layers 8``)
into ``--work`` and parses it once with ``dbt parse`` (skipped when its
manifest is already there), then times, on it and on the 1,947-node tuva
corpus manifest:

- manifest load: reading + ``json.loads`` and structuring into value
  objects, separately (``plan()`` pays it once per call);
- for each representative selection: what ``plan()`` does after the
  manifest is loaded (total): the selector's outside data (the project's file
  list), ``build_graph``, ``select`` and ``plan_build``; and ``select`` alone.

Prints medians (and the total's min) over ``--runs`` runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.selection import SelectionContext, SelectionRequest, select

REPO = Path(__file__).resolve().parents[1]
SELECTIONS_575 = {
    "whole project": SelectionRequest(),
    "tag:daily+": SelectionRequest(select="tag:daily+"),
    "+fct_0180": SelectionRequest(select="+fct_0180"),
    "path:models/staging+ --exclude": SelectionRequest(
        select="path:models/staging+", exclude="tag:hourly int03_0075+"
    ),
    "@int04_0100, cautious": SelectionRequest(select="@int04_0100", indirect_selection="cautious"),
    "config.materialized:table,tag:daily": SelectionRequest(
        select="config.materialized:table,tag:daily"
    ),
}
SELECTIONS_TUVA = {
    "whole project": SelectionRequest(),
    "tag:cms_hcc+": SelectionRequest(select="tag:cms_hcc+"),
    "+cms_hcc__patient_risk_scores": SelectionRequest(select="+cms_hcc__patient_risk_scores"),
    "path:models+ --exclude": SelectionRequest(
        select="path:models+", exclude="package:elementary tag:dqi"
    ),
    "@core__member_months": SelectionRequest(select="@core__member_months"),
    "tag:dqi,tag:tuva_dqi_sev_5": SelectionRequest(select="tag:dqi,tag:tuva_dqi_sev_5"),
}


def corpus_dir() -> Path:
    override = os.environ.get("DBT_CORPUS_DIR")
    for candidate in (Path(override) if override else None, REPO.parent / "shared" / "corpus"):
        if candidate is not None and (candidate / "tuva" / "manifest.json").is_file():
            return candidate
    return Path("/work/shared/corpus")


def generated_project(work: Path, models: int, layers: int) -> Path:
    """The generated project, parsed by dbt once (reused when its manifest exists)."""
    project = work / f"p{models}"
    if (project / "target" / "manifest.json").is_file():
        return project
    script = corpus_dir().parent / "bench" / "gen_project.py"
    subprocess.run(
        [sys.executable, str(script), "--models", str(models), "--layers", str(layers),
         "--tests-per-model", "2", "--seed", "42", "--out", str(project),
         "--db-path", str(project / "bench.duckdb")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run([str(dbt), "parse", "--profiles-dir", ".", "-q"], cwd=project, check=True)
    return project


def timed(runs: int, work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Median and min milliseconds of ``work()`` over ``runs`` runs (after one warm-up)."""
    result = work()
    samples = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), result


def plan_once(
    manifest: Manifest, request: SelectionRequest, context: Callable[[], SelectionContext]
) -> tuple[int, int]:
    """What ``plan()`` does once the manifest is loaded; returns (selected, planned)."""
    graph = build_graph(manifest)
    selection = select(manifest, request, context())
    plan = plan_build(graph, selection.unique_ids, TestStrategy.IMMEDIATE)
    return len(selection.unique_ids), plan.node_count


def bench_project(
    label: str,
    path: Path,
    selections: dict[str, SelectionRequest],
    context: Callable[[], SelectionContext],
    runs: int,
) -> None:
    read_med, read_min, data = timed(runs, lambda: json.loads(path.read_bytes()))
    struct_med, struct_min, manifest = timed(runs, lambda: structure_manifest(data, source=label))
    count = len(manifest.all_resources())
    print(f"\n## {label}: {count} resources, {path.stat().st_size / 1e6:.1f} MB manifest")
    print(f"manifest load: read+json {read_med:.1f} ms (min {read_min:.1f}), ", end="")
    print(f"structure {struct_med:.1f} ms (min {struct_min:.1f})")
    ctx_med, ctx_min, _ = timed(runs, context)
    print(f"selection context (project file list): {ctx_med:.1f} ms (min {ctx_min:.1f})")
    header = ("selection", "selected", "planned", "select ms", "total ms", "min")
    print("{:38} {:>8} {:>8} {:>10} {:>9} {:>6}".format(*header))
    for name, request in selections.items():
        only, _, _ = timed(runs, partial(select, manifest, request, context()))
        med, low, (selected, planned) = timed(runs, partial(plan_once, manifest, request, context))
        print(f"{name:38} {selected:>8} {planned:>8} {only:>10.1f} {med:>9.1f} {low:>6.1f}")


def bench_plan_call(project: Path, runs: int) -> None:
    """``PrefectDbtOrchestrator.plan()`` end to end: manifest freshness check and
    load, selection context, graph, selection, planning (no dbt process)."""
    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator
    from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings

    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    orchestrator = PrefectDbtOrchestrator(settings=settings)
    print(f"\n## PrefectDbtOrchestrator.plan() end to end, {project.name} (load included)")
    for name, request in SELECTIONS_575.items():
        if request.exclude or request.indirect_selection != "eager":
            continue
        select_arg = " ".join(request.select) or None
        med, low, plan = timed(runs, partial(orchestrator.plan, select=select_arg))
        print(f"  {name:36} {plan.node_count:>5} nodes {med:>7.1f} ms (min {low:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dbt-orchestrator-bench-selection"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    project = generated_project(args.work, 200, 8)
    target = project / "target"
    bench_project(
        "generated 200 models",
        target / "manifest.json",
        SELECTIONS_575,
        lambda: selection_context(project, target_dir=target),
        args.runs,
    )
    files = corpus_dir() / "tuva" / "root_project_files.txt"
    bench_project(
        "tuva (corpus)",
        corpus_dir() / "tuva" / "manifest.json",
        SELECTIONS_TUVA,
        lambda: SelectionContext(root_project_files=files.read_text().split()),
        args.runs,
    )
    bench_plan_call(project, args.runs)  # last: importing Prefect slows later JSON loads


if __name__ == "__main__":
    main()
