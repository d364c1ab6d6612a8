"""Our run_results.json, judged by dbt itself: its classes read it, its JSON
schema accepts it, and real ``dbt retry`` re-runs exactly what failed.

The demo project with ``fail_model`` on: ``fct_rides`` errors and its nine
descendants are skipped. The build runs on ``DbtCoreExecutor`` with the
Prefect-free thread driver; the reference is plain ``dbt build`` on another
copy of the project.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import jsonschema  # type: ignore[import-untyped]
import pytest
from dbt.artifacts.schemas.run import RunResultsArtifact
from dbt.clients.yaml_helper import load_yaml_text
from dbt.task.retry import RETRYABLE_STATUSES
from dbt.version import __version__ as dbt_version
from prefect import flow

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject
from prefect_dbt_orchestrator.adapters.local.run_results_file import write_run_results
from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    NodeResult,
    NodeStatus,
    Timing,
    skipped,
)
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.redaction import REDACTED, build_secrets
from prefect_dbt_orchestrator.domain.run_results import build_args, run_results_document
from prefect_dbt_orchestrator.domain.selection.request import SelectionRequest
from tests.integration.conftest import DEMO_NODE_COUNT, copy_project, invoke_dbt
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration

FAIL_VARS = ("--vars", "{fail_model: true}")
RETRIED = SKIPPED_WHEN_FCT_RIDES_FAILS | {FAILING_MODEL}
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
TIMING = Timing(NOW, NOW + dt.timedelta(seconds=2))


@attrs.frozen
class Build:
    """One orchestrated build and the run_results.json written for it."""

    project: Path
    results: dict[str, NodeResult]
    document: dict[str, Any]
    path: Path


def _build(project: Path, extra_args: tuple[str, ...]) -> Build:
    """Build ``project`` node by node, then write our run_results.json into its target dir."""
    executor = DbtCoreExecutor(DbtProject(project, project))
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    graph = build_graph(executor.load_manifest(fresh=True, extra_args=extra_args))
    plan = plan_build(graph, graph.members)
    nodes = {uid: graph.members[uid] for uid in plan.nodes}
    options = InvocationOptions(extra_args=extra_args)
    results = ThreadPoolDriver(executor, max_workers=4).run(plan, nodes, options)
    document = _document(project, results, nodes, options, time.monotonic() - clock, started)
    path = project / "target" / "run_results.json"
    write_run_results(path, document)
    return Build(project, results, document, path)


def _document(
    project: Path,
    results: dict[str, NodeResult],
    nodes: dict[str, Node],
    options: InvocationOptions,
    elapsed: float,
    started: dt.datetime,
) -> dict[str, Any]:
    """What the orchestrator's wiring does: the vars as dbt parses them, the
    build's secrets, the args, the document."""
    texts = [options.extra_args[i + 1] for i, a in enumerate(options.extra_args) if a == "--vars"]
    cli_vars = load_yaml_text(texts[-1]) if texts else None
    secrets = build_secrets(os.environ, options.extra_args, [cli_vars] if cli_vars else [])
    args = build_args(
        command="build", selection=SelectionRequest(), invocation=options,
        project_dir=project, profiles_dir=project, target_path=project / "target",
        secrets=secrets, cli_vars=cli_vars,
    )  # fmt: skip
    return run_results_document(
        results, args=args, dbt_version=dbt_version, invocation_id=str(uuid.uuid4()),
        generated_at=started + dt.timedelta(seconds=elapsed), elapsed_time=elapsed,
        nodes=nodes, secrets=secrets,
    )  # fmt: skip


def _retry(project: Path, *args: str) -> dict[str, str]:
    """Real ``dbt retry`` on ``project``; the status of every node it re-ran,
    read from the run_results.json it wrote."""
    location = ["--project-dir", str(project), "--profiles-dir", str(project)]
    res = invoke_dbt(["retry", *location, *args])
    assert res.exception is None, res.exception
    written = json.loads((project / "target" / "run_results.json").read_text(encoding="utf-8"))
    return {entry["unique_id"]: entry["status"] for entry in written["results"]}


