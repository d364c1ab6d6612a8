"""A failed build looks failed in Prefect, and says why, in both modes.

Real dbt-duckdb on the demo project with ``fail_model`` on (``fct_rides``
reads a table that does not exist), real Prefect server; every state, log
line and artifact asserted here is read back from the Prefect API.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, StateType, TaskRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.logging.handlers import APILogHandler

from prefect_dbt_orchestrator import (
    DbtBuildFailed,
    DbtCoreExecutor,
    ExecutionMode,
    ExecutorUnavailable,
    MissingAdapterError,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
)
from prefect_dbt_orchestrator.adapters.prefect._artifacts import SUMMARY_KEY, TABLE_KEY
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from tests.integration.conftest import DEMO_NODE_COUNT, copy_project
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration

FAIL_VARS = ["--vars", "{fail_model: true}"]
CAUSE = "Catalog Error: Table with name a_table_that_does_not_exist does not exist!"
NODE_ID = re.compile(r"\b((?:model|seed|snapshot|test|unit_test)\.\S+)")
MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])


def _orchestrator(project: Path, **options: Any) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    return PrefectDbtOrchestrator(settings=settings, **options)


def _in_flow_state(call: Callable[[], object], keep: list[object] | None = None) -> uuid.UUID:
    """Run ``call`` in a flow; returns the flow run's id (whatever its end).
    The call's return value is appended to ``keep``."""

    @flow(name=f"visible-{uuid.uuid4().hex[:8]}", log_prints=False)
    def visible() -> None:
        value = call()
        if keep is not None:
            keep.append(value)

    state = visible(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


async def _read(flow_run_id: uuid.UUID) -> tuple[FlowRun, list[TaskRun], list[Artifact], list[Log]]:
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        tasks = await client.read_task_runs(flow_run_filter=runs, limit=200)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[SUMMARY_KEY, TABLE_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
        )
    return run, tasks, artifacts, logs


def read_back(flow_run_id: uuid.UUID) -> tuple[FlowRun, list[TaskRun], list[Artifact], list[Log]]:
    """The flow run, its task runs, its summary artifacts and its logs, from the API."""
    APILogHandler().flush()
    return anyio.run(_read, flow_run_id)


Readback = tuple[FlowRun, list[TaskRun], list[Artifact], list[Log]]


def read_back_when(
    flow_run_id: uuid.UUID, ready: Callable[[Readback], bool], deadline: float = 180.0
) -> Readback:
    """``read_back``, again until ``ready`` says so: Prefect 3 reports task-run
    states as events, which the server records a moment after the flow ended."""
    ends = time.monotonic() + deadline
    found = read_back(flow_run_id)
    while not ready(found) and time.monotonic() < ends:
        time.sleep(0.5)
        found = read_back(flow_run_id)
    return found


def _skips_recorded(found: Readback) -> bool:
    skipped = {t.name for t in found[1] if _state(t) == (StateType.COMPLETED, "Skipped")}
    failed = [t for t in found[1] if _state(t)[0] is StateType.FAILED]
    return skipped >= set(SKIPPED_WHEN_FCT_RIDES_FAILS) and bool(failed)


def _state(run: FlowRun | TaskRun) -> tuple[StateType | None, str | None]:
    return (run.state.type, run.state.name) if run.state else (None, None)


@MODES
def test_a_failing_build_ends_failed_with_its_cause_in_the_artifact_and_skips_visible(
    demo_project: Path, mode: ExecutionMode
) -> None:
    orchestrator = _orchestrator(demo_project, execution_mode=mode)

    flow_run_id = _in_flow_state(lambda: orchestrator.run_build(extra_cli_args=FAIL_VARS))

    run, tasks, artifacts, _ = read_back_when(flow_run_id, _skips_recorded)
    assert _state(run)[0] is StateType.FAILED
    skipped = {t.name for t in tasks if _state(t) == (StateType.COMPLETED, "Skipped")}
    assert skipped == set(SKIPPED_WHEN_FCT_RIDES_FAILS)
    failed = [t for t in tasks if _state(t)[0] is StateType.FAILED]
    assert len(failed) == 1
    if mode is ExecutionMode.PER_NODE:
        assert failed[0].name == FAILING_MODEL
    else:
        assert failed[0].name.startswith("wave-")
        assert FAILING_MODEL in (failed[0].state.message or "")  # type: ignore[union-attr]
    summary = {a.key: a for a in artifacts}
    assert len(artifacts) == len(summary) == 2
    markdown = str(summary[SUMMARY_KEY].data)
    # the database's own words, in full, and where the model lives
    assert CAUSE in markdown and "a_table_that_does_not_exist" in markdown
    assert "models/facts/fct_rides.sql" in markdown
    # the skipped tree: every skipped node under the failure that caused it
    tree = markdown[markdown.index("### Skipped") :]
    assert f"after `{FAILING_MODEL}` failed ({len(SKIPPED_WHEN_FCT_RIDES_FAILS)})" in tree
    assert all(f"`{uid}`" in tree for uid in SKIPPED_WHEN_FCT_RIDES_FAILS)
    assert "### Slowest nodes" in markdown and "parallelism" in markdown
    rows = json.loads(str(summary[TABLE_KEY].data))
    assert len(rows) == DEMO_NODE_COUNT
    by_id = {row["unique_id"]: row for row in rows}
    assert by_id[FAILING_MODEL]["status"] == "error" and by_id[FAILING_MODEL]["attempts"] == 1
    assert {by_id[uid]["status"] for uid in SKIPPED_WHEN_FCT_RIDES_FAILS} == {"skipped"}
    assert all(row["duration_seconds"] is not None for row in rows if row["status"] == "success")


@MODES
def test_the_log_says_each_node_end_once_with_dbts_cause_and_no_traceback(
    demo_project: Path, mode: ExecutionMode, capfd: pytest.CaptureFixture[str]
) -> None:
    orchestrator = _orchestrator(demo_project, execution_mode=mode, raise_on_failure=False)

    flow_run_id = _in_flow_state(lambda: orchestrator.run_build(extra_cli_args=FAIL_VARS))

    _, _, _, logs = read_back(flow_run_id)
    messages = [log.message for log in logs]
    text = "\n".join(messages)
    assert "Traceback" not in text
    assert "NodeResult(" not in text and "NodeFailed(" not in text
    progress = [m for m in messages if re.match(rf"\[\d+/{DEMO_NODE_COUNT}\] ", m)]
    ended = [NODE_ID.search(m) for m in progress]
    assert len({found[1] for found in ended if found}) == len(progress) == DEMO_NODE_COUNT
    assert [m for m in progress if FAILING_MODEL in m and m.endswith(CAUSE)] != []
    task_ends = [g for g in logs if g.task_run_id and g.message.startswith("Finished in state")]
    assert task_ends == []
    console = "".join(capfd.readouterr())
    assert "\x1b[" not in console
    assert not re.search(rf"\b\d+ of {DEMO_NODE_COUNT}\b", console)


def test_outside_a_flow_the_build_runs_in_a_flow_run_that_ends_failed(
    demo_project: Path,
) -> None:
    started = datetime.now().astimezone()
    orchestrator = _orchestrator(demo_project, raise_on_failure=False)

    results = orchestrator.run_build(extra_cli_args=FAIL_VARS)

    assert results[FAILING_MODEL]["status"] == "error"
    assert CAUSE in results[FAILING_MODEL]["error"]["message"]
    run = anyio.run(_latest_run, "dbt-orchestrator", started)
    assert _state(run)[0] is StateType.FAILED


def test_outside_a_flow_raise_on_failure_raises_after_the_flow_run_ended_failed(
    demo_project: Path,
) -> None:
    started = datetime.now().astimezone()

    with pytest.raises(DbtBuildFailed) as raised:
        _orchestrator(demo_project).run_build(extra_cli_args=FAIL_VARS)

    assert raised.value.results[FAILING_MODEL]["status"] == "error"
    assert _state(anyio.run(_latest_run, "dbt-orchestrator", started))[0] is StateType.FAILED


async def _latest_run(flow_name: str, since: datetime) -> FlowRun:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=since)  # type: ignore[arg-type]
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert runs, f"no flow run of {flow_name} since {since}"
    return runs[0]


