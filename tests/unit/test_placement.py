"""Where tests go and what their failure skips: one dbt build behaviour per test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from prefect_dbt_orchestrator.domain.errors import UnknownNodeError
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    NodeResult,
    NodeStatus,
    contract_status,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE, Schedule
from tests.unit.builders import manifest_of, model, seed, source, test, uid, unit_test

IMMEDIATE, DEFERRED, SKIP = TestStrategy.IMMEDIATE, TestStrategy.DEFERRED, TestStrategy.SKIP


def plan_for(
    *nodes: dict[str, Any],
    select: Iterable[str] | None = None,
    strategy: TestStrategy = IMMEDIATE,
) -> Plan:
    graph = build_graph(manifest_of(*nodes))
    return plan_build(graph, graph.members if select is None else select, strategy)


def run(plan: Plan, outcomes: Mapping[str, DbtStatus]) -> dict[str, NodeResult]:
    """Complete ready nodes in id order with ``outcomes`` (success otherwise)."""
    schedule = Schedule.start(plan)
    while not schedule.finished:
        node = schedule.ready()[0]
        status = outcomes.get(node, DbtStatus.SUCCESS)
        schedule.complete(node, NodeResult(node, contract_status(status), status))
    return dict(schedule.results)


def skipped(results: Mapping[str, NodeResult]) -> set[str]:
    return {u for u, r in results.items() if r.status is NodeStatus.SKIPPED}


def waits(plan: Plan, name: str, kind: str = "model") -> frozenset[str]:
    return plan.nodes[uid(name, kind)].waits_for


def waits_transitively(plan: Plan, name: str, kind: str = "model") -> frozenset[str]:
    """Everything the node waits for, directly or through what it waits for."""
    found: set[str] = set()
    stack = list(waits(plan, name, kind))
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(plan.nodes[current].waits_for)
    return frozenset(found)


def wave_of(plan: Plan, unique_id: str) -> int:
    (index,) = [w.index for w in plan.waves if unique_id in w.node_ids]
    return index


REL = uid("rel_a_b", "test")
RELATIONSHIPS = (
    model("a"),
    model("b"),
    test("rel_a_b", "a", "b"),
    model("only_a", "a"),
    model("only_b", "b"),
    model("both", "a", "b"),
    model("after_both", "both"),
)


def test_a_relationships_test_between_a_and_b_is_waited_for_only_by_what_reads_both() -> None:
    plan = plan_for(*RELATIONSHIPS)

    assert waits(plan, "rel_a_b", "test") == {uid("a"), uid("b")}
    assert REL in waits(plan, "both")
    assert REL in waits_transitively(plan, "after_both")
    assert REL not in waits_transitively(plan, "only_a") | waits_transitively(plan, "only_b")


def test_a_failing_relationships_test_skips_only_what_depends_on_both_parents() -> None:
    results = run(plan_for(*RELATIONSHIPS), {REL: DbtStatus.FAIL})

    assert skipped(results) == {uid("both"), uid("after_both")}
    assert results[uid("only_a")].status is NodeStatus.SUCCESS
    assert results[uid("only_b")].status is NodeStatus.SUCCESS
    assert results[uid("after_both")].failed_upstream == (REL,)
    assert results[uid("after_both")].reason == UPSTREAM_FAILURE


def test_a_relationships_test_to_an_upstream_model_is_not_waited_for_by_the_downstream_parent() -> (
    None
):
    plan = plan_for(model("a"), model("b", "a"), test("rel", "b", "a"), model("c", "b"))

    assert uid("rel", "test") not in waits(plan, "b")
    assert uid("rel", "test") in waits(plan, "c")


def test_a_test_of_three_parents_blocks_only_what_reads_all_three() -> None:
    plan = plan_for(
        seed("s"),
        model("a"),
        model("b"),
        test("three", "s", "a", "b"),
        model("ab", "a", "b"),
        model("sab", "s", "ab"),
    )

    results = run(plan, {uid("three", "test"): DbtStatus.ERROR})

    assert skipped(results) == {uid("sab")}


def test_a_failing_single_parent_test_skips_the_descendants_of_its_model() -> None:
    plan = plan_for(
        model("a"), test("not_null_a", "a"), model("b", "a"), model("c", "b"), model("other")
    )

    results = run(plan, {uid("not_null_a", "test"): DbtStatus.FAIL})

    assert uid("not_null_a", "test") in waits(plan, "b")
    assert skipped(results) == {uid("b"), uid("c")}
    assert results[uid("a")].status is NodeStatus.SUCCESS
    assert results[uid("other")].status is NodeStatus.SUCCESS
    assert results[uid("c")].failed_upstream == (uid("not_null_a", "test"),)


def test_a_failing_model_skips_its_tests_and_descendants_but_not_its_siblings() -> None:
    plan = plan_for(
        model("a"), test("not_null_a", "a"), model("b", "a"), model("sibling"), model("c", "b")
    )

    results = run(plan, {uid("a"): DbtStatus.ERROR})

    assert skipped(results) == {uid("not_null_a", "test"), uid("b"), uid("c")}
    assert {results[u].failed_upstream for u in skipped(results)} == {(uid("a"),)}


def test_an_unselected_model_between_two_selected_ones_is_transparent() -> None:
    nodes = (model("a"), model("b", "a"), model("c", "b"), model("d", "c"))
    plan = plan_for(*nodes, select=[uid("a"), uid("d")])

    assert set(plan.nodes) == {uid("a"), uid("d")}
    assert waits(plan, "d") == {uid("a")}
    assert skipped(run(plan, {uid("a"): DbtStatus.ERROR})) == {uid("d")}


def test_an_unselected_test_is_not_planned_and_blocks_nothing() -> None:
    nodes = (model("a"), test("not_null_a", "a"), model("b", "a"))
    plan = plan_for(*nodes, select=[uid("a"), uid("b")])

    assert set(plan.nodes) == {uid("a"), uid("b")}
    assert waits(plan, "b") == {uid("a")}


def test_a_selected_test_blocks_through_an_unselected_model() -> None:
    nodes = (model("a"), test("not_null_a", "a"), model("b", "a"), model("c", "b"))
    plan = plan_for(*nodes, select=[uid("a"), uid("not_null_a", "test"), uid("c")])

    results = run(plan, {uid("not_null_a", "test"): DbtStatus.FAIL})

    assert uid("not_null_a", "test") in waits(plan, "c")
    assert skipped(results) == {uid("c")}


def test_a_failing_test_on_a_source_skips_the_models_downstream_of_the_source() -> None:
    src_test = uid("src_not_null", "test")
    plan = plan_for(
        source("raw", "orders"),
        test("src_not_null", "raw.orders"),
        model("stg_orders", "raw.orders"),
        model("orders", "stg_orders"),
        seed("unrelated"),
    )

    results = run(plan, {src_test: DbtStatus.FAIL})

    assert waits(plan, "src_not_null", "test") == frozenset()
    assert src_test in waits(plan, "stg_orders")
    assert skipped(results) == {uid("stg_orders"), uid("orders")}
    assert results[uid("unrelated", "seed")].status is NodeStatus.SUCCESS


UNIT = "unit_test.proj.b.ut"
UNIT_TESTED = (seed("s"), model("a", "s"), model("b", "a"), unit_test("ut", "b"), model("c", "b"))


def test_a_unit_test_runs_before_its_model_and_after_the_models_parents() -> None:
    plan = plan_for(*UNIT_TESTED)

    assert plan.nodes[UNIT].waits_for == {uid("a")}
    assert UNIT in waits(plan, "b")
    assert wave_of(plan, uid("a")) < wave_of(plan, UNIT) < wave_of(plan, uid("b"))


def test_a_failing_unit_test_skips_its_model_and_the_models_descendants() -> None:
    results = run(plan_for(*UNIT_TESTED), {UNIT: DbtStatus.FAIL})

    assert skipped(results) == {uid("b"), uid("c")}
    assert results[uid("a")].status is NodeStatus.SUCCESS
    assert results[uid("b")].failed_upstream == (UNIT,)


def test_a_unit_test_of_a_model_whose_parent_failed_is_skipped() -> None:
    results = run(plan_for(*UNIT_TESTED), {uid("a"): DbtStatus.ERROR})

    assert skipped(results) == {UNIT, uid("b"), uid("c")}


@pytest.mark.parametrize("severity", ["warn", "WARN", "Warn"])
def test_a_failing_warn_severity_test_blocks_nothing(severity: str) -> None:
    plan = plan_for(model("a"), test("t", "a", severity=severity), model("b", "a"))

    results = run(plan, {uid("t", "test"): DbtStatus.FAIL})

    assert plan.nodes[uid("t", "test")].can_block is False
    assert skipped(results) == set()
    assert results[uid("b")].status is NodeStatus.SUCCESS


@pytest.mark.parametrize("status", [DbtStatus.ERROR, DbtStatus.RUNTIME_ERROR])
def test_a_warn_severity_test_that_errors_at_runtime_still_blocks(status: DbtStatus) -> None:
    plan = plan_for(model("a"), test("t", "a", severity="warn"), model("b", "a"))

    results = run(plan, {uid("t", "test"): status})

    assert skipped(results) == {uid("b")}


@pytest.mark.parametrize("severity", ["ERROR", "error"])
def test_a_failing_error_severity_test_blocks_in_any_casing(severity: str) -> None:
    plan = plan_for(model("a"), test("t", "a", severity=severity), model("b", "a"))

    assert plan.nodes[uid("t", "test")].can_block is True
    assert skipped(run(plan, {uid("t", "test"): DbtStatus.FAIL})) == {uid("b")}


DEFERRABLE = (
    model("a"),
    test("not_null_a", "a"),
    model("b", "a"),
    test("not_null_b", "b"),
    model("c", "b"),
    unit_test("ut", "c"),
)


def test_deferred_tests_are_phase_one_and_non_tests_never_wait_for_them() -> None:
    plan = plan_for(*DEFERRABLE, strategy=DEFERRED)

    phases = {u: n.phase for u, n in plan.nodes.items()}
    assert phases == {
        uid("a"): 0,
        uid("b"): 0,
        uid("c"): 0,
        uid("not_null_a", "test"): 1,
        uid("not_null_b", "test"): 1,
        "unit_test.proj.c.ut": 1,
    }
    assert waits(plan, "b") == {uid("a")}
    assert waits(plan, "c") == {uid("b")}
    assert plan.waves[-1].node_ids == (
        "test.proj.not_null_a",
        "test.proj.not_null_b",
        "unit_test.proj.c.ut",
    )


def test_deferred_tests_start_only_after_every_phase_zero_node_ended() -> None:
    schedule = Schedule.start(plan_for(*DEFERRABLE, strategy=DEFERRED))

    assert schedule.ready() == (uid("a"),)
    schedule.complete(uid("a"), NodeResult(uid("a"), NodeStatus.SUCCESS))
    assert schedule.ready() == (uid("b"),)
    schedule.complete(uid("b"), NodeResult(uid("b"), NodeStatus.SUCCESS))
    assert schedule.ready() == (uid("c"),)
    progress = schedule.complete(uid("c"), NodeResult(uid("c"), NodeStatus.SUCCESS))
    assert sorted(progress.ready) == [
        "test.proj.not_null_a",
        "test.proj.not_null_b",
        "unit_test.proj.c.ut",
    ]


def test_a_failing_deferred_test_skips_nothing_and_a_failing_model_skips_its_tests() -> None:
    plan = plan_for(*DEFERRABLE, strategy=DEFERRED)

    assert skipped(run(plan, {uid("not_null_a", "test"): DbtStatus.FAIL})) == set()
    assert skipped(run(plan, {uid("b"): DbtStatus.ERROR})) == {
        uid("not_null_b", "test"),
        uid("c"),
        "unit_test.proj.c.ut",
    }


def test_skip_plans_no_tests_and_says_why_each_selected_test_is_left_out() -> None:
    plan = plan_for(*DEFERRABLE, strategy=SKIP)

    assert set(plan.nodes) == {uid("a"), uid("b"), uid("c")}
    assert set(plan.left_out) == {
        uid("not_null_a", "test"),
        uid("not_null_b", "test"),
        "unit_test.proj.c.ut",
    }
    assert all("skip" in reason for reason in plan.left_out.values())
    assert waits(plan, "b") == {uid("a")}


EPHEMERAL = (
    seed("s"),
    model("a", "s"),
    model("eph", "a", materialized="ephemeral"),
    model("c", "eph"),
)


def test_a_model_behind_an_ephemeral_model_waits_for_the_ephemerals_parent() -> None:
    plan = plan_for(*EPHEMERAL)

    assert waits(plan, "c") == {uid("a")}
    assert uid("eph") not in plan.nodes
    assert "ephemeral" in plan.left_out[uid("eph")]


def test_the_graph_traces_executable_parents_through_ephemeral_models_and_drops_sources() -> None:
    graph = build_graph(
        manifest_of(
            source("raw", "events"),
            *EPHEMERAL,
            model("eph2", "eph", "raw.events", materialized="ephemeral"),
            model("d", "eph2", "s"),
        )
    )

    assert graph.executable_parents(uid("c")) == {uid("a")}
    assert graph.executable_parents(uid("d")) == {uid("a"), uid("s", "seed")}
    assert graph.executable_parents(uid("s", "seed")) == frozenset()


def test_a_failure_upstream_of_an_ephemeral_model_skips_what_reads_the_ephemeral() -> None:
    assert skipped(run(plan_for(*EPHEMERAL), {uid("a"): DbtStatus.ERROR})) == {uid("c")}


def test_a_test_on_an_ephemeral_model_waits_for_its_parent_and_blocks_its_readers() -> None:
    plan = plan_for(*EPHEMERAL, test("eph_test", "eph"))
    eph_test = uid("eph_test", "test")

    results = run(plan, {eph_test: DbtStatus.FAIL})

    assert plan.nodes[eph_test].waits_for == {uid("a")}
    assert eph_test in waits(plan, "c")
    assert skipped(results) == {uid("c")}


def test_disabled_nodes_and_operations_are_not_graph_members() -> None:
    hook = model("hook")
    hook.update(resource_type="operation", unique_id="operation.proj.hook")
    graph = build_graph(manifest_of(model("a"), model("off", "a", enabled=False), hook))

    assert set(graph.members) == {uid("a")}
    with pytest.raises(UnknownNodeError, match="model.proj.off"):
        plan_build(graph, [uid("off")])
    with pytest.raises(UnknownNodeError, match="operation.proj.hook"):
        plan_build(graph, ["operation.proj.hook"])
