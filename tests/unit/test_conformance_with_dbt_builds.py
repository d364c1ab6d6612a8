"""The schedule skips exactly what real ``dbt build`` skipped, and never orders
a node before something dbt ran it after.

Each build of the corpus (one ``run_results.json`` per project and the eight
``jaffle_shop_duckdb/build_cases.jsonl`` builds) is replayed: the plan is made
for the nodes dbt selected, every node that really ran is completed with its
real status, and the nodes the schedule skips are compared with dbt's.

Exposures and saved queries are compared too: dbt runs nothing for them and
reports them ``no-op`` (the evaluator's exposure), or ``skipped`` when
something upstream failed (jaffle_shop's saved queries, behind metrics and
semantic models); the replay ends them with ``Schedule.end_no_ops`` as the
drivers do. Hooks (operations) run outside the DAG and are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from prefect_dbt_orchestrator.domain.graph import NO_OP_TYPES, build_graph
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, contract_status
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.schedule import Schedule
from tests.corpus import PROJECTS, jsonl, manifest, run_results

AT = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.frozen
class Ran:
    """One node of a real build: dbt's status and when it ran."""

    status: str
    started_at: datetime | None
    completed_at: datetime | None


def _when(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _from_run_results(project: str) -> dict[str, Ran]:
    build: dict[str, Ran] = {}
    for result in run_results(project)["results"]:
        timing = result["timing"]
        build[result["unique_id"]] = Ran(
            result["status"],
            _when(timing[0]["started_at"]) if timing else None,
            _when(timing[-1]["completed_at"]) if timing else None,
        )
    return build


def _from_build_case(case: dict[str, Any]) -> dict[str, Ran]:
    return {
        item["unique_id"]: Ran(item["status"], _when(item.get("started_at")), None)
        for item in case["executed"]
    }


BUILDS: list[Any] = [pytest.param(p, _from_run_results(p), id=f"{p}-run_results") for p in PROJECTS]
BUILDS += [
    pytest.param(
        "jaffle_shop_duckdb", _from_build_case(case), id=f"jaffle_shop_duckdb-{case['id']}"
    )
    for case in jsonl("jaffle_shop_duckdb", "build_cases.jsonl")
]


def _plan_for(project: str, build: dict[str, Ran]) -> tuple[Plan, dict[str, Ran]]:
    graph = build_graph(manifest(project))
    compared = {uid: ran for uid, ran in build.items() if not uid.startswith("operation.")}
    return plan_build(graph, compared, TestStrategy.IMMEDIATE), compared


def _replay(plan: Plan, build: dict[str, Ran]) -> tuple[set[str], set[str]]:
    """Feed real outcomes; return (nodes the schedule skipped, nodes it wanted to
    run, or ended as no-op, that dbt skipped or ran otherwise)."""
    schedule = Schedule.start(plan)
    wrongly_ready: set[str] = set()

    def start(released: tuple[str, ...]) -> list[str]:
        ended = schedule.end_no_ops(released, AT)
        wrongly_ready.update(
            r.unique_id for r in ended.no_ops if build[r.unique_id].status != "no-op"
        )
        return list(ended.ready)

    queue = start(schedule.ready())
    ours_skipped: set[str] = set()
    while queue:
        uid = queue.pop()
        dbt_status = DbtStatus(build[uid].status)
        if dbt_status in (DbtStatus.SKIPPED, DbtStatus.NO_OP):
            wrongly_ready.add(uid)
        progress = schedule.complete(uid, NodeResult(uid, contract_status(dbt_status), dbt_status))
        ours_skipped |= {skip.unique_id for skip in progress.skipped}
        queue.extend(start(progress.ready))
    assert schedule.finished
    return ours_skipped, wrongly_ready


@pytest.mark.parametrize(("project", "build"), BUILDS)
def test_the_schedule_skips_exactly_what_dbt_build_skipped(
    project: str, build: dict[str, Ran]
) -> None:
    plan, compared = _plan_for(project, build)
    assert set(plan.nodes) == set(compared)

    ours_skipped, wrongly_ready = _replay(plan, compared)

    dbt_skipped = {uid for uid, ran in compared.items() if ran.status == "skipped"}
    assert wrongly_ready == set()
    assert ours_skipped == dbt_skipped


@pytest.mark.parametrize(("project", "build"), BUILDS)
def test_every_node_started_after_everything_the_plan_makes_it_wait_for(
    project: str, build: dict[str, Ran]
) -> None:
    plan, compared = _plan_for(project, build)
    late = []
    for uid, node in plan.nodes.items():
        start = compared[uid].started_at
        for waited in node.waits_for:
            before = compared[waited]
            done = before.completed_at or before.started_at
            if start is not None and done is not None and start < done:
                late.append((uid, waited))
    assert late == []
    assert sum(1 for ran in compared.values() if ran.started_at) > 0


def test_the_corpus_builds_cover_errors_failures_and_skips() -> None:
    statuses = {
        ran.status for build in (_from_run_results(p) for p in PROJECTS) for ran in build.values()
    }
    assert {"success", "error", "skipped", "pass", "no-op"} <= statuses


def test_the_compared_builds_hold_a_no_op_exposure_and_skipped_saved_queries() -> None:
    no_ops = {
        (uid.split(".")[0], ran.status)
        for project in PROJECTS
        for uid, ran in _plan_for(project, _from_run_results(project))[1].items()
        if manifest(project).all_resources()[uid].resource_type in NO_OP_TYPES
    }
    assert no_ops == {("exposure", "no-op"), ("saved_query", "skipped")}
