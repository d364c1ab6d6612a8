"""``run_build(retry_failed=True)`` and ``dbt-orchestrate retry``: only what failed runs again.

The demo project with ``fail_model`` on: ``fct_rides`` errors and its nine
descendants are skipped (``RETRIED``). The previous run is either ours
(``write_run_results=True``) or plain ``dbt build``'s; real ``dbt retry``
on the same file is the reference for what runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dbt.task.retry import RETRYABLE_STATUSES
from prefect import flow

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.retry import RETRY_STATUSES, PreviousRunError
from tests.integration.conftest import DEMO_NODE_COUNT, copy_project, invoke_dbt
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration

FAIL = ["--vars", "{fail_model: true}"]
FIX = ["--vars", "{fail_model: false}"]
RETRIED = SKIPPED_WHEN_FCT_RIDES_FAILS | {FAILING_MODEL}


def _orchestrator(project: Path, mode: str = "per_wave") -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    return PrefectDbtOrchestrator(
        settings=settings, execution_mode=mode, write_run_results=True,
        raise_on_failure=False, create_summary_artifact=False,
    )  # fmt: skip


def _ran(results: dict[str, dict[str, Any]]) -> set[str]:
    return {uid for uid, r in results.items() if not r.get("carried_over")}


def test_our_retry_statuses_are_dbt_s() -> None:
    assert {s.value for s in RETRY_STATUSES} == {str(s) for s in RETRYABLE_STATUSES}


@pytest.mark.parametrize("mode", ["per_node", "per_wave"])
def test_retry_failed_runs_exactly_the_failed_and_skipped_nodes(
    demo_project: Path, mode: str
) -> None:
    orchestrator = _orchestrator(demo_project, mode)

    @flow(name="retry-failed-test")
    def build_then_retry() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        first = orchestrator.run_build(extra_cli_args=FAIL)
        fixed = orchestrator.run_build(retry_failed=True, extra_cli_args=FIX)
        again = orchestrator.run_build(retry_failed=True, extra_cli_args=FIX)
        return first, fixed, again

    first, fixed, again = build_then_retry()

    assert {uid for uid, r in first.items() if r["status"] in ("error", "skipped")} == RETRIED
    # Only the ten ran again, and passed; every other result is the first run's, marked so
    assert _ran(fixed) == RETRIED
    assert len(fixed) == DEMO_NODE_COUNT
    assert {fixed[uid]["status"] for uid in RETRIED} == {"success"}
    for uid in set(first) - RETRIED:
        assert fixed[uid]["carried_over"] is True
        assert fixed[uid]["status"] == first[uid]["status"]
        assert fixed[uid]["timing"] == first[uid]["timing"]
    # The retry wrote run_results.json with everything: a second retry has nothing to do
    assert _ran(again) == set()
    assert {r["status"] for r in again.values()} == {"success"}


def test_retry_failed_on_plain_dbt_s_results_replays_its_vars_as_dbt_retry_does(
    demo_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = ["--project-dir", str(demo_project), "--profiles-dir", str(demo_project)]
    invoke_dbt(["build", *location, *FAIL])
    previous = (demo_project / "target" / "run_results.json").read_text(encoding="utf-8")
    # The reference: real `dbt retry` on a copy of the project and of its database
    reference = copy_project(demo_project, tmp_path / "reference")
    (reference / "target").mkdir()
    (reference / "target" / "run_results.json").write_text(previous, encoding="utf-8")
    database = os.environ["DEMO_DUCKDB_PATH"]
    shutil.copyfile(database, tmp_path / "reference.duckdb")
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "reference.duckdb"))
    invoke_dbt(["retry", "--project-dir", str(reference), "--profiles-dir", str(reference)])
    theirs = json.loads((reference / "target" / "run_results.json").read_text(encoding="utf-8"))
    monkeypatch.setenv("DEMO_DUCKDB_PATH", database)

    @flow(name="retry-plain-dbt-test")
    def retry() -> dict[str, Any]:
        return _orchestrator(demo_project).run_build(retry_failed=True)

    ours = retry()

    dbt_ran = {entry["unique_id"]: entry["status"] for entry in theirs["results"]}
    assert set(dbt_ran) == RETRIED
    assert _ran(ours) == set(dbt_ran)
    # The recorded {fail_model: true} was replayed: fct_rides fails again, as in dbt retry
    assert ours[FAILING_MODEL]["status"] == "error" and dbt_ran[FAILING_MODEL] == "error"
    assert {ours[uid]["status"] for uid in SKIPPED_WHEN_FCT_RIDES_FAILS} == {"skipped"}


def test_retry_without_a_previous_run_or_with_a_selection_is_refused(demo_project: Path) -> None:
    orchestrator = _orchestrator(demo_project)
    with pytest.raises(PreviousRunError, match="run_results.json: there is no such file"):
        orchestrator.run_build(retry_failed=True)
    (demo_project / "target").mkdir(exist_ok=True)
    (demo_project / "target" / "run_results.json").write_text('{"results": 3}', encoding="utf-8")
    with pytest.raises(PreviousRunError, match="not a run_results.json"):
        orchestrator.run_build(retry_failed=True)
    with pytest.raises(OptionsConflictError, match="select was given too"):
        orchestrator.run_build(select="stg_users", retry_failed=True)


def test_the_cli_retry_command_reruns_what_failed(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env |= {"PREFECT_API_URL": prefect_api_url, "DEMO_DUCKDB_PATH": str(tmp_path / "cli.duckdb")}
    location = ["--project-dir", str(demo_project), "--profiles-dir", str(demo_project)]

    def cli(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        line = [sys.executable, "-m", "prefect_dbt_orchestrator.adapters.cli.main", command]
        return subprocess.run(
            [*line, *location, *args], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    out = tmp_path / "results.json"
    failed = cli("build", "--write-run-results", *FAIL)
    assert failed.returncode == 1, failed.stderr[-3000:]
    refused = cli("retry", "--select", "stg_users")
    assert refused.returncode == 2 and "--select" in refused.stderr

    fixed = cli("retry", "--mode", "per-node", "--results-json", str(out), *FIX)

    assert fixed.returncode == 0, fixed.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert len(results) == DEMO_NODE_COUNT
    assert _ran(results) == RETRIED