# ---------------------------------------------------------------- dbt reads it


def _every_status() -> dict[str, NodeResult]:
    def error(uid: str, status: DbtStatus, failures: int | None = None) -> NodeResult:
        info = ErrorInfo(f"{status.value} in {uid}", "DbtRuntimeError")
        return NodeResult(
            uid, NodeStatus.ERROR, status, info.message, TIMING, error=info, failures=failures
        )

    def ok(uid: str, status: DbtStatus, failures: int | None = None) -> NodeResult:
        return NodeResult(uid, NodeStatus.SUCCESS, status, "OK", TIMING, failures=failures)

    made = [
        ok("model.demo.ok", DbtStatus.SUCCESS),
        error("model.demo.broken", DbtStatus.ERROR),
        skipped("model.demo.after", ("model.demo.broken",), "upstream failed"),
        NodeResult("model.demo.cached", NodeStatus.CACHED, message="served from cache"),
        ok("test.demo.passes", DbtStatus.PASS, 0),
        error("test.demo.fails", DbtStatus.FAIL, 3),
        ok("test.demo.warns", DbtStatus.WARN, 1),
        ok("function.demo.noop", DbtStatus.NO_OP),
        error("test.demo.crashes", DbtStatus.RUNTIME_ERROR),
        error("model.demo.micro", DbtStatus.PARTIAL_SUCCESS),
    ]
    return {result.unique_id: result for result in made}


def test_dbt_reads_a_document_of_every_status_and_its_schema_accepts_it(tmp_path: Path) -> None:
    results = _every_status()
    document = run_results_document(
        results, args={"which": "build", "vars": {}}, dbt_version=dbt_version,
        invocation_id="inv", generated_at=NOW, elapsed_time=3.0,
    )  # fmt: skip
    path = tmp_path / "target" / "run_results.json"
    write_run_results(path, document)

    jsonschema.Draft202012Validator(RunResultsArtifact.json_schema()).validate(document)
    artifact = RunResultsArtifact.read_and_check_versions(str(path))

    read = {r.unique_id: str(r.status) for r in artifact.results}
    assert read == {entry["unique_id"]: entry["status"] for entry in document["results"]}
    retried = {r.unique_id for r in artifact.results if r.status in RETRYABLE_STATUSES}
    assert retried == {uid for uid, result in results.items() if result.is_failure}
    assert artifact.metadata.invocation_id == "inv"
    assert artifact.args == {"which": "build", "vars": {}}
    # Read back and written out again by dbt, every entry is ours (dbt spells
    # an aware time +00:00 where it wrote Z)
    again = artifact.to_dict(omit_none=False)["results"]
    assert [_no_timing(e) for e in again] == [_no_timing(e) for e in document["results"]]
    assert {step.started_at for r in artifact.results for step in r.timing} == {NOW}


def _no_timing(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "timing"}


# ---------------------------------------------------------------- like dbt's own


def test_our_document_matches_dbt_s_own_for_the_same_build(
    demo_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = _build(demo_project, FAIL_VARS)
    reference = copy_project(demo_project, tmp_path / "reference")
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "reference.duckdb"))
    location = [
        "--project-dir", str(reference), "--profiles-dir", str(reference),
        "--target-path", str(reference / "target"),
    ]  # fmt: skip
    invoke_dbt(["build", *location, *FAIL_VARS])
    theirs = json.loads((reference / "target" / "run_results.json").read_text(encoding="utf-8"))

    assert RunResultsArtifact.read_and_check_versions(str(ours.path)).results
    assert ours.document.keys() == theirs.keys()
    assert ours.document["metadata"].keys() == theirs["metadata"].keys()
    kept = ("status", "compiled", "relation_name", "failures")
    mine = {e["unique_id"]: {k: e[k] for k in kept} for e in ours.document["results"]}
    real = {e["unique_id"]: {k: e[k] for k in kept} for e in theirs["results"]}
    assert len(mine) == DEMO_NODE_COUNT
    # relation names carry the database, which DuckDB names after its file
    assert _unnamed(mine) == _unnamed(real)
    assert [list(e) for e in ours.document["results"]] == [list(e) for e in theirs["results"]]
    # every arg we record is what dbt recorded, bar the paths and the command line
    ours_args = ours.document["args"]
    different = {"project_dir", "profiles_dir", "target_path", "invocation_command"}
    assert {k: v for k, v in ours_args.items() if k not in different} == {
        k: theirs["args"].get(k, "<absent>") for k in ours_args if k not in different
    }


