"""Results to and from the plain dicts ``run_build()`` returns; pure.

The dict shape is the seed's result contract: ``status`` in success, error,
skipped, cached; ``timing``, ``invocation``, ``error``, ``reason``,
``failed_upstream``, ``rows_affected``, ``cache_key``, ``cached_at``; plus
``dbt_status`` (dbt's finer status: pass, warn, fail, no-op...), ``message``,
``adapter_response``, ``failures``, ``retries`` and ``carried_over`` (a
retry's results recorded by the previous run) where known. Keys without a
value are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    Timing,
)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _timing(timing: Timing) -> dict[str, Any]:
    return {
        "started_at": _iso(timing.started_at),
        "completed_at": _iso(timing.completed_at),
        "duration_seconds": round(timing.duration_seconds, 6),
    }


def result_to_dict(result: NodeResult) -> dict[str, Any]:
    """One result as the contract's plain dict (JSON-serializable)."""
    out: dict[str, Any] = {"status": result.status.value}
    if result.dbt_status is not None:
        out["dbt_status"] = result.dbt_status.value
    if result.message:
        out["message"] = result.message
    if result.timing is not None:
        out["timing"] = _timing(result.timing)
    if result.invocation is not None:
        out["invocation"] = {
            "command": result.invocation.command,
            "args": list(result.invocation.args),
        }
    if result.error is not None:
        out["error"] = {"message": result.error.message, "type": result.error.type}
    if result.reason is not None:
        out["reason"] = result.reason
    if result.status is NodeStatus.SKIPPED or result.failed_upstream:
        out["failed_upstream"] = list(result.failed_upstream)
    _optional(out, result)
    return out


def _optional(out: dict[str, Any], result: NodeResult) -> None:
    if result.rows_affected is not None:
        out["rows_affected"] = result.rows_affected
    if result.failures is not None:
        out["failures"] = result.failures
    if result.adapter_response:
        out["adapter_response"] = dict(result.adapter_response)
    if result.cache_key is not None:
        out["cache_key"] = result.cache_key
    if result.cached_at is not None:
        out["cached_at"] = _iso(result.cached_at)
    if result.attempts > 1:
        out["retries"] = result.attempts - 1
    if result.carried_over:
        out["carried_over"] = True


def results_to_dict(results: Mapping[str, NodeResult]) -> dict[str, dict[str, Any]]:
    """Every result keyed by unique_id, sorted by unique_id."""
    return {uid: result_to_dict(results[uid]) for uid in sorted(results)}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def result_from_dict(unique_id: str, data: Mapping[str, Any]) -> NodeResult:
    """The inverse of ``result_to_dict`` (for cached results and stored runs).

    Raises:
        ValueError: ``status`` or ``dbt_status`` is not one of the contract's values.
        KeyError: ``status`` is missing.
    """
    timing = data.get("timing")
    invocation = data.get("invocation")
    error = data.get("error")
    return NodeResult(
        unique_id=unique_id,
        status=NodeStatus(data["status"]),
        dbt_status=DbtStatus(data["dbt_status"]) if data.get("dbt_status") else None,
        message=data.get("message"),
        timing=(
            Timing(_when(timing["started_at"]), _when(timing["completed_at"])) if timing else None
        ),
        invocation=(
            Invocation(invocation["command"], tuple(invocation.get("args", ())))
            if invocation
            else None
        ),
        error=ErrorInfo(error["message"], error["type"]) if error else None,
        reason=data.get("reason"),
        failed_upstream=tuple(data.get("failed_upstream", ())),
        rows_affected=data.get("rows_affected"),
        failures=data.get("failures"),
        adapter_response=data.get("adapter_response") or {},
        cache_key=data.get("cache_key"),
        cached_at=_when(data["cached_at"]) if data.get("cached_at") else None,
        attempts=int(data.get("retries", 0)) + 1,
        carried_over=bool(data.get("carried_over", False)),
    )
