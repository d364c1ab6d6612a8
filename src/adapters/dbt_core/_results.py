"""dbt's RunResult objects to the domain's NodeResult, secrets scrubbed out.

dbt's message for a failing node can echo what the node rendered (a value
read from a ``DBT_ENV_SECRET*`` variable, a ``--vars`` password): every
message is scrubbed with the build's ``Secrets`` before it leaves here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    Timing,
    contract_status,
    no_op_result,
)
from prefect_dbt_orchestrator.domain.redaction import Secrets
from prefect_dbt_orchestrator.domain.result_entries import error_type

NO_SECRETS = Secrets()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timing(steps: Sequence[Any]) -> Timing | None:
    started = [_utc(step.started_at) for step in steps if step.started_at]
    completed = [_utc(step.completed_at) for step in steps if step.completed_at]
    if not started or not completed:
        return None
    return Timing(min(s for s in started if s), max(c for c in completed if c))


def to_node_result(
    unique_id: str,
    result: Any,
    invocation: Invocation,
    attempts: int = 1,
    *,
    secrets: Secrets = NO_SECRETS,
) -> NodeResult:
    """Map one dbt RunResult; the status is dbt's, the message is dbt's with
    ``secrets`` scrubbed out."""
    dbt_status = DbtStatus(str(getattr(result.status, "value", result.status)))
    status = contract_status(dbt_status)
    message = result.message or None
    adapter_response = dict(result.adapter_response or {})
    error = None
    if status is NodeStatus.ERROR:
        text = message or f"dbt reported {dbt_status.value}"
        error = ErrorInfo(text, error_type(dbt_status, text))
    rows = adapter_response.get("rows_affected")
    mapped = NodeResult(
        unique_id=unique_id,
        status=status,
        dbt_status=dbt_status,
        message=message,
        timing=_timing(result.timing or ()),
        invocation=invocation,
        error=error,
        rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
        failures=result.failures,
        adapter_response=adapter_response,
        attempts=attempts,
        compiled_code=_compiled_code(result),
    )
    return secrets.scrub_result(mapped)


def _compiled_code(result: Any) -> str | None:
    code = getattr(getattr(result, "node", None), "compiled_code", None)
    return code if isinstance(code, str) and code else None


def crashed(
    unique_id: str, invocation: Invocation, exc: BaseException, *, secrets: Secrets = NO_SECRETS
) -> NodeResult:
    """A node whose run raised inside dbt's runner (dbt normally catches these)."""
    now = datetime.now(UTC)
    mapped = NodeResult(
        unique_id,
        NodeStatus.ERROR,
        DbtStatus.ERROR,
        message=str(exc),
        timing=Timing(now, now),
        invocation=invocation,
        error=ErrorInfo(str(exc) or type(exc).__name__, type(exc).__name__),
    )
    return secrets.scrub_result(mapped)


def no_op_results(nodes: Sequence[Node]) -> dict[str, NodeResult]:
    """The results of the exposures and saved queries among ``nodes``, which dbt
    never runs. Drivers end them before calling an executor; this keeps one
    that still reaches the executor out of dbt's selection."""
    now = datetime.now(UTC)
    return {n.unique_id: no_op_result(n.unique_id, now) for n in nodes if is_no_op(n)}
