"""Kahn layering into waves, phase barriers, and cycles named precisely."""

from __future__ import annotations

import pytest

from prefect_dbt_orchestrator.domain.errors import CycleError
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.placement import Prerequisites, TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.waves import Wave, layer_into_waves
from tests.unit.builders import manifest_of, model, seed, test, uid


def prereqs(*waits: str, phase: int = 0) -> Prerequisites:
    return Prerequisites(frozenset(waits), frozenset(waits), phase)


def test_no_nodes_make_no_waves() -> None:
    assert layer_into_waves({}) == ()


def test_independent_nodes_share_the_first_wave_sorted_by_id() -> None:
    waves = layer_into_waves({"c": prereqs(), "a": prereqs(), "b": prereqs()})

    assert waves == (Wave(0, ("a", "b", "c")),)


def test_a_chain_takes_one_wave_per_node() -> None:
    waves = layer_into_waves({"c": prereqs("b"), "b": prereqs("a"), "a": prereqs()})

    assert waves == (Wave(0, ("a",)), Wave(1, ("b",)), Wave(2, ("c",)))


def test_a_node_sits_one_wave_after_its_latest_prerequisite_not_its_earliest() -> None:
    waves = layer_into_waves(
        {
            "a": prereqs(),
            "b": prereqs("a"),
            "c": prereqs("b"),
            "d": prereqs("a", "c"),
            "e": prereqs("a"),
        }
    )

    assert waves == (Wave(0, ("a",)), Wave(1, ("b", "e")), Wave(2, ("c",)), Wave(3, ("d",)))


def test_a_diamond_takes_three_waves() -> None:
    waves = layer_into_waves(
        {
            "top": prereqs(),
            "left": prereqs("top"),
            "right": prereqs("top"),
            "bottom": prereqs("left", "right"),
        }
    )

    assert waves == (Wave(0, ("top",)), Wave(1, ("left", "right")), Wave(2, ("bottom",)))


def test_prerequisites_outside_the_nodes_are_ignored() -> None:
    waves = layer_into_waves({"b": prereqs("unplanned"), "c": prereqs("b")})

    assert waves == (Wave(0, ("b",)), Wave(1, ("c",)))


def test_phase_one_starts_after_the_last_phase_zero_wave_even_without_waits() -> None:
    waves = layer_into_waves(
        {
            "a": prereqs(),
            "b": prereqs("a"),
            "c": prereqs("b"),
            "t_free": prereqs(phase=1),
            "t_a": prereqs("a", phase=1),
            "t_after": prereqs("t_a", phase=1),
        }
    )

    assert waves == (
        Wave(0, ("a",)),
        Wave(1, ("b",)),
        Wave(2, ("c",)),
        Wave(3, ("t_a", "t_free")),
        Wave(4, ("t_after",)),
    )


def test_only_phase_one_nodes_start_at_wave_zero() -> None:
    assert layer_into_waves({"t": prereqs(phase=1)}) == (Wave(0, ("t",)),)


def test_the_plan_waves_of_an_immediate_build_interleave_tests_and_models() -> None:
    graph = build_graph(
        manifest_of(seed("s"), test("t_s", "s"), model("a", "s"), test("t_a", "a"), model("b", "a"))
    )

    plan = plan_build(graph, graph.members, TestStrategy.IMMEDIATE)

    assert [w.node_ids for w in plan.waves] == [
        (uid("s", "seed"),),
        (uid("t_s", "test"),),
        (uid("a"),),
        (uid("t_a", "test"),),
        (uid("b"),),
    ]
    assert plan.estimated_parallelism == 1


def test_a_cycle_names_only_the_nodes_on_it_not_their_parents_or_descendants() -> None:
    nodes = {
        "parent_d": prereqs(),
        "cycle_a": prereqs("cycle_b", "parent_d"),
        "cycle_b": prereqs("cycle_a"),
        "child_c": prereqs("cycle_a"),
    }

    with pytest.raises(CycleError) as raised:
        layer_into_waves(nodes)

    assert raised.value.stuck == ("cycle_a", "cycle_b")
    assert "child_c" not in str(raised.value)
    assert "parent_d" not in str(raised.value)


def test_two_separate_cycles_are_both_named_and_their_descendants_are_not() -> None:
    nodes = {
        "a": prereqs("b"),
        "b": prereqs("a"),
        "x": prereqs("y"),
        "y": prereqs("z"),
        "z": prereqs("x"),
        "after": prereqs("a", "x"),
    }

    with pytest.raises(CycleError) as raised:
        layer_into_waves(nodes)

    assert raised.value.stuck == ("a", "b", "x", "y", "z")


def test_a_cycle_message_names_the_nodes_and_the_fix() -> None:
    with pytest.raises(CycleError) as raised:
        layer_into_waves({"a": prereqs("b"), "b": prereqs("a")})

    message = str(raised.value)
    assert "a, b" in message
    assert "remove one ref between them" in message


def test_planning_a_manifest_with_a_cycle_names_only_the_models_on_the_cycle() -> None:
    graph = build_graph(
        manifest_of(model("d"), model("a", "b", "d"), model("b", "a"), model("c", "a"))
    )

    with pytest.raises(CycleError) as raised:
        plan_build(graph, graph.members, TestStrategy.IMMEDIATE)

    assert raised.value.stuck == (uid("a"), uid("b"))


@pytest.mark.parametrize("strategy", [TestStrategy.DEFERRED, TestStrategy.SKIP])
def test_planning_a_cycle_under_any_strategy_names_only_the_cycle(strategy: TestStrategy) -> None:
    graph = build_graph(
        manifest_of(model("d"), model("a", "b", "d"), model("b", "a"), model("c", "a"))
    )

    with pytest.raises(CycleError) as raised:
        plan_build(graph, [uid("c"), uid("d")], strategy)

    assert raised.value.stuck == (uid("a"), uid("b"))
