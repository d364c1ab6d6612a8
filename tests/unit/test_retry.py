"""``domain.retry``: what a retry reads from a previous run, runs again and carries over."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeStatus
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.redaction import REDACTED
from prefect_dbt_orchestrator.domain.result_codec import result_from_dict, result_to_dict
from prefect_dbt_orchestrator.domain.retry import (
    PreviousRun,
    PreviousRunError,
    SecretVarsError,
    plan_retry,
    read_previous_run,
)
from tests.corpus import PROJECTS, manifest, run_results

RETRIED_WORDS = {"error", "fail", "skipped", "runtime error", "partial success"}


def _entry(uid: str, status: str, **more: Any) -> dict[str, Any]:
    return {"unique_id": uid, "status": status, "timing": [], "message": None, **more}


def _document(*entries: dict[str, Any], args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"results": list(entries), "args": args or {"which": "build"}}


@pytest.mark.parametrize("project", PROJECTS)
def test_a_corpus_build_is_retried_exactly_where_dbt_retry_would(project: str) -> None:
    document = run_results(project)
    previous = read_previous_run(document, project)
    expected = {e["unique_id"] for e in document["results"] if e["status"] in RETRIED_WORDS}

    assert set(previous.to_retry) == expected
    carried = previous.carried_over()
    assert set(carried) == {e["unique_id"] for e in document["results"]} - expected
    assert all(r.carried_over and r.status is NodeStatus.SUCCESS for r in carried.values())

    build_plan = plan_retry(manifest(project), previous, TestStrategy.IMMEDIATE)
    graph = build_graph(manifest(project))
    assert set(build_plan.plan.nodes) <= expected
    # a node that is not planned is one dbt reports but we do not plan (hooks, exposures...)
    for uid in expected - set(build_plan.plan.nodes):
        assert uid in graph.members or uid.startswith("operation.")
    # each retried node waits only for retried nodes
    for node in build_plan.plan.nodes.values():
        assert node.waits_for <= set(build_plan.plan.nodes)
    assert all(why.startswith("retry: ") for why in build_plan.reasons.values())


def test_a_retry_plan_keeps_dbt_s_order_among_the_retried_nodes() -> None:
    document = run_results("jaffle_shop")
    previous = read_previous_run(document, "jaffle_shop")
    build_plan = plan_retry(manifest("jaffle_shop"), previous)
    graph = build_graph(manifest("jaffle_shop"))
    planned = build_plan.plan.nodes
    for uid, node in planned.items():
        direct = {p for p in graph.parents.get(uid, ()) if p in planned}
        if uid.startswith("unit_test."):  # dbt runs a unit test before its model
            assert all(uid in planned[p].waits_for for p in direct), uid
        else:
            assert direct <= node.waits_for, uid


def test_a_node_the_project_lost_is_neither_retried_nor_carried_and_is_named() -> None:
    gone = "model.jaffle_shop.was_removed"
    document = run_results("jaffle_shop")
    document = {**document, "results": [*document["results"], _entry(gone, "error")]}
    previous = read_previous_run(document, "run_results.json")

    build_plan = plan_retry(manifest("jaffle_shop"), previous)

    assert gone in previous.to_retry and gone not in build_plan.plan.nodes
    assert gone not in previous.carried_over()
    assert any(gone in w and "no longer in the project" in w for w in build_plan.warnings)


def test_results_are_read_with_their_status_timing_and_response() -> None:
    entry = _entry(
        "model.p.a",
        "success",
        timing=[
            {"name": "compile", "started_at": "2026-01-01T10:00:00Z", "completed_at": None},
            {
                "name": "execute",
                "started_at": "2026-01-01T10:00:01.5Z",
                "completed_at": "2026-01-01T10:00:04Z",
            },
        ],
        adapter_response={"_message": "OK", "rows_affected": 7},
        message="OK",
    )
    previous = read_previous_run(_document(entry, _entry("test.p.t", "warn", failures=2)), "f")

    model, test = previous.results["model.p.a"], previous.results["test.p.t"]
    assert model.status is NodeStatus.SUCCESS and model.dbt_status is DbtStatus.SUCCESS
    assert model.timing is not None and model.timing.duration_seconds == 4.0
    assert model.rows_affected == 7 and model.adapter_response["_message"] == "OK"
    # warn is a success: dbt retry leaves it alone, and so do we
    assert test.dbt_status is DbtStatus.WARN and test.failures == 2
    assert previous.to_retry == ()


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "not a run_results.json"),
        ({"results": {}}, "not a run_results.json"),
        ({"results": [{"status": "success"}]}, "a result has no unique_id"),
        ({"results": [_entry("model.p.a", "exploded")]}, "unknown status 'exploded'"),
    ],
)
def test_an_unusable_document_is_a_plan_error_naming_the_file(document: Any, problem: str) -> None:
    with pytest.raises(PreviousRunError, match=problem) as raised:
        read_previous_run(document, "target/run_results.json")
    assert isinstance(raised.value, ValueError)
    assert "cannot retry from target/run_results.json" in str(raised.value)
    assert "then retry" in str(raised.value)


def test_the_recorded_flags_are_replayed_unless_given() -> None:
    args = {"which": "build", "full_refresh": True, "target": "prod", "vars": {"day": "mon"}}
    previous = read_previous_run(_document(args=args), "f")

    assert previous.full_refresh and previous.target == "prod"
    replayed = previous.replayed_extra_args(["--threads", "2"])
    assert replayed[:2] == ("--threads", "2") and replayed[2] == "--vars"
    assert json.loads(replayed[3]) == {"day": "mon"}
    given = previous.replayed_extra_args(["--vars", "{day: tue}"])
    assert given == ("--vars", "{day: tue}")
    assert read_previous_run(_document(), "f").replayed_extra_args(()) == ()


def test_redacted_vars_cannot_be_replayed_and_the_error_says_to_pass_them() -> None:
    args = {"vars": {"password": REDACTED, "nested": {"token": f"x{REDACTED}"}, "day": "mon"}}
    previous = read_previous_run(_document(args=args), "target/run_results.json")

    with pytest.raises(SecretVarsError) as raised:
        previous.replayed_extra_args(())
    assert raised.value.keys == ("nested", "password")
    assert "extra_cli_args=['--vars'" in str(raised.value)
    assert previous.replayed_extra_args(["--vars", "{password: x}"]) == ("--vars", "{password: x}")


def test_the_selection_is_the_recorded_one() -> None:
    args = {
        "select": ["tag:daily", "stg_users+"],
        "exclude": ["x"],
        "resource_types": ["model"],
        "indirect_selection": "cautious",
        "selector": None,
    }
    selection = read_previous_run(_document(args=args), "f").selection()

    assert selection.select == ("tag:daily", "stg_users+") and selection.exclude == ("x",)
    assert selection.resource_types == ("model",) and selection.indirect_selection == "cautious"
    assert selection.selector is None


def test_carried_over_survives_the_result_dict_round_trip() -> None:
    previous = PreviousRun("f", read_previous_run(_document(_entry("m.a", "pass")), "f").results)
    carried = previous.carried_over()["m.a"]

    as_dict = result_to_dict(carried)
    assert as_dict["carried_over"] is True
    assert result_from_dict("m.a", as_dict) == carried
    assert "carried_over" not in result_to_dict(previous.results["m.a"])
    assert repr(previous) == "PreviousRun('f', 1 result(s))"