def _unnamed(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def strip(name: str | None) -> str | None:
        return None if name is None else name.split(".", 1)[1]

    return {uid: e | {"relation_name": strip(e["relation_name"])} for uid, e in entries.items()}


# ---------------------------------------------------------------- dbt retry


def test_dbt_retry_reruns_exactly_the_failed_model_and_its_skipped_descendants(
    demo_project: Path,
) -> None:
    build = _build(demo_project, FAIL_VARS)
    failed = {uid for uid, r in build.results.items() if r.is_failure}
    assert failed == RETRIED
    assert build.document["args"]["vars"] == {"fail_model": True}

    # The recorded vars are replayed: fct_rides fails again, the rest is skipped again.
    again = _retry(demo_project)
    assert set(again) == RETRIED
    assert again == {uid: "error" if uid == FAILING_MODEL else "skipped" for uid in RETRIED}

    # Given new vars (dbt lets --vars override the recorded ones), all of them pass.
    write_run_results(build.path, build.document)
    fixed = _retry(demo_project, "--vars", "{fail_model: false}")
    assert set(fixed) == RETRIED
    assert set(fixed.values()) <= {"success", "pass"}


def test_dbt_retry_of_a_successful_build_runs_nothing(demo_project: Path) -> None:
    build = _build(demo_project, ())
    assert {r.status for r in build.results.values()} == {NodeStatus.SUCCESS}

    assert _retry(demo_project) == {}


def test_a_secret_var_is_redacted_and_dbt_retry_needs_the_vars_again(
    demo_project: Path,
) -> None:
    password = "hunter2-not-for-files"
    build = _build(demo_project, ("--vars", f"{{fail_model: true, password: {password}}}"))

    text = build.path.read_text(encoding="utf-8")
    assert password not in text
    assert build.document["args"]["vars"] == {"fail_model": True, "password": REDACTED}

    fixed = _retry(demo_project, "--vars", f"{{fail_model: false, password: {password}}}")
    assert set(fixed) == RETRIED


# ---------------------------------------------------------------- through the orchestrator


@pytest.mark.parametrize("mode", ["per_node", "per_wave"])
def test_write_run_results_lets_dbt_retry_rerun_exactly_what_failed(
    demo_project: Path, mode: str
) -> None:
    settings = PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project)
    orchestrator = PrefectDbtOrchestrator(
        settings=settings, execution_mode=mode, write_run_results=True,
        raise_on_failure=False, create_summary_artifact=False,
    )  # fmt: skip

    @flow(name="write-run-results-test")
    def build() -> dict[str, Any]:
        return orchestrator.run_build(extra_cli_args=["--vars", "{fail_model: true}"])

    results = build()
    failed = {uid for uid, r in results.items() if r["status"] in ("error", "skipped")}
    assert "model.demo.fct_rides" in failed and len(failed) == 10
    # dbt's adapter response, and the rows it reports, reach the results
    for csv in sorted((demo_project / "seeds").glob("*.csv")):
        rows = len(csv.read_text(encoding="utf-8").strip().splitlines()) - 1
        seed = results[f"seed.demo.{csv.stem}"]
        assert seed["rows_affected"] == rows
        assert seed["adapter_response"]["_message"] == f"INSERT {rows}"
    written = RunResultsArtifact.read_and_check_versions(
        str(demo_project / "target" / "run_results.json")
    )
    assert {r.unique_id for r in written.results} == set(results)

    fixed = _retry(demo_project, "--vars", "{fail_model: false}")

    assert set(fixed) == failed
    assert set(fixed.values()) <= {"success", "pass"}
