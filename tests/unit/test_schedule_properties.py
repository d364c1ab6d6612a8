"""Properties of the plan, the schedule and the per-wave driver on random projects.

The expected answers come from a small reference written from dbt's rules, not
from the planner: the order ``dbt build`` imposes is reachability in the graph
with dbt's test edges (``add_test_edges``) and unit tests moved before their
model; a failure (error or skip, but not a warn-severity test's FAIL) skips
everything downstream of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import ScheduleError, UnknownNodeError
from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph
from prefect_dbt_orchestrator.domain.manifest import ResourceType
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE, Schedule
from tests.unit.builders import manifest_of
from tests.unit.fakes import FakeExecutor
from tests.unit.strategies import Scenario, result_of, scenarios

_TESTS = (ResourceType.TEST, ResourceType.UNIT_TEST)
_EXECUTABLE = (
    ResourceType.MODEL,
    ResourceType.SEED,
    ResourceType.SNAPSHOT,
    ResourceType.TEST,
    ResourceType.UNIT_TEST,
    ResourceType.FUNCTION,
)
# dbt build reports them (no-op, or skipped) but runs nothing for them.
NO_OP = (ResourceType.EXPOSURE, ResourceType.SAVED_QUERY)
_SUCCEEDED = (DbtStatus.SUCCESS, DbtStatus.PASS, DbtStatus.WARN, DbtStatus.NO_OP)
AT = datetime(2026, 1, 1, tzinfo=UTC)


# --- the reference -----------------------------------------------------------


def closure(parents: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Every id's ancestors through ``parents`` (acyclic)."""
    found: dict[str, frozenset[str]] = {}
    for start in parents:
        seen: set[str] = set()
        stack = list(parents[start])
        while stack:
            uid = stack.pop()
            if uid not in seen:
                seen.add(uid)
                stack.extend(parents.get(uid, ()))
        found[start] = frozenset(seen)
    return found


def dbt_order(graph: DbtGraph, strategy: TestStrategy) -> dict[str, frozenset[str]]:
    """For each member, every member dbt runs before it (all of them, planned or not)."""
    parents = {uid: set(ids) for uid, ids in graph.parents.items()}
    if strategy is not TestStrategy.IMMEDIATE:
        return closure(parents)
    upstream = closure(parents)
    for test_id, test in graph.members.items():
        if test.resource_type is ResourceType.TEST and graph.parents[test_id]:
            for uid, node in graph.members.items():
                targeted = node.resource_type in (
                    ResourceType.MODEL,
                    ResourceType.SEED,
                    ResourceType.SNAPSHOT,
                )
                if targeted and set(graph.parents[test_id]) <= upstream[uid]:
                    parents[uid].add(test_id)
    before = {uid: set(ids) for uid, ids in parents.items()}
    for uid, node in graph.members.items():
        if node.resource_type is ResourceType.UNIT_TEST and graph.parents[uid]:
            (tested,) = graph.parents[uid]
            parents[uid] = before[tested]
            parents[tested].add(uid)
    return closure(parents)


def is_warn_test(graph: DbtGraph, uid: str) -> bool:
    node = graph.members[uid]
    severity = (node.config.severity or "").lower()
    return node.resource_type is ResourceType.TEST and severity == "warn"


def blocks(graph: DbtGraph, uid: str, status: DbtStatus) -> bool:
    """dbt: an error or a skip skips what follows; a warn-severity test's FAIL does not."""
    if status in _SUCCEEDED:
        return False
    return not (status is DbtStatus.FAIL and is_warn_test(graph, uid))


def expected_to_run(scenario: Scenario, plan: Plan) -> set[str]:
    """The planned nodes dbt runs: those with no blocking failure upstream."""
    graph = scenario.graph
    order = dbt_order(graph, plan.test_strategy)
    ran: set[str] = set()
    for uid in sorted(plan.nodes, key=lambda u: len(order[u])):
        upstream = order[uid] & plan.nodes.keys()
        if not any(f in ran and blocks(graph, f, scenario.outcomes[f]) for f in upstream):
            ran.add(uid)
    return ran


