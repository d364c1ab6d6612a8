"""``run_build(retry_failed=True)``: run again only what failed in the previous run.

The previous run is the target dir's ``run_results.json``: ours (written with
``write_run_results=True``) or plain dbt's. Its failed and skipped nodes run
again with its recorded flags (``--full-refresh``, ``--target``, ``--vars``)
unless the call gives its own; every other result is carried over.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prefect_dbt_orchestrator.adapters.local.run_results_file import FILE_NAME, read_run_results
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.retry import PreviousRun
from prefect_dbt_orchestrator.domain.selection import SelectionRequest


def previous_run(target_dir: Path, request: SelectionRequest, only_fresh: bool) -> PreviousRun:
    """The run a retry repeats the failures of.

    Raises:
        OptionsConflictError: a selection was given too (a retry's is the previous run's).
        PreviousRunError: no usable ``run_results.json`` in ``target_dir``.
    """
    given = [
        flag
        for flag, value in (
            ("select", request.select),
            ("exclude", request.exclude),
            ("selector", request.selector),
            ("resource_types", request.resource_types),
            ("exclude_resource_types", request.exclude_resource_types),
            ("only_fresh_sources", only_fresh),
        )
        if value
    ]
    if request.indirect_selection != "eager":
        given.append("indirect_selection")
    if given:
        raise OptionsConflictError(
            f"retry_failed=True runs the failed and skipped nodes of the previous run, "
            f"but {', '.join(given)} was given too",
            "drop it (the retry keeps the previous run's selection), or drop retry_failed",
        )
    return read_run_results(Path(target_dir) / FILE_NAME)


def with_carried_over(
    results: Mapping[str, NodeResult], previous: PreviousRun | None
) -> dict[str, NodeResult]:
    """The retry's results plus the previous run's untouched ones (marked carried over)."""
    if previous is None:
        return dict(results)
    return {**previous.carried_over(), **results}


def recorded_nodes(build_plan: BuildPlan, results: Mapping[str, NodeResult]) -> Mapping[str, Node]:
    """The graph member of every result (carried-over ones too) for run_results.json."""
    if build_plan.manifest is None:
        return build_plan.nodes
    members = build_plan.manifest.all_resources()
    return {uid: members[uid] for uid in results if uid in members}
