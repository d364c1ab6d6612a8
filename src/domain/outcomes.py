"""What running (or not running) one node produced: the result contract; pure.

``status`` is the contract's coarse status (success, error, skipped, cached);
``dbt_status`` keeps dbt's own finer status (pass, warn, fail, no-op, ...).
``domain.result_codec`` turns these into the plain dicts ``run_build()`` returns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.manifest import frozen_mapping


class NodeStatus(enum.Enum):
    """The result contract's status."""

    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"
    CACHED = "cached"


class DbtStatus(enum.Enum):
    """dbt's own status for a node, spelled as in ``run_results.json``."""

    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    NO_OP = "no-op"
    RUNTIME_ERROR = "runtime error"
    PARTIAL_SUCCESS = "partial success"


_CONTRACT_STATUS = {
    DbtStatus.SUCCESS: NodeStatus.SUCCESS,
    DbtStatus.PASS: NodeStatus.SUCCESS,
    DbtStatus.WARN: NodeStatus.SUCCESS,
    DbtStatus.NO_OP: NodeStatus.SUCCESS,
    DbtStatus.ERROR: NodeStatus.ERROR,
    DbtStatus.FAIL: NodeStatus.ERROR,
    DbtStatus.RUNTIME_ERROR: NodeStatus.ERROR,
    # A microbatch model with failed batches: dbt skips its children too.
    DbtStatus.PARTIAL_SUCCESS: NodeStatus.ERROR,
    DbtStatus.SKIPPED: NodeStatus.SKIPPED,
}


def contract_status(dbt_status: DbtStatus) -> NodeStatus:
    """The contract status for dbt's status: warn and no-op succeed, fail is an error."""
    return _CONTRACT_STATUS[dbt_status]


@attrs.frozen
class Timing:
    """When dbt started and finished the node (timezone-aware UTC)."""

    started_at: datetime
    completed_at: datetime

    @property
    def duration_seconds(self) -> float:
        return (self.completed_at - self.started_at).total_seconds()


@attrs.frozen
class Invocation:
    """The dbt command that ran the node (``build``, ``run``, ``test``...) and its args."""

    command: str
    args: tuple[str, ...] = ()


@attrs.frozen
class ErrorInfo:
    """Why a node failed: dbt's message and the kind of error."""

    message: str
    type: str


@attrs.frozen
class NodeResult:
    """The one result every planned node ends with."""

    unique_id: str
    status: NodeStatus
    dbt_status: DbtStatus | None = None
    message: str | None = None
    timing: Timing | None = None
    invocation: Invocation | None = None
    error: ErrorInfo | None = None
    reason: str | None = None
    failed_upstream: tuple[str, ...] = ()
    rows_affected: int | None = None
    failures: int | None = None
    adapter_response: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    cache_key: str | None = None
    cached_at: datetime | None = None
    attempts: int = 1

    @property
    def is_failure(self) -> bool:
        """Error or skip: what makes ``dbt build`` skip the node's dependents."""
        return self.status in (NodeStatus.ERROR, NodeStatus.SKIPPED)


def skipped(unique_id: str, failed_upstream: tuple[str, ...], reason: str) -> NodeResult:
    """The result of a node that never ran because ``failed_upstream`` failed."""
    return NodeResult(
        unique_id,
        NodeStatus.SKIPPED,
        DbtStatus.SKIPPED,
        reason=reason,
        failed_upstream=failed_upstream,
    )