def no_op_ids(plan: Plan) -> frozenset[str]:
    return frozenset(uid for uid, node in plan.nodes.items() if node.resource_type in NO_OP)


def plan_of(scenario: Scenario) -> Plan:
    return plan_build(scenario.graph, scenario.selected, scenario.strategy)


# --- driving the schedule ------------------------------------------------------


@attrs.define
class Run:
    """What a driver saw: when each node became ready, and how each ended."""

    schedule: Schedule
    ended_when_ready: dict[str, frozenset[str]] = attrs.Factory(dict)
    completed: dict[str, NodeResult] = attrs.Factory(dict)
    skipped: list[NodeResult] = attrs.Factory(list)

    def note_ready(self, ready: Iterable[str]) -> None:
        """Note what had ended when each node was released; end the no-op ones
        at once, as drivers do, and note what those ends released."""
        todo = list(ready)
        while todo:
            for uid in todo:
                self.ended_when_ready.setdefault(uid, frozenset(self.schedule.results))
            ended = self.schedule.end_no_ops(todo, AT)
            assert not ended.skipped
            self.completed.update((r.unique_id, r) for r in ended.no_ops)
            todo = [uid for uid in ended.ready if uid not in self.ended_when_ready]


def drive(
    plan: Plan, outcomes: Mapping[str, DbtStatus], pick: Callable[[Sequence[str]], str]
) -> Run:
    """Complete one ready node at a time, chosen by ``pick``, until the schedule
    ends; exposures and saved queries end with ``end_no_ops`` as they are released."""
    run = Run(Schedule.start(plan))
    run.note_ready(run.schedule.ready())
    while not run.schedule.finished:
        running = run.schedule.ready()
        assert running, "the schedule stalled with nodes left"
        uid = pick(running)
        result = result_of(uid, outcomes[uid])
        progress = run.schedule.complete(uid, result)
        run.completed[uid] = result
        run.skipped.extend(progress.skipped)
        assert not {s.unique_id for s in progress.skipped} & set(running)
        assert not set(progress.ready) & set(running)
        assert set(run.schedule.ready()) == (set(running) - {uid}) | set(progress.ready)
        run.note_ready(progress.ready)
    return run


def drive_randomly(scenario: Scenario, data: st.DataObject) -> tuple[Plan, Run]:
    plan = plan_of(scenario)
    run = drive(plan, scenario.outcomes, lambda ready: data.draw(st.sampled_from(ready)))
    return plan, run


