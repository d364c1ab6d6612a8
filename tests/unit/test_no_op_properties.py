"""Properties of exposures and saved queries on random projects with a semantic layer.

The reference is ``test_schedule_properties``' model of dbt's rules: ``dbt
build`` runs a node after everything it reaches upstream (with dbt's test
edges), and skips it when one of those failed. dbt runs nothing for an
exposure or a saved query: it reports ``no-op``, or ``skipped`` after such a
failure, and never skips anything because of one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.plan import Plan
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE
from tests.unit.fakes import FakeExecutor
from tests.unit.strategies import Scenario, scenarios
from tests.unit.test_schedule_properties import (
    NO_OP,
    blocks,
    closure,
    dbt_order,
    drive,
    no_op_ids,
    plan_of,
)

semantic_scenarios = scenarios(semantic=True)


def failed_upstream(scenario: Scenario, plan: Plan, ran: set[str], uid: str) -> set[str]:
    """The planned nodes upstream of ``uid`` that ran and failed in a way that skips."""
    order = dbt_order(scenario.graph, plan.test_strategy)
    return {
        f
        for f in order[uid] & plan.nodes.keys()
        if f in ran and blocks(scenario.graph, f, scenario.outcomes[f])
    }


def check_no_op_results(
    scenario: Scenario, plan: Plan, results: dict[str, NodeResult], ran: set[str]
) -> None:
    """Each no-op node is skipped, naming a real failure, iff something upstream
    that ran failed; otherwise it is dbt's no-op."""
    assert results.keys() == plan.nodes.keys()
    for uid in no_op_ids(plan):
        result, failed = results[uid], failed_upstream(scenario, plan, ran, uid)
        if failed:
            assert result.status is NodeStatus.SKIPPED, uid
            assert result.reason == UPSTREAM_FAILURE
            assert set(result.failed_upstream) <= failed
        else:
            assert (result.status, result.dbt_status) == (NodeStatus.SUCCESS, DbtStatus.NO_OP)
            assert result.message == "NO-OP"


@settings(max_examples=150, deadline=None)
@given(semantic_scenarios)
def test_no_planned_node_ever_waits_for_or_is_blocked_by_an_exposure_or_saved_query(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)
    no_ops = no_op_ids(plan)
    selected = {u for u in scenario.selected if scenario.graph.members[u].resource_type in NO_OP}

    assert no_ops == selected
    for node in plan.nodes.values():
        assert not node.waits_for & no_ops
        assert not node.blocked_by & no_ops
        assert node.phase == 0 or node.unique_id not in no_ops


@settings(max_examples=150, deadline=None)
@given(semantic_scenarios)
def test_every_node_waits_for_what_dbt_runs_before_it_less_the_no_op_nodes(
    scenario: Scenario,
) -> None:
    plan = plan_of(scenario)
    order = dbt_order(scenario.graph, scenario.strategy)
    waits = closure({uid: n.waits_for for uid, n in plan.nodes.items()})
    runnable = plan.nodes.keys() - no_op_ids(plan)

    for uid in plan.nodes:
        assert waits[uid] == order[uid] & runnable, uid


@settings(max_examples=120, deadline=None)
@given(semantic_scenarios, st.data())
def test_the_schedule_skips_a_no_op_node_exactly_when_an_upstream_node_failed(
    scenario: Scenario, data: st.DataObject
) -> None:
    plan = plan_of(scenario)
    run = drive(plan, scenario.outcomes, lambda ready: data.draw(st.sampled_from(ready)))
    ran = set(run.completed) - no_op_ids(plan)

    assert run.schedule.finished
    check_no_op_results(scenario, plan, dict(run.schedule.results), ran)


@settings(max_examples=80, deadline=None)
@given(semantic_scenarios, st.booleans())
def test_the_thread_driver_ends_them_without_the_executor_and_skips_them_like_dbt(
    scenario: Scenario, per_wave: bool
) -> None:
    plan = plan_of(scenario)
    executor = FakeExecutor(outcomes=dict(scenario.outcomes))  # raises when given one
    nodes = {uid: scenario.graph.members[uid] for uid in plan.nodes}

    results = ThreadPoolDriver(executor, max_workers=3, per_wave=per_wave).run(
        plan, nodes, InvocationOptions()
    )

    no_ops = no_op_ids(plan)
    assert not no_ops & set(executor.ran)
    assert not no_ops & {uid for wave in executor.waves for uid in wave}
    assert executor.started == [tuple(sorted(plan.nodes.keys() - no_ops))]
    check_no_op_results(scenario, plan, results, set(executor.ran))
