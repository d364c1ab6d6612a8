"""BuildPlan: the dry run's text and JSON forms, and why each node is planned."""

from __future__ import annotations

import json

from prefect_dbt_orchestrator.domain.build_plan import BuildPlan, build_plan_to_dict
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.plan import plan_build
from tests.unit.builders import manifest_of, model, seed, test, uid


def _build_plan(cache: dict[str, str] | None = None) -> BuildPlan:
    graph = build_graph(
        manifest_of(seed("raw"), model("stg", "raw", materialized="view"), test("t", "stg"))
    )
    plan = plan_build(graph, graph.executable_ids())
    reasons = {uid("stg"): "tag:daily", uid("raw", "seed"): "+stg (parent of model.proj.stg)"}
    return BuildPlan(plan, reasons, cache_predictions=cache)


def test_the_text_form_has_the_header_and_one_line_per_node_with_its_kind() -> None:
    text = str(_build_plan())
    assert text.startswith("BuildPlan: 3 node(s) in 3 wave(s)  |  max parallelism = 1")
    assert "    - model.proj.stg [model, view]" in text
    assert "    - seed.proj.raw [seed]" in text
    assert "Cache:" not in text


def test_cache_predictions_appear_per_node_and_in_a_footer() -> None:
    text = str(_build_plan({uid("stg"): "hit", uid("raw", "seed"): "miss"}))
    assert "model.proj.stg [model, view] (cache: hit)" in text
    assert "test.proj.t [test] (cache: excluded)" in text
    assert "Cache: 1 hit(s), 1 miss(es), 1 excluded" in text


def test_explain_says_why_a_node_is_planned_and_what_it_waits_for() -> None:
    line = _build_plan().explain(uid("stg"))
    assert line == "model.proj.stg: tag:daily; waits for seed.proj.raw"


def test_the_json_form_round_trips_through_json_with_waves_and_reasons() -> None:
    data = json.loads(json.dumps(build_plan_to_dict(_build_plan())))
    assert data["waves"] == [[uid("raw", "seed")], [uid("stg")], [uid("t", "test")]]
    assert data["nodes"][uid("stg")]["why"] == "tag:daily"
    assert data["nodes"][uid("t", "test")]["waits_for"] == [uid("stg")]
    assert data["nodes"][uid("t", "test")]["wave"] == 2
    assert data["estimated_parallelism"] == 1
