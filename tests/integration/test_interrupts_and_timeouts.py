"""Stopping cleanly: node timeouts, the build timeout, SIGINT and SIGTERM.

Real dbt-duckdb on ``projects/slow``, whose ``slow`` model runs a query for
minutes unless it is cancelled; real Prefect server. Every planned node must
end with exactly one result, and the next build must work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from prefect_dbt_orchestrator import (
    DbtCoreExecutor,
    ExecutionMode,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
)
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import BuildInterrupted
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from tests.integration.conftest import SlowProject
from tests.integration.test_demo_script import helper, started

pytestmark = pytest.mark.integration

SLOW, AFTER, FAST_A, FAST_B = (
    f"model.slowproj.{n}" for n in ("slow", "after_slow", "fast_a", "fast_b")
)
WITH_LIMIT = "model.slowproj.slow_with_limit"
MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
# Generous: a cancelled query ends within seconds, but the machine may be loaded.
DEADLINE_SECONDS = 240.0


def _orchestrator(project: SlowProject, **options: Any) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project.project_dir, profiles_dir=project.project_dir)
    return PrefectDbtOrchestrator(settings=settings, raise_on_failure=False, **options)


def _in_flow(call: Any) -> Any:
    @flow(name="interrupts-and-timeouts", log_prints=False)
    def run() -> Any:
        return call()

    return run()


@MODES
def test_a_node_over_node_timeout_is_cancelled_retried_and_skips_its_descendants(
    slow_project: SlowProject, mode: ExecutionMode
) -> None:
    orchestrator = _orchestrator(
        slow_project, execution_mode=mode, node_timeout_seconds=3, retries=1
    )

    results = _in_flow(lambda: orchestrator.run_build(select="slow+ fast_a"))

    assert set(results) == {SLOW, AFTER, FAST_A}
    assert results[SLOW]["status"] == "error"
    assert results[SLOW]["error"]["type"] == "NodeTimeout"
    assert "timed out after 3 s" in results[SLOW]["error"]["message"]
    assert results[SLOW]["retries"] == 1
    assert results[AFTER]["status"] == "skipped"
    assert results[AFTER]["failed_upstream"] == [SLOW]
    assert results[FAST_A]["status"] == "success"


def test_a_nodes_own_timeout_in_its_meta_applies_without_a_build_wide_one(
    slow_project: SlowProject,
) -> None:
    orchestrator = _orchestrator(slow_project, execution_mode=ExecutionMode.PER_NODE)

    results = _in_flow(lambda: orchestrator.run_build(select="slow_with_limit"))

    assert results[WITH_LIMIT]["error"]["type"] == "NodeTimeout"
    assert "timed out after 2 s" in results[WITH_LIMIT]["error"]["message"]


class WatchedWaves(DbtCoreExecutor):
    """A real executor noting, as each node of a wave starts, which node
    watchdogs are armed (timer threads named after their node, not cancelled)."""

    def __init__(self, settings: PrefectDbtSettings) -> None:
        super().__init__(settings)
        self.live_at_start: dict[str, set[str]] = {}

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        assert around_node is not None

        @contextmanager
        def noted(unique_id: str) -> Iterator[None]:
            self.live_at_start[unique_id] = {
                t.name.removeprefix("watchdog ")
                for t in threading.enumerate()
                if isinstance(t, threading.Timer)
                and t.name.startswith("watchdog ")
                and not t.finished.is_set()
            }
            with around_node(unique_id):
                yield

        return super().run_wave(nodes, options=options, around_node=noted)


def test_a_wave_nodes_timeout_counts_from_its_own_start_not_the_waves(
    slow_project: SlowProject,
) -> None:
    settings = PrefectDbtSettings(
        project_dir=slow_project.project_dir, profiles_dir=slow_project.project_dir
    )
    executor = WatchedWaves(settings)
    orchestrator = PrefectDbtOrchestrator(
        settings=settings, executor=executor, execution_mode=ExecutionMode.PER_WAVE,
        node_timeout_seconds=600, threads=1, raise_on_failure=False,
        create_summary_artifact=False,
    )  # fmt: skip

    # one wave, one dbt thread: the two nodes run one after the other
    results = _in_flow(lambda: orchestrator.run_build(select="fast_a slow_with_limit"))

    assert executor.live_at_start == {FAST_A: set(), WITH_LIMIT: set()}
    assert results[WITH_LIMIT]["error"]["type"] == "NodeTimeout"
    assert "timed out after 2 s" in results[WITH_LIMIT]["error"]["message"]
    assert results[FAST_A]["status"] == "success"


@MODES
def test_the_build_timeout_stops_the_build_and_skips_what_did_not_finish(
    slow_project: SlowProject, mode: ExecutionMode
) -> None:
    orchestrator = _orchestrator(slow_project, execution_mode=mode, timeout_seconds=6)

    with pytest.raises(BuildInterrupted) as raised:
        _in_flow(lambda: orchestrator.run_build(exclude="slow_with_limit"))

    results = raised.value.results
    assert set(results) == {SLOW, AFTER, FAST_A, FAST_B}
    reason = "build timed out after 6 s (timeout_seconds)"
    stopped = {uid for uid, r in results.items() if r.get("reason") == reason}
    assert {SLOW, AFTER} <= stopped  # PER_WAVE: fast_b waits for the wave holding slow
    assert stopped == set(raised.value.unfinished)
    assert all(results[uid]["status"] == "success" for uid in set(results) - stopped)
    assert results[FAST_A]["status"] == "success"
    again = _orchestrator(slow_project, execution_mode=mode)
    quick = _in_flow(
        lambda: again.run_build(select="slow", extra_cli_args=["--vars", "{slow_rows: 1}"])
    )
    assert quick[SLOW]["status"] == "success"


# ---------------------------------------------------------------- signals, on the CLI


def _cli(project: SlowProject, tmp_path: Path, api_url: str, *extra: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "prefect_dbt_orchestrator.adapters.cli.main", "build",
        "--project-dir", str(project.project_dir), "--profiles-dir", str(project.project_dir),
        "--exclude", "slow_with_limit", "--results-json", str(tmp_path / "results.json"), *extra,
    ]  # fmt: skip
    env = {**os.environ, **project.env, "PREFECT_API_URL": api_url}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the slow query never started"
        time.sleep(0.2)


async def _latest(flow_name: str) -> FlowRun:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    return runs[0]


@pytest.fixture
def reaped() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@MODES
def test_a_signal_during_a_long_query_stops_the_build_cleanly(
    slow_project: SlowProject,
    tmp_path: Path,
    reaped: list[subprocess.Popen[str]],
    number: int,
    code: int,
    mode: ExecutionMode,
    prefect_api_url: str,
) -> None:
    process = _cli(slow_project, tmp_path, prefect_api_url, "--mode", mode.value.replace("_", "-"))
    reaped.append(process)
    _wait_for(slow_project.marker, process)

    sent = datetime.now().astimezone()
    process.send_signal(number)
    output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    took = (datetime.now().astimezone() - sent).total_seconds()

    assert process.returncode == code, output
    assert "Traceback" not in output
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {SLOW, AFTER, FAST_A, FAST_B}
    name = signal.Signals(number).name
    assert results[SLOW]["reason"] == results[AFTER]["reason"] == f"build interrupted ({name})"
    assert anyio.run(_latest, "dbt-orchestrate-build").state.type is StateType.CANCELLED  # type: ignore[union-attr]
    print(f"{name} {mode.value}: exited {took:.1f} s after the signal")
    again = _cli(slow_project, tmp_path, prefect_api_url, "--vars", "{slow_rows: 1}")
    reaped.append(again)
    again_output, _ = again.communicate(timeout=DEADLINE_SECONDS)
    assert again.returncode == 0, again_output


# ---------------------------------------------------------------- the Prefect API lost mid-build


def test_the_api_lost_mid_build_loses_no_result(
    slow_project: SlowProject, tmp_path: Path, reaped: list[subprocess.Popen[str]]
) -> None:
    home = tmp_path / "prefect-home"
    api_url = started(home)  # a Prefect server of this test's own: it is stopped mid-build
    try:
        process = _cli(slow_project, tmp_path, api_url, "--vars", "{slow_rows: 20000}")
        reaped.append(process)
        _wait_for(slow_project.marker, process)
        helper(home, "stop")  # while `slow` runs its long query

        output, _ = process.communicate(timeout=DEADLINE_SECONDS * 2)
    finally:
        helper(home, "stop")

    assert process.returncode == 0, output
    assert "Prefect's record of this run is incomplete" in output
    assert "Traceback" not in output
    results = json.loads((tmp_path / "results.json").read_text())
    assert {uid: r["status"] for uid, r in results.items()} == dict.fromkeys(
        (SLOW, AFTER, FAST_A, FAST_B), "success"
    )


LIBRARY_BUILD = """
import json, sys
from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
project = sys.argv[1]
settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
orchestrator = PrefectDbtOrchestrator(settings=settings, execution_mode="per_node")
results = orchestrator.run_build(exclude="slow_with_limit", extra_cli_args=sys.argv[3:])
open(sys.argv[2], "w").write(json.dumps(results))
"""


def test_the_api_lost_mid_build_outside_a_flow_still_returns_the_results(
    slow_project: SlowProject, tmp_path: Path, reaped: list[subprocess.Popen[str]]
) -> None:
    home, out = tmp_path / "prefect-home", tmp_path / "returned.json"
    api_url = started(home)
    # Prefect's default client retries (5, with back-off): the build must not wait them out.
    env = {**os.environ, **slow_project.env, "PREFECT_API_URL": api_url}
    env.pop("PREFECT_CLIENT_MAX_RETRIES", None)
    command = [sys.executable, "-c", LIBRARY_BUILD, str(slow_project.project_dir), str(out)]
    try:
        process = subprocess.Popen(
            [*command, "--vars", "{slow_rows: 20000}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        reaped.append(process)
        _wait_for(slow_project.marker, process)
        helper(home, "stop")
        output, _ = process.communicate(timeout=DEADLINE_SECONDS * 2)
    finally:
        helper(home, "stop")

    assert process.returncode == 0, output[-4000:]
    assert "Prefect's record of this run is incomplete" in output
    returned = json.loads(out.read_text())
    assert {uid: r["status"] for uid, r in returned.items()} == dict.fromkeys(
        (SLOW, AFTER, FAST_A, FAST_B), "success"
    )
