"""Results to and from the contract's plain dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    Timing,
    contract_status,
    skipped,
)
from prefect_dbt_orchestrator.domain.result_codec import (
    result_from_dict,
    result_to_dict,
    results_to_dict,
)
from prefect_dbt_orchestrator.domain.schedule import UPSTREAM_FAILURE

START = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)

FULL = NodeResult(
    "model.proj.orders",
    NodeStatus.SUCCESS,
    DbtStatus.SUCCESS,
    message="OK created table",
    timing=Timing(START, START + timedelta(seconds=1.5)),
    invocation=Invocation("run", ("--select", "model.proj.orders")),
    rows_affected=42,
    adapter_response={"_message": "OK", "rows_affected": 42},
    cache_key="abc123",
    cached_at=START - timedelta(days=1),
    attempts=3,
)
FAILED = NodeResult(
    "test.proj.not_null_orders_id",
    NodeStatus.ERROR,
    DbtStatus.FAIL,
    message="Got 3 results, configured to fail if != 0",
    error=ErrorInfo("Got 3 results, configured to fail if != 0", "TestFailure"),
    failures=3,
)
SKIPPED = skipped("model.proj.customers", ("model.proj.stg_customers",), UPSTREAM_FAILURE)
CACHED = NodeResult("seed.proj.raw", NodeStatus.CACHED, cache_key="k", cached_at=START)


@pytest.mark.parametrize(
    "result", [FULL, FAILED, SKIPPED, CACHED], ids=["full", "failed", "skipped", "cached"]
)
def test_a_result_survives_a_round_trip_through_its_dict(result: NodeResult) -> None:
    assert result_from_dict(result.unique_id, result_to_dict(result)) == result


@pytest.mark.parametrize(
    "result", [FULL, FAILED, SKIPPED, CACHED], ids=["full", "failed", "skipped", "cached"]
)
def test_a_result_dict_survives_a_round_trip_through_json(result: NodeResult) -> None:
    data = result_to_dict(result)

    assert json.loads(json.dumps(data)) == data
    assert result_from_dict(result.unique_id, json.loads(json.dumps(data))) == result


def test_a_full_result_dict_has_the_contract_keys_and_values() -> None:
    assert result_to_dict(FULL) == {
        "status": "success",
        "dbt_status": "success",
        "message": "OK created table",
        "timing": {
            "started_at": "2026-01-01T12:00:00.250000Z",
            "completed_at": "2026-01-01T12:00:01.750000Z",
            "duration_seconds": 1.5,
        },
        "invocation": {"command": "run", "args": ["--select", "model.proj.orders"]},
        "rows_affected": 42,
        "adapter_response": {"_message": "OK", "rows_affected": 42},
        "cache_key": "abc123",
        "cached_at": "2025-12-31T12:00:00.250000Z",
        "retries": 2,
    }


def test_a_skipped_result_has_a_reason_and_names_the_failed_upstream_node() -> None:
    data = result_to_dict(SKIPPED)

    assert data["status"] == "skipped"
    assert data["reason"] == "upstream failure"
    assert data["failed_upstream"] == ["model.proj.stg_customers"]


def test_a_skipped_result_lists_failed_upstream_even_when_empty() -> None:
    data = result_to_dict(NodeResult("model.proj.a", NodeStatus.SKIPPED, reason="excluded"))

    assert data["failed_upstream"] == []
    assert data["reason"] == "excluded"


def test_keys_without_a_value_are_left_out() -> None:
    assert result_to_dict(NodeResult("model.proj.a", NodeStatus.SUCCESS)) == {"status": "success"}


def test_an_error_result_carries_the_error_message_and_type() -> None:
    data = result_to_dict(FAILED)

    assert data["status"] == "error"
    assert data["dbt_status"] == "fail"
    assert data["error"] == {
        "message": "Got 3 results, configured to fail if != 0",
        "type": "TestFailure",
    }
    assert data["failures"] == 3


@pytest.mark.parametrize(
    ("dbt_status", "contract"),
    [
        (DbtStatus.SUCCESS, NodeStatus.SUCCESS),
        (DbtStatus.PASS, NodeStatus.SUCCESS),
        (DbtStatus.WARN, NodeStatus.SUCCESS),
        (DbtStatus.NO_OP, NodeStatus.SUCCESS),
        (DbtStatus.ERROR, NodeStatus.ERROR),
        (DbtStatus.FAIL, NodeStatus.ERROR),
        (DbtStatus.RUNTIME_ERROR, NodeStatus.ERROR),
        (DbtStatus.PARTIAL_SUCCESS, NodeStatus.ERROR),
        (DbtStatus.SKIPPED, NodeStatus.SKIPPED),
    ],
)
def test_dbt_statuses_map_to_the_contract_status(
    dbt_status: DbtStatus, contract: NodeStatus
) -> None:
    assert contract_status(dbt_status) is contract


def test_the_dbt_status_strings_are_spelled_as_in_run_results() -> None:
    assert {s.value for s in DbtStatus} == {
        "success",
        "error",
        "skipped",
        "pass",
        "warn",
        "fail",
        "no-op",
        "runtime error",
        "partial success",
    }


def test_results_to_dict_keys_every_result_by_unique_id_in_sorted_order() -> None:
    results = {r.unique_id: r for r in (SKIPPED, FULL, FAILED, CACHED)}

    data = results_to_dict(results)

    assert list(data) == sorted(results)
    assert data["model.proj.customers"] == result_to_dict(SKIPPED)
    json.dumps(data)


def test_a_dict_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        result_from_dict("model.proj.a", {"status": "exploded"})
    with pytest.raises(ValueError):
        result_from_dict("model.proj.a", {"status": "error", "dbt_status": "exploded"})
    with pytest.raises(KeyError):
        result_from_dict("model.proj.a", {})


_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_texts = st.text(max_size=20)
_results = st.builds(
    NodeResult,
    unique_id=st.just("model.proj.a"),
    status=st.sampled_from(NodeStatus),
    dbt_status=st.none() | st.sampled_from(DbtStatus),
    message=st.none() | _texts.filter(bool),
    timing=st.none() | st.builds(Timing, _moments, _moments),
    invocation=st.none() | st.builds(Invocation, _texts, st.lists(_texts).map(tuple)),
    error=st.none() | st.builds(ErrorInfo, _texts, _texts),
    reason=st.none() | _texts,
    failed_upstream=st.lists(_texts, max_size=3).map(tuple),
    rows_affected=st.none() | st.integers(0, 10**9),
    failures=st.none() | st.integers(0, 10**6),
    adapter_response=st.dictionaries(_texts, st.integers() | _texts, max_size=3),
    cache_key=st.none() | _texts,
    cached_at=st.none() | _moments,
    attempts=st.integers(1, 5),
)


@settings(max_examples=200, deadline=None)
@given(_results)
def test_any_result_survives_a_round_trip_through_json(result: NodeResult) -> None:
    text = json.dumps(result_to_dict(result))

    assert result_from_dict(result.unique_id, json.loads(text)) == result
