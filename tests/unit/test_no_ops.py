"""Exposures and saved queries, planned as ``dbt build`` plans them.

dbt 1.11's build reports both without running anything: ``no-op`` (the
corpus' dbt_project_evaluator exposure, message ``NO-OP``), or ``skipped``
when something upstream failed (jaffle_shop's saved queries, which read
metrics on semantic models on failed models). Nothing waits for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver
from prefect_dbt_orchestrator.adapters.prefect._caching import CacheSetup, prepare_cache
from prefect_dbt_orchestrator.domain.build_plan import build_plan_to_dict, plan_selection
from prefect_dbt_orchestrator.domain.caching import CacheOptions, Prediction
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import ScheduleError
from prefect_dbt_orchestrator.domain.freshness import SourceLoad, read_source_loads, skip_unchanged
from prefect_dbt_orchestrator.domain.graph import build_graph, is_buildable, is_executable
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    NodeResult,
    NodeStatus,
    Timing,
    no_op_result,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.render import render_plan
from prefect_dbt_orchestrator.domain.run_results import result_entry
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE, Schedule
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from tests.corpus import manifest as corpus_manifest
from tests.corpus import run_results
from tests.unit.builders import (
    checked_source,
    exposure,
    manifest_of,
    metric,
    model,
    saved_query,
    seed,
    semantic_model,
    source,
    test,
    uid,
)
from tests.unit.fakes import FakeExecutor

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)
EXPOSURE = uid("dashboard", "exposure")
QUERY = uid("weekly", "saved_query")

# raw -> stg -> (ephemeral) eph -> orders -> semantic model -> metrics -> saved query;
# the exposure reads orders, a metric and a source; a test checks orders.
SHOP = (
    seed("raw"),
    source("app", "events"),
    model("stg", "raw"),
    model("eph", "stg", materialized="ephemeral"),
    model("orders", "eph"),
    test("not_null_orders", "orders"),
    semantic_model("orders_sm", "orders"),
    metric("revenue", "orders_sm"),
    metric("revenue_growth", "revenue"),
    saved_query("weekly", "revenue_growth"),
    exposure("dashboard", "orders", "revenue", "app.events"),
)


def _planned(
    *nodes: dict[str, Any], strategy: TestStrategy = TestStrategy.IMMEDIATE
) -> tuple[Plan, Mapping[str, Node]]:
    graph = build_graph(manifest_of(*nodes))
    plan = plan_build(graph, graph.members, strategy)
    return plan, {u: graph.members[u] for u in plan.nodes}


def _ok(unique_id: str) -> NodeResult:
    return NodeResult(unique_id, NodeStatus.SUCCESS, DbtStatus.SUCCESS)


# ---------------------------------------------------------------- the plan


def test_exposures_and_saved_queries_are_planned_but_not_executable() -> None:
    members = build_graph(manifest_of(*SHOP)).members

    assert not is_executable(members[EXPOSURE]) and is_buildable(members[EXPOSURE])
    assert not is_buildable(members[uid("revenue", "metric")])


def test_they_wait_for_their_nearest_planned_ancestors_through_metrics_and_ephemerals() -> None:
    plan, _ = _planned(*SHOP)

    assert plan.nodes[QUERY].waits_for == {uid("orders")}
    assert plan.nodes[EXPOSURE].waits_for == {uid("orders")}
    assert plan.nodes[QUERY].blocked_by == plan.nodes[QUERY].waits_for
    assert plan.nodes[EXPOSURE].is_no_op and not plan.nodes[uid("orders")].is_no_op
    assert set(plan.left_out) == {
        uid("eph"),
        "source.proj.app.events",
        uid("orders_sm", "semantic_model"),
        uid("revenue", "metric"),
        uid("revenue_growth", "metric"),
    }


def test_they_never_wait_for_a_test_of_their_parents_as_dbt_adds_no_test_edge_to_them() -> None:
    plan, _ = _planned(*SHOP)

    assert uid("not_null_orders", "test") not in plan.nodes[EXPOSURE].waits_for
    assert uid("not_null_orders", "test") not in plan.nodes[QUERY].waits_for


def test_a_model_reading_an_exposure_waits_for_what_it_would_wait_for_without_it() -> None:
    # dbt cannot parse such a model; the planner still never makes a node wait for one.
    plan, _ = _planned(*SHOP, model("after", "dashboard"))

    # orders, and (dbt's test edge: every parent of the test is upstream) its test
    assert plan.nodes[uid("after")].waits_for == {uid("orders"), uid("not_null_orders", "test")}
    assert plan.nodes[uid("after")].blocked_by == plan.nodes[uid("after")].waits_for


@pytest.mark.parametrize("strategy", list(TestStrategy))
def test_every_test_strategy_plans_them_in_the_first_phase(strategy: TestStrategy) -> None:
    plan, _ = _planned(*SHOP, strategy=strategy)

    assert plan.nodes[EXPOSURE].phase == plan.nodes[QUERY].phase == 0
    assert all(not node.waits_for & {EXPOSURE, QUERY} for node in plan.nodes.values())


def test_a_selection_without_them_plans_none_and_ls_still_lists_metrics() -> None:
    project = manifest_of(*SHOP)
    only_models = plan_selection(project, SelectionRequest(resource_types=("model",)))
    everything = plan_selection(project, SelectionRequest())

    assert EXPOSURE not in only_models.plan.nodes
    assert {EXPOSURE, QUERY} <= everything.plan.nodes.keys()
    assert uid("revenue", "metric") in everything.selected
    assert "metric: dbt build does not run it" in everything.plan.left_out.values()


def test_the_plan_text_and_json_show_them_in_their_wave() -> None:
    build_plan = plan_selection(manifest_of(*SHOP), SelectionRequest())

    text = render_plan(build_plan.plan)
    data = build_plan_to_dict(build_plan)

    assert f"    - {EXPOSURE} [exposure]" in text
    assert f"    - {QUERY} [saved_query]" in text
    assert data["nodes"][QUERY]["resource_type"] == "saved_query"
    assert data["nodes"][QUERY]["waits_for"] == [uid("orders")]
    assert data["node_count"] == len(build_plan.plan.nodes) == 6


# ---------------------------------------------------------------- the schedule


def test_a_no_op_result_is_what_dbt_reports_for_an_exposure() -> None:
    result = no_op_result(EXPOSURE, AT)

    assert (result.status, result.dbt_status) == (NodeStatus.SUCCESS, DbtStatus.NO_OP)
    assert result.message == "NO-OP" and result.failures == 0
    assert result.timing == Timing(AT, AT) and result.invocation is None
    assert not result.is_failure


def test_end_no_ops_ends_released_exposures_at_once_and_returns_the_rest() -> None:
    plan, _ = _planned(seed("raw"), model("a", "raw"), model("b", "a"), exposure("dash", "a"))
    schedule = Schedule.start(plan)
    schedule.complete(uid("raw", "seed"), _ok(uid("raw", "seed")))
    released = schedule.complete(uid("a"), _ok(uid("a"))).ready

    progress = schedule.end_no_ops(released, AT)

    assert set(released) == {uid("b"), uid("dash", "exposure")}
    assert progress.ready == (uid("b"),)
    assert progress.no_ops == (no_op_result(uid("dash", "exposure"), AT),)
    assert schedule.results[uid("dash", "exposure")].dbt_status is DbtStatus.NO_OP
    assert schedule.ready() == (uid("b"),)


def test_ending_the_last_first_phase_exposure_releases_the_deferred_tests() -> None:
    plan, _ = _planned(
        seed("raw"), exposure("dash", "raw"), test("t", "raw"), strategy=TestStrategy.DEFERRED
    )
    schedule = Schedule.start(plan)
    released = schedule.complete(uid("raw", "seed"), _ok(uid("raw", "seed"))).ready

    progress = schedule.end_no_ops(released, AT)

    assert progress.ready == (uid("t", "test"),)
    assert [r.unique_id for r in progress.no_ops] == [uid("dash", "exposure")]


def test_end_no_ops_refuses_an_exposure_that_is_not_ready() -> None:
    plan, _ = _planned(seed("raw"), exposure("dash", "raw"))
    schedule = Schedule.start(plan)

    with pytest.raises(ScheduleError, match="never ready"):
        schedule.end_no_ops([uid("dash", "exposure")], AT)


def test_a_failed_parent_skips_the_exposure_and_the_saved_query_naming_it() -> None:
    plan, _ = _planned(*SHOP)
    schedule = Schedule.start(plan)
    schedule.complete(uid("raw", "seed"), _ok(uid("raw", "seed")))
    schedule.complete(uid("stg"), _ok(uid("stg")))
    failed = NodeResult(uid("orders"), NodeStatus.ERROR, DbtStatus.ERROR)

    progress = schedule.complete(uid("orders"), failed)

    skipped = {s.unique_id: s for s in progress.skipped}
    assert {EXPOSURE, QUERY} <= skipped.keys()
    assert skipped[QUERY].failed_upstream == (uid("orders"),)
    assert skipped[QUERY].reason == UPSTREAM_FAILURE
    assert skipped[QUERY].dbt_status is DbtStatus.SKIPPED


# ---------------------------------------------------------------- the local driver


@pytest.mark.parametrize("per_wave", [False, True])
def test_the_thread_driver_never_hands_them_to_the_executor(per_wave: bool) -> None:
    plan, nodes = _planned(*SHOP)
    executor = FakeExecutor()  # it raises when given an exposure or a saved query

    results = ThreadPoolDriver(executor, per_wave=per_wave).run(plan, nodes, InvocationOptions())

    assert results.keys() == plan.nodes.keys()
    assert {results[u].dbt_status for u in (EXPOSURE, QUERY)} == {DbtStatus.NO_OP}
    assert {EXPOSURE, QUERY}.isdisjoint(executor.ran)
    assert {EXPOSURE, QUERY}.isdisjoint(executor.started[0])


@pytest.mark.parametrize("per_wave", [False, True])
def test_the_thread_driver_skips_them_after_an_upstream_error(per_wave: bool) -> None:
    plan, nodes = _planned(*SHOP)
    executor = FakeExecutor(outcomes={uid("stg"): DbtStatus.ERROR})

    results = ThreadPoolDriver(executor, per_wave=per_wave).run(plan, nodes, InvocationOptions())

    for unique_id in (EXPOSURE, QUERY):
        assert results[unique_id].status is NodeStatus.SKIPPED
        assert results[unique_id].failed_upstream == (uid("stg"),)


def test_a_failing_test_of_the_parent_leaves_the_exposure_a_no_op() -> None:
    plan, nodes = _planned(*SHOP)
    executor = FakeExecutor(outcomes={uid("not_null_orders", "test"): DbtStatus.FAIL})

    results = ThreadPoolDriver(executor).run(plan, nodes, InvocationOptions())

    assert results[EXPOSURE].dbt_status is results[QUERY].dbt_status is DbtStatus.NO_OP


# ---------------------------------------------------------------- run_results.json


def _corpus_entry(project: str, unique_id: str) -> dict[str, Any]:
    (entry,) = (r for r in run_results(project)["results"] if r["unique_id"] == unique_id)
    return dict(entry)


def _corpus_node(project: str, unique_id: str) -> Node:
    return corpus_manifest(project).all_resources()[unique_id]


# What we write exactly as dbt does (timing has one step, and thread_id is ours).
_SAME = (
    "status", "adapter_response", "failures", "compiled", "compiled_code", "relation_name",
    "batch_results", "unique_id",
)  # fmt: skip


def test_a_no_op_exposure_is_written_to_run_results_as_dbt_writes_it() -> None:
    project = "dbt_project_evaluator"
    unique_id = "exposure.dbt_project_evaluator_integration_tests.exposure_1"
    dbt = _corpus_entry(project, unique_id)

    ours = result_entry(no_op_result(unique_id, AT), _corpus_node(project, unique_id))

    assert {k: ours[k] for k in _SAME} == {k: dbt[k] for k in _SAME}
    assert ours["message"] == dbt["message"] == "NO-OP"
    assert list(ours) == list(dbt)
    assert [step["name"] for step in ours["timing"]] == ["execute"]
    assert ours["execution_time"] == 0.0


def test_a_skipped_saved_query_is_written_to_run_results_as_dbt_writes_it() -> None:
    project, unique_id = "jaffle_shop", "saved_query.jaffle_shop.revenue_metrics"
    dbt = _corpus_entry(project, unique_id)
    result = NodeResult(
        unique_id,
        NodeStatus.SKIPPED,
        DbtStatus.SKIPPED,
        reason=UPSTREAM_FAILURE,
        failed_upstream=(uid("order_items"),),
    )

    ours = result_entry(result, _corpus_node(project, unique_id))

    assert {k: ours[k] for k in _SAME} == {k: dbt[k] for k in _SAME}
    assert ours["timing"] == dbt["timing"] == []
    assert ours["execution_time"] == dbt["execution_time"] == 0
    assert dbt["message"] is None and ours["message"] == UPSTREAM_FAILURE  # documented


# ---------------------------------------------------------------- caching and freshness


def test_caching_excludes_them_whatever_the_excluded_types() -> None:
    members = build_graph(manifest_of(*SHOP)).members
    options = CacheOptions(exclude_resource_types=())

    assert (
        options.exclusion(members[EXPOSURE])
        == "exposure nodes run nothing (dbt reports them no-op)"
    )
    assert options.exclusion(members[QUERY]) is not None
    assert options.exclusion(members[uid("orders")]) is None


def test_prepare_cache_excludes_them_without_keying_them_or_asking_a_policy(
    tmp_path: Path,
) -> None:
    project = manifest_of(*SHOP)
    build_plan = plan_selection(project, SelectionRequest())
    asked: list[str] = []

    def factory(project_dir: Path, view: Any, node: Node, upstream: Any) -> Any:
        from prefect_dbt_orchestrator.adapters.prefect._cache_policy import default_cache_policy

        asked.append(node.unique_id)
        return default_cache_policy(project_dir, view, node, upstream)

    setup = CacheSetup(CacheOptions(), tmp_path, factory)
    cache = prepare_cache(
        setup, FakeExecutor(manifest=project), build_plan, InvocationOptions(), tmp_path
    )

    for unique_id in (EXPOSURE, QUERY):
        assert cache.decisions[unique_id].prediction is Prediction.EXCLUDED
        assert cache.hit(unique_id) is None
    assert {EXPOSURE, QUERY}.isdisjoint(asked)
    assert cache.decisions[uid("orders")].prediction is Prediction.MISS


def _loads(users_loaded: str) -> dict[str, SourceLoad]:
    """orders last loaded on Jan 1, users on ``users_loaded``."""
    loaded = {"raw.orders": "2024-01-01", "raw.users": users_loaded}
    data = {
        "results": [
            {"unique_id": f"source.proj.{name}", "status": "pass", "max_loaded_at": f"{day}T00:00Z"}
            for name, day in loaded.items()
        ]
    }
    return read_source_loads(data, source="sources.json")


def test_source_freshness_skips_an_exposure_exactly_when_all_its_sources_are_stale() -> None:
    project = manifest_of(
        checked_source("raw", "orders"),
        checked_source("raw", "users"),
        model("stg_orders", "raw.orders"),
        exposure("orders_dash", "stg_orders"),
        exposure("everything_dash", "stg_orders", "raw.users"),
    )
    graph = build_graph(project)
    planned = plan_build(graph, graph.members).nodes

    skips = skip_unchanged(project, planned, _loads("2024-01-02"), _loads("2024-01-01"))

    assert set(skips.skipped) == {uid("stg_orders"), uid("orders_dash", "exposure")}