def test_per_wave_with_an_int_concurrency_runs_at_most_that_many_nodes_at_once(
    demo_project: Path,
) -> None:
    orchestrator = _orchestrator(demo_project, execution_mode=ExecutionMode.PER_WAVE, concurrency=1)

    kept: list[object] = []
    flow_run_id = _in_flow_state(orchestrator.run_build, kept)

    assert _state(read_back(flow_run_id)[0])[0] is StateType.COMPLETED
    results = kept[0]
    assert isinstance(results, dict)
    spans = sorted(
        (r["timing"]["started_at"], r["timing"]["completed_at"]) for r in results.values()
    )
    assert len(spans) == DEMO_NODE_COUNT
    overlapping = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlapping == []
    assert all("--threads" in r["invocation"]["args"] for r in results.values())


def test_a_second_dbt_session_in_one_process_is_the_ports_error(
    demo_project: Path, tmp_path: Path
) -> None:
    other = copy_project(demo_project, tmp_path / "other")
    first = DbtCoreExecutor(PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project))
    second = DbtCoreExecutor(PrefectDbtSettings(project_dir=other, profiles_dir=other))
    nodes = list(first.load_manifest().nodes.values())[:1]
    second.load_manifest()
    first.start_run(nodes, options=InvocationOptions())
    try:
        with pytest.raises(ExecutorUnavailable) as raised:
            second.start_run(nodes, options=InvocationOptions())
    finally:
        first.finish_run()

    assert "one build at a time per process" in str(raised.value)


def test_a_profile_whose_adapter_is_not_installed_names_what_to_install(
    demo_project: Path,
) -> None:
    profiles = demo_project / "profiles.yml"
    profiles.write_text(profiles.read_text().replace("type: duckdb", "type: snowflake"))

    with pytest.raises(MissingAdapterError) as raised:
        _orchestrator(demo_project).plan()

    assert "pip install dbt-snowflake" in str(raised.value)
