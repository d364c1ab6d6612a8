"""The Prefect-free driver: a plan on a thread pool against the fake executor."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable
from tests.unit.builders import manifest_of, model, seed, test, uid, unit_test
from tests.unit.fakes import FakeExecutor

OPTIONS = InvocationOptions()

PROJECT = (
    seed("raw"),
    model("stg", "raw"),
    test("not_null_stg", "stg"),
    model("orders", "stg"),
    model("customers", "stg"),
    unit_test("ut", "orders"),
    model("report", "orders", "customers"),
    test("rel", "orders", "customers"),
    model("lonely"),
)


def planned(
    *nodes: dict[str, Any], strategy: TestStrategy = TestStrategy.IMMEDIATE
) -> tuple[Plan, Mapping[str, Node]]:
    graph = build_graph(manifest_of(*nodes))
    plan = plan_build(graph, graph.members, strategy)
    return plan, {u: graph.members[u] for u in plan.nodes}


def run(
    executor: FakeExecutor, *, per_wave: bool = False, max_workers: int = 4
) -> tuple[Plan, dict[str, NodeResult]]:
    plan, nodes = planned(*PROJECT)
    driver = ThreadPoolDriver(executor, max_workers=max_workers, per_wave=per_wave)
    return plan, driver.run(plan, nodes, OPTIONS)


@pytest.mark.parametrize("per_wave", [False, True])
def test_every_planned_node_runs_once_and_ends_with_one_result(per_wave: bool) -> None:
    executor = FakeExecutor()

    plan, results = run(executor, per_wave=per_wave)

    assert sorted(executor.ran) == sorted(plan.nodes)
    assert results.keys() == plan.nodes.keys()
    assert all(r.status is NodeStatus.SUCCESS for r in results.values())


@pytest.mark.parametrize("per_wave", [False, True])
@pytest.mark.parametrize("max_workers", [1, 2, 8])
def test_no_node_starts_before_everything_it_waits_for(per_wave: bool, max_workers: int) -> None:
    executor = FakeExecutor()

    plan, _ = run(executor, per_wave=per_wave, max_workers=max_workers)

    position = {u: i for i, u in enumerate(executor.ran)}
    for unique_id, node in plan.nodes.items():
        for waited in node.waits_for:
            assert position[waited] < position[unique_id], (waited, unique_id)


@pytest.mark.parametrize("per_wave", [False, True])
def test_a_failure_skips_its_descendants_and_nothing_else(per_wave: bool) -> None:
    executor = FakeExecutor(outcomes={uid("customers"): DbtStatus.ERROR})

    _, results = run(executor, per_wave=per_wave)

    skipped = {u for u, r in results.items() if r.status is NodeStatus.SKIPPED}
    assert skipped == {uid("report"), uid("rel", "test")}
    assert not skipped & set(executor.ran)
    assert results[uid("customers")].status is NodeStatus.ERROR
    assert results[uid("report")].failed_upstream == (uid("customers"),)
    assert results[uid("report")].reason == UPSTREAM_FAILURE
    assert results[uid("orders")].status is NodeStatus.SUCCESS


@pytest.mark.parametrize("per_wave", [False, True])
def test_a_failing_unit_test_keeps_its_model_and_the_models_descendants_from_running(
    per_wave: bool,
) -> None:
    executor = FakeExecutor(outcomes={"unit_test.proj.orders.ut": DbtStatus.FAIL})

    _, results = run(executor, per_wave=per_wave)

    skipped = {u for u, r in results.items() if r.status is NodeStatus.SKIPPED}
    assert skipped == {uid("orders"), uid("report"), uid("rel", "test")}
    assert uid("customers") in executor.ran and uid("orders") not in executor.ran


@pytest.mark.parametrize("per_wave", [False, True])
def test_a_node_that_failed_once_is_not_retried_by_the_driver(per_wave: bool) -> None:
    executor = FakeExecutor(flaky={uid("lonely"): 1})

    _, results = run(executor, per_wave=per_wave)

    assert executor.ran.count(uid("lonely")) == 1
    assert results[uid("lonely")].status is NodeStatus.ERROR


@attrs.define
class GatedExecutor(FakeExecutor):
    """Holds every node until ``gate.parties`` nodes run at once (a broken gate raises)."""

    gate: threading.Barrier = attrs.Factory(lambda: threading.Barrier(1))

    def _result(self, node: Node, command: str) -> NodeResult:
        self.gate.wait(timeout=10)
        return super()._result(node, command)


@pytest.mark.parametrize("max_workers", [1, 2, 3])
def test_max_workers_bounds_how_many_nodes_run_at_once(max_workers: int) -> None:
    executor = GatedExecutor(gate=threading.Barrier(max_workers))
    nodes = [model(f"m{i}") for i in range(max_workers * 3)]
    plan, members = planned(*nodes)

    ThreadPoolDriver(executor, max_workers=max_workers).run(plan, members, OPTIONS)

    assert executor.peak_running == max_workers
    assert sorted(executor.ran) == sorted(plan.nodes)


def test_per_wave_mode_calls_dbt_once_per_plan_wave_when_nothing_fails() -> None:
    executor = FakeExecutor()

    plan, _ = run(executor, per_wave=True)

    assert [tuple(sorted(w)) for w in executor.waves] == [w.node_ids for w in plan.waves]
    assert len(plan.waves) > 3


def test_per_wave_mode_with_deferred_tests_runs_every_test_in_the_last_calls() -> None:
    executor = FakeExecutor()
    plan, nodes = planned(*PROJECT, strategy=TestStrategy.DEFERRED)

    ThreadPoolDriver(executor, per_wave=True).run(plan, nodes, OPTIONS)

    assert [tuple(sorted(w)) for w in executor.waves] == [w.node_ids for w in plan.waves]
    tests = {u for u, n in plan.nodes.items() if n.phase == 1}
    first_test_call = min(i for i, w in enumerate(executor.waves) if set(w) & tests)
    assert all(set(w) <= tests for w in executor.waves[first_test_call:])


def test_per_wave_mode_leaves_failed_nodes_descendants_out_of_later_calls() -> None:
    executor = FakeExecutor(outcomes={uid("stg"): DbtStatus.ERROR})

    _, results = run(executor, per_wave=True)

    assert executor.waves == [
        (uid("lonely"), uid("raw", "seed")),
        (uid("stg"),),
    ]
    assert {u for u, r in results.items() if r.status is NodeStatus.SKIPPED} == {
        uid("not_null_stg", "test"),
        uid("orders"),
        uid("customers"),
        "unit_test.proj.orders.ut",
        uid("report"),
        uid("rel", "test"),
    }


@attrs.define
class ForgetfulExecutor(FakeExecutor):
    """Reports no result for one node of a wave."""

    forget: str = ""

    def run_wave(
        self, nodes: Any, *, options: InvocationOptions, around_node: Any = None
    ) -> Mapping[str, NodeResult]:
        results = dict(super().run_wave(nodes, options=options, around_node=around_node))
        results.pop(self.forget, None)
        return results


def test_a_node_dbt_did_not_report_in_a_wave_is_an_error_that_skips_its_descendants() -> None:
    executor = ForgetfulExecutor(forget=uid("stg"))

    _, results = run(executor, per_wave=True)

    assert results[uid("stg")].status is NodeStatus.ERROR
    assert results[uid("stg")].error is not None
    assert results[uid("orders")].status is NodeStatus.SKIPPED


def test_a_warn_test_dbt_did_not_report_in_a_wave_still_blocks_its_dependents() -> None:
    executor = ForgetfulExecutor(forget=uid("warned", "test"))
    plan, nodes = planned(model("a"), test("warned", "a", severity="warn"), model("b", "a"))

    results = ThreadPoolDriver(executor, per_wave=True).run(plan, nodes, OPTIONS)

    assert results[uid("warned", "test")].status is NodeStatus.ERROR
    assert results[uid("b")].status is NodeStatus.SKIPPED


@pytest.mark.parametrize("per_wave", [False, True])
def test_an_unavailable_executor_propagates_out_of_the_driver(per_wave: bool) -> None:
    executor = FakeExecutor(unavailable=True)

    with pytest.raises(ExecutorUnavailable, match="told to be unavailable"):
        run(executor, per_wave=per_wave)


@attrs.define
class DiesLater(FakeExecutor):
    """Runs ``healthy`` nodes, then dbt becomes unavailable."""

    healthy: int = 2

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        with self._lock:
            self.healthy -= 1
            if self.healthy < 0:
                raise ExecutorUnavailable("fake dbt", "lost its connection")
        return super().run_node(node, options=options)


def test_an_executor_failing_mid_run_propagates_and_nothing_new_starts() -> None:
    executor = DiesLater(healthy=2)

    with pytest.raises(ExecutorUnavailable, match="lost its connection"):
        run(executor, max_workers=1)

    assert len(executor.ran) == 2
