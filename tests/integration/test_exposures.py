"""Exposures in a failing build: our results and run_results.json against real ``dbt build``.

``projects/tricky`` has two exposures: ``customer_dashboard`` on the model
``tricky``, ``report_dashboard`` on ``report`` and ``tricky``. The build
selects ``+exposure:customer_dashboard report exposure:report_dashboard`` on a
fresh database: the seed, ``tricky`` and its tests pass, ``report`` errors
(``orders_v2`` was never built), so dbt reports ``customer_dashboard`` as
``no-op`` and skips ``report_dashboard`` and the relationships test. Both
execution modes run through Prefect; the dbt Core executor also refuses to
hand an exposure to dbt when one reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject
from prefect_dbt_orchestrator.adapters.prefect import ExecutionMode
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeStatus
from tests.integration.conftest import as_contract, contract_statuses, copy_project, invoke_dbt
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).parent / "projects" / "tricky"
SELECT = ("+exposure:customer_dashboard", "report", "exposure:report_dashboard")
NO_OP = "exposure.tricky.customer_dashboard"
SKIPPED = "exposure.tricky.report_dashboard"
REPORT = "model.tricky.report"
# The keys of a run_results entry we write exactly as dbt does (our timing is
# one step, and our thread_id is always Thread-1).
SAME_KEYS = (
    "status", "adapter_response", "message", "failures", "unique_id", "compiled",
    "compiled_code", "relation_name", "batch_results",
)  # fmt: skip


@attrs.frozen
class Build:
    """One build's statuses (dbt's words) and its run_results.json entries by unique_id."""

    statuses: dict[str, str]
    entries: dict[str, dict[str, Any]]


def _tricky(folder: Path, patch: pytest.MonkeyPatch) -> Path:
    project = copy_project(PROJECT, folder / "tricky")
    patch.setenv("TRICKY_DUCKDB_PATH", str(folder / "tricky.duckdb"))
    return project


def _entries(project: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((project / "target" / "run_results.json").read_text(encoding="utf-8"))
    return {entry["unique_id"]: entry for entry in document["results"]}


@pytest.fixture(scope="module")
def dbt_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    """Plain ``dbt deps`` and ``dbt build`` on a copy of the project of its own."""
    with pytest.MonkeyPatch.context() as patch:
        project = _tricky(tmp_path_factory.mktemp("plain"), patch)
        location = ["--project-dir", str(project), "--profiles-dir", str(project)]
        assert invoke_dbt(["deps", *location]).success
        outcome = invoke_dbt(["build", *location, "--select", *SELECT])
        assert outcome.exception is None, outcome.exception
        statuses = {r.node.unique_id: str(r.status) for r in outcome.result.results}
        yield Build(statuses, _entries(project))


def test_the_reference_build_has_a_no_op_and_a_skipped_exposure(dbt_build: Build) -> None:
    assert dbt_build.statuses[NO_OP] == "no-op"
    assert dbt_build.statuses[SKIPPED] == "skipped"
    assert dbt_build.statuses[REPORT] == "error"


@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_our_build_reports_every_node_and_both_exposures_as_dbt_build_does(
    mode: ExecutionMode, dbt_build: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _tricky(tmp_path, monkeypatch)
    orchestrator = orchestrator_for(
        project,
        execution_mode=mode,
        raise_on_failure=False,
        write_run_results=True,
        create_summary_artifact=False,
        disable_assets=True,  # exposures are no assets; test_assets covers the events
    )

    results = in_flow(lambda: orchestrator.run_build(select=" ".join(SELECT)))

    assert contract_statuses(results) == as_contract(dbt_build.statuses)
    assert results[NO_OP]["dbt_status"] == "no-op" and results[NO_OP]["message"] == "NO-OP"
    assert "invocation" not in results[NO_OP]
    assert results[SKIPPED]["failed_upstream"] == [REPORT]
    ours = _entries(project)
    for uid in (NO_OP, SKIPPED):
        dbt = dbt_build.entries[uid]
        expected = {k: dbt[k] for k in SAME_KEYS if not (k == "message" and uid == SKIPPED)}
        assert {k: ours[uid][k] for k in expected} == expected, uid
        assert bool(ours[uid]["timing"]) == bool(dbt["timing"]), uid


def test_the_dbt_core_executor_answers_an_exposure_without_selecting_it_in_dbt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _tricky(tmp_path, monkeypatch)
    executor = DbtCoreExecutor(DbtProject(project, project))
    manifest = executor.load_manifest()
    exposure, seed = manifest.exposures[NO_OP], manifest.nodes["seed.tricky.customers"]
    options = InvocationOptions()

    executor.start_run([exposure, seed], options=options)
    try:
        wave = executor.run_wave([exposure, seed], options=options)
        alone = executor.run_node(exposure, options=options)
    finally:
        executor.finish_run()

    assert wave[NO_OP].dbt_status is alone.dbt_status is DbtStatus.NO_OP
    invocation = wave[seed.unique_id].invocation
    assert wave[seed.unique_id].status is NodeStatus.SUCCESS and invocation is not None
    assert not any("exposure" in arg for arg in invocation.args)