# --- the schedule ----------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_every_planned_node_ends_with_exactly_one_result_whatever_the_outcomes(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan, run = drive_randomly(scenario, data)

    skipped_ids = [s.unique_id for s in run.skipped]
    assert len(skipped_ids) == len(set(skipped_ids))
    assert not set(skipped_ids) & run.completed.keys()
    assert set(skipped_ids) | run.completed.keys() == plan.nodes.keys()
    assert dict(run.schedule.results) == {**run.completed, **{s.unique_id: s for s in run.skipped}}
    assert run.schedule.finished
    assert run.schedule.ready() == ()


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_no_node_starts_before_its_waits_and_every_earlier_phase_ended(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan, run = drive_randomly(scenario, data)

    assert run.completed.keys() <= run.ended_when_ready.keys()
    for uid, ended in run.ended_when_ready.items():
        node = plan.nodes[uid]
        assert node.waits_for <= ended, uid
        earlier = {u for u, n in plan.nodes.items() if n.phase < node.phase}
        assert earlier <= ended, uid


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_a_skipped_node_is_blocked_by_a_failure_and_names_a_node_that_really_failed(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan, run = drive_randomly(scenario, data)
    blocked_by = closure({uid: n.blocked_by for uid, n in plan.nodes.items()})
    results = run.schedule.results

    for skip in run.skipped:
        node = plan.nodes[skip.unique_id]
        assert skip.status is NodeStatus.SKIPPED
        assert skip.reason == UPSTREAM_FAILURE
        assert any(results[b].is_failure for b in node.blocked_by)
        (failed,) = skip.failed_upstream
        assert failed in blocked_by[skip.unique_id]
        assert failed in run.completed
        assert blocks(scenario.graph, failed, scenario.outcomes[failed])


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.data())
def test_a_node_is_skipped_exactly_when_something_it_is_blocked_by_failed_or_was_skipped(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan, run = drive_randomly(scenario, data)
    skipped = {s.unique_id for s in run.skipped}

    for uid, node in plan.nodes.items():
        failed_blockers = {
            b
            for b in node.blocked_by
            if b in skipped
            or (b in run.completed and blocks(scenario.graph, b, scenario.outcomes[b]))
        }
        assert (uid in skipped) == bool(failed_blockers), uid


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.data())
def test_completing_a_node_not_ready_twice_unknown_or_with_anothers_result_is_refused(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan = plan_of(scenario)
    schedule = Schedule.start(plan)
    while not schedule.finished:
        ready, results = schedule.ready(), dict(schedule.results)
        waiting = sorted(plan.nodes.keys() - set(ready) - results.keys())
        unknown = "model.proj.not_planned"
        refused: list[tuple[str, str, type[Exception]]] = [(unknown, unknown, UnknownNodeError)]
        if waiting:
            pending = data.draw(st.sampled_from(waiting))
            refused.append((pending, pending, ScheduleError))
        if results:
            ended = data.draw(st.sampled_from(sorted(results)))
            refused.append((ended, ended, ScheduleError))
        refused.append((ready[0], "model.proj.someone_else", ScheduleError))
        for uid, result_id, error in refused:
            try:
                schedule.complete(uid, result_of(result_id, DbtStatus.SUCCESS))
            except error:
                pass
            else:
                raise AssertionError(f"completing {uid} was accepted")
            assert schedule.ready() == ready
            assert dict(schedule.results) == results
        uid = data.draw(st.sampled_from(ready))
        schedule.complete(uid, result_of(uid, scenario.outcomes[uid]))


# --- the plan ----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_each_node_waits_for_exactly_what_dbt_build_runs_before_it(scenario: Scenario) -> None:
    plan = plan_of(scenario)
    order = dbt_order(scenario.graph, scenario.strategy)
    waits = closure({uid: n.waits_for for uid, n in plan.nodes.items()})
    blocked = closure({uid: n.blocked_by for uid, n in plan.nodes.items()})

    for uid in plan.nodes:
        expected = order[uid] & plan.nodes.keys()
        assert waits[uid] == expected, uid
        assert blocked[uid] == expected, uid


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_blocked_by_is_a_subset_of_waits_for_which_holds_only_other_planned_nodes(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)

    for uid, node in plan.nodes.items():
        assert node.blocked_by <= node.waits_for
        assert node.waits_for <= plan.nodes.keys() - {uid}


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_the_plan_holds_the_selected_executable_nodes_in_the_phase_of_the_strategy(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)
    graph = scenario.graph

    def runs(uid: str) -> bool:
        node = graph.members[uid]
        if node.resource_type in NO_OP:
            return True
        if node.resource_type not in _EXECUTABLE or node.config.materialized == "ephemeral":
            return False
        return not (scenario.strategy is TestStrategy.SKIP and node.resource_type in _TESTS)

    assert set(plan.nodes) == {uid for uid in scenario.selected if runs(uid)}
    assert set(plan.left_out) == set(scenario.selected) - set(plan.nodes)
    for uid, node in plan.nodes.items():
        is_test = graph.members[uid].resource_type in _TESTS
        assert node.phase == int(is_test and scenario.strategy is TestStrategy.DEFERRED)
        assert node.can_block == (not is_warn_test(graph, uid))
        if scenario.strategy is not TestStrategy.IMMEDIATE and not is_test:
            assert not any(graph.members[w].resource_type in _TESTS for w in node.waits_for)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.data())
def test_the_plan_is_the_same_for_the_same_input_and_any_order_of_the_selected_ids(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan = plan_of(scenario)
    again = plan_build(
        manifest_graph(scenario), list(reversed(scenario.selected)), scenario.strategy
    )
    shuffled = data.draw(st.permutations(scenario.selected))

    reordered = plan_build(scenario.graph, shuffled, scenario.strategy)

    assert again == plan
    assert reordered == plan
    assert list(reordered.nodes) == list(plan.nodes)
    assert list(reordered.left_out) == list(plan.left_out)
    assert plan_build(scenario.graph, scenario.selected * 2, scenario.strategy) == plan


def manifest_graph(scenario: Scenario) -> DbtGraph:
    """The graph built afresh from the same builder dicts."""
    return build_graph(manifest_of(*scenario.project.nodes))


# --- waves -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_each_node_sits_one_wave_after_its_latest_wait_or_at_its_phase_floor(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)
    wave_of = {uid: wave.index for wave in plan.waves for uid in wave.node_ids}
    phase0 = [wave_of[u] for u, n in plan.nodes.items() if n.phase == 0]
    floors = {0: 0, 1: max(phase0) + 1 if phase0 else 0}

    for uid, node in plan.nodes.items():
        assert all(wave_of[w] < wave_of[uid] for w in node.waits_for)
        latest = max((wave_of[w] + 1 for w in node.waits_for), default=0)
        assert wave_of[uid] == max(latest, floors[node.phase]), uid


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_every_planned_node_is_in_exactly_one_wave_and_waves_count_up_from_zero(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)
    placed = [uid for wave in plan.waves for uid in wave.node_ids]

    assert sorted(placed) == sorted(plan.nodes)
    assert [w.index for w in plan.waves] == list(range(len(plan.waves)))
    assert all(w.node_ids and list(w.node_ids) == sorted(w.node_ids) for w in plan.waves)


# --- the per-wave driver -------------------------------------------------------------


def run_per_wave(
    scenario: Scenario, plan: Plan, per_wave: bool = True
) -> tuple[FakeExecutor, dict[str, NodeResult]]:
    executor = FakeExecutor(outcomes=dict(scenario.outcomes))
    nodes = {uid: scenario.graph.members[uid] for uid in plan.nodes}
    driver = ThreadPoolDriver(executor, max_workers=3, per_wave=per_wave)
    return executor, driver.run(plan, nodes, InvocationOptions())


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_per_wave_runs_skip_only_descendants_of_failures(scenario: Scenario) -> None:
    check_only_descendants_of_failures_are_skipped(scenario, per_wave=True)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_per_node_threaded_runs_skip_only_descendants_of_failures(scenario: Scenario) -> None:
    check_only_descendants_of_failures_are_skipped(scenario, per_wave=False)


def check_only_descendants_of_failures_are_skipped(scenario: Scenario, per_wave: bool) -> None:
    plan = plan_of(scenario)
    executor, results = run_per_wave(scenario, plan, per_wave)
    expected = expected_to_run(scenario, plan)
    order = dbt_order(scenario.graph, plan.test_strategy)
    no_ops = no_op_ids(plan)

    assert sorted(executor.ran) == sorted(expected - no_ops)
    assert results.keys() == plan.nodes.keys()
    for uid, result in results.items():
        if uid in expected:
            assert result.dbt_status is (
                DbtStatus.NO_OP if uid in no_ops else scenario.outcomes[uid]
            )
        else:
            assert result.status is NodeStatus.SKIPPED
            (failed,) = result.failed_upstream
            assert failed in order[uid] and failed in expected


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_per_wave_runs_call_dbt_once_per_plan_wave_when_nothing_fails(scenario: Scenario) -> None:
    plan = plan_of(scenario)
    everything_passes = attrs.evolve(
        scenario, outcomes={uid: DbtStatus.SUCCESS for uid in scenario.outcomes}
    )
    executor, _ = run_per_wave(everything_passes, plan)
    no_ops = no_op_ids(plan)
    dbt_waves = [tuple(u for u in w.node_ids if u not in no_ops) for w in plan.waves]

    assert [tuple(sorted(w)) for w in executor.waves] == [w for w in dbt_waves if w]
