"""A stopped build still gives every planned node exactly one result; node
limits come from the node's config or meta; a stop request is said once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.prefect._options import fold_run_options
from prefect_dbt_orchestrator.adapters.prefect._runner import crashed_result
from prefect_dbt_orchestrator.adapters.prefect._stop import BuildStop, stop_after
from prefect_dbt_orchestrator.domain.errors import BuildInterrupted, OptionsConflictError
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, ErrorInfo, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.schedule import Schedule
from prefect_dbt_orchestrator.domain.timeouts import node_timeout, timed_out
from tests.unit.builders import manifest_of, model, seed
from tests.unit.strategies import Scenario, result_of, scenarios

STOPPED = "build interrupted (SIGINT)"


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_abandoning_at_any_point_ends_every_node_exactly_once(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan = plan_build(scenario.graph, scenario.selected, scenario.strategy)
    schedule = Schedule.start(plan)
    ready = list(schedule.ready())
    for _ in range(data.draw(st.integers(0, len(plan.nodes)))):
        if not ready:
            break
        uid = ready.pop(data.draw(st.integers(0, len(ready) - 1)))
        progress = schedule.complete(uid, result_of(uid, scenario.outcomes[uid]))
        ready += [r for r in progress.ready if r not in ready]
    before = dict(schedule.results)

    abandoned = schedule.abandon(STOPPED)

    assert schedule.finished
    assert {r.unique_id for r in abandoned} == plan.nodes.keys() - before.keys()
    assert all(r.status is NodeStatus.SKIPPED and r.reason == STOPPED for r in abandoned)
    assert {uid: schedule.results[uid] for uid in before} == before
    assert schedule.abandon(STOPPED) == ()


def _node(**config: Any) -> Node:
    graph = build_graph(manifest_of(seed("s"), model("m", "s", **config)))
    return graph.members["model.proj.m"]


def test_a_nodes_config_or_meta_sets_its_timeout_over_the_builds() -> None:
    assert node_timeout(_node(), 30) == 30
    assert node_timeout(_node(prefect_timeout_seconds=5), 30) == 5
    assert node_timeout(_node(meta={"prefect_timeout_seconds": "7"}), None) == 7
    assert node_timeout(_node(prefect_timeout_seconds=0), 30) is None
    assert node_timeout(_node(prefect_timeout_seconds="soon"), 30) == 30


def test_a_timed_out_result_names_the_limit_and_keeps_what_dbt_said() -> None:
    cancelled = NodeResult(
        "model.proj.m",
        NodeStatus.ERROR,
        DbtStatus.ERROR,
        error=ErrorInfo("INTERRUPT Error: Interrupted!", "RuntimeError"),
    )

    result = timed_out(cancelled, 2.5)

    assert result.error is not None and result.error.type == "NodeTimeout"
    assert result.error.cause.startswith("timed out after 2.5 s")
    assert "prefect_timeout_seconds" in result.error.cause
    assert "INTERRUPT Error: Interrupted!" in result.error.message


def test_the_first_stop_reason_wins_and_its_callbacks_run_once() -> None:
    stop = BuildStop()
    called = threading.Event()
    count: list[int] = []

    def cancel() -> None:
        count.append(1)
        called.set()

    stop.when_requested(cancel)
    stop.request(STOPPED, 2)
    stop.request("build stopped by stop()")

    assert called.wait(30)
    assert stop.requested and stop.reason == STOPPED and stop.signal_number == 2
    assert count == [1]


def test_the_build_timeout_requests_a_stop_with_its_reason() -> None:
    stop = BuildStop()

    with stop_after(stop, 0.05):
        assert stop.wait(30)

    assert stop.reason == "build timed out after 0.05 s (timeout_seconds)"


def test_no_build_timeout_never_stops() -> None:
    stop = BuildStop()

    with stop_after(stop, None):
        pass

    assert not stop.requested


@pytest.mark.parametrize(
    "name", ["node_timeout_seconds", "timeout_seconds", "concurrency_timeout_seconds"]
)
@pytest.mark.parametrize("value", [0, -1, True])
def test_a_limit_in_seconds_must_be_positive(name: str, value: object) -> None:
    with pytest.raises(OptionsConflictError, match=name):
        fold_run_options(
            execution_mode="per_node",
            test_strategy="immediate",
            concurrency=None,
            concurrency_limit_name=None,
            **{name: value},
        )


def test_an_unexpected_task_exception_is_that_nodes_error() -> None:
    result = crashed_result("model.proj.m", KeyError("model.proj.x"))

    assert result.status is NodeStatus.ERROR
    assert result.error is not None and result.error.type == "KeyError"
    assert "model.proj.x" in result.error.message


def test_an_interrupted_build_counts_the_nodes_it_did_not_finish() -> None:
    results: dict[str, dict[str, object]] = {
        "model.proj.a": {"status": "success"},
        "model.proj.b": {"status": "skipped", "reason": STOPPED},
    }

    error = BuildInterrupted(results, STOPPED, 2)

    assert error.unfinished == ("model.proj.b",)
    assert str(error).startswith(f"{STOPPED}: 1 node(s) did not finish")


def test_the_cli_takes_the_three_limits_in_seconds_and_refuses_zero() -> None:
    from prefect_dbt_orchestrator.adapters.cli.main import build_parser

    args = build_parser().parse_args(
        ["build", "--node-timeout", "600", "--timeout", "3600", "--concurrency-timeout", "1.5"]
    )

    assert (args.node_timeout, args.timeout, args.concurrency_timeout) == (600, 3600, 1.5)
    assert build_parser().parse_args(["build"]).node_timeout is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "--node-timeout", "0"])


def test_a_repeating_callback_runs_again_until_the_build_ends() -> None:
    stop = BuildStop()
    calls: list[int] = []
    thrice = threading.Event()

    def cancel() -> None:
        calls.append(1)
        if len(calls) >= 3:
            thrice.set()

    stop.when_requested(cancel, repeat_every=0.01)
    stop.request("stopped")
    assert thrice.wait(120)  # a query started after the first cancel is cancelled again
    stop.end()
    for thread in [t for t in threading.enumerate() if t.name == "dbt-stop"]:
        thread.join(120)
        assert not thread.is_alive()
