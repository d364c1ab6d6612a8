"""A dbt Cloud run's results: its ``run_results.json`` read as the dbt Core
executor reads dbt's own (``domain.result_entries``), and an error result for
each node the run gave none (it failed early, was cancelled or timed out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import DbtCloudClient
from prefect_dbt_orchestrator.adapters.dbt_cloud._jobs import CANCELLED
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
)
from prefect_dbt_orchestrator.domain.result_entries import EntryError, result_from_entry
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

RUN_TIMEOUT = "DbtCloudRunTimeout"


def results_of(
    client: DbtCloudClient,
    run_id: int,
    status: int | None,
    unique_ids: Sequence[str],
    invocation: Invocation,
    cancelled: bool = False,
) -> dict[str, NodeResult]:
    """One result per node of ``unique_ids`` from run ``run_id``, which ended
    with ``status`` (``cancelled``: this build cancelled it)."""
    entries: dict[str, Any] = {}
    try:
        document = client.artifact(f"runs/{run_id}/artifacts/run_results.json")
    except ExecutorUnavailable:
        document = None  # a run that failed before dbt wrote anything
    if isinstance(document, Mapping) and isinstance(document.get("results"), list):
        listed = [e for e in document["results"] if isinstance(e, Mapping)]
        entries = {str(e.get("unique_id")): e for e in listed}
    results = {}
    for uid in unique_ids:
        try:
            result = result_from_entry(entries[uid], invocation)
        except (KeyError, EntryError):
            stopped = status == CANCELLED or cancelled
            why = "was cancelled" if stopped else f"ended with status {status}"
            message = f"dbt Cloud run {run_id} {why} without a result for it"
            result = _failed(uid, message, "DbtCloudRunError", invocation)
        results[uid] = result
    return results


def timed_out(
    run_id: int, seconds: float, unique_ids: Sequence[str], invocation: Invocation
) -> dict[str, NodeResult]:
    """The results of a run cancelled at ``timeout_seconds``."""
    message = (
        f"dbt Cloud run {run_id} did not end within {seconds:g} s (timeout_seconds) "
        "and was cancelled"
    )
    return {uid: _failed(uid, message, RUN_TIMEOUT, invocation) for uid in unique_ids}


def _failed(uid: str, message: str, kind: str, invocation: Invocation) -> NodeResult:
    return NodeResult(
        uid,
        NodeStatus.ERROR,
        DbtStatus.ERROR,
        message=message,
        invocation=invocation,
        error=ErrorInfo(message, kind),
    )
