"""One entry of dbt's ``run_results.json`` read back as a ``NodeResult``; pure.

What a backend that only sees dbt's artifacts (dbt Cloud) gets for each
node: the same statuses, message, timing, rows and adapter response as the
dbt Core executor maps from dbt's own RunResult objects, and the same
error type (``error_type``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    Timing,
    contract_status,
)

_ERROR_KIND = re.compile(r"^\s*(Database|Compilation|Runtime|Dependency|Parsing) Error")


class EntryError(ValueError):
    """An entry that is not a readable dbt result (no unique_id, an unknown status)."""


def error_type(dbt_status: DbtStatus, message: str) -> str:
    """A short class name for why the node failed (dbt's own wording when it has one)."""
    if dbt_status is DbtStatus.FAIL:
        return "TestFailure"
    match = _ERROR_KIND.match(message)
    return f"{match.group(1)}Error" if match else "DbtRuntimeError"


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def entry_timing(steps: Any) -> Timing | None:
    """The span of dbt's timing steps (compile and execute), when recorded."""
    if not isinstance(steps, list) or not steps:
        return None
    starts = [_when(s.get("started_at")) for s in steps if isinstance(s, Mapping)]
    ends = [_when(s.get("completed_at")) for s in steps if isinstance(s, Mapping)]
    known_starts = [s for s in starts if s is not None]
    known_ends = [e for e in ends if e is not None]
    if not known_starts or not known_ends:
        return None
    return Timing(min(known_starts), max(known_ends))


def result_from_entry(
    entry: Any, invocation: Invocation | None = None, *, error_kind: str | None = None
) -> NodeResult:
    """``entry`` (one of ``run_results.json``'s ``results``) as a NodeResult.

    ``error_kind`` replaces ``error_type``'s guess for a failed node (a retry
    marks what it read back as ``PreviousRunError``).

    Raises:
        EntryError: no unique_id, or a status dbt does not have.
    """
    if not isinstance(entry, Mapping) or not isinstance(entry.get("unique_id"), str):
        raise EntryError("a result has no unique_id")
    uid = entry["unique_id"]
    try:
        dbt_status = DbtStatus(entry.get("status"))
    except ValueError:
        raise EntryError(f"{uid} has an unknown status {entry.get('status')!r}") from None
    status = contract_status(dbt_status)
    message = entry.get("message") if isinstance(entry.get("message"), str) else None
    response = entry.get("adapter_response")
    response = dict(response) if isinstance(response, Mapping) else {}
    rows = response.get("rows_affected")
    failures = entry.get("failures")
    error = None
    if status is NodeStatus.ERROR:
        text = message or f"dbt reported {dbt_status.value}"
        error = ErrorInfo(text, error_kind or error_type(dbt_status, text))
    code = entry.get("compiled_code")
    return NodeResult(
        uid,
        status,
        dbt_status,
        message=message,
        timing=entry_timing(entry.get("timing")),
        invocation=invocation,
        error=error,
        rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
        failures=failures if isinstance(failures, int) else None,
        adapter_response=response,
        compiled_code=code if isinstance(code, str) else None,
    )
