"""What running (or not running) one node produced: the result contract; pure.

``status`` is the contract's coarse status (success, error, skipped, cached);
``dbt_status`` keeps dbt's own finer status (pass, warn, fail, no-op, ...).
``domain.result_codec`` turns these into the plain dicts ``run_build()`` returns.
"""

from __future__ import annotations

import enum
import re
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


# dbt's first line names the node, not the problem: "Runtime Error in model
# fct_rides (models/fct_rides.sql)"; the database's own words come after it.
_NODE_HEADER = re.compile(r"^\s*\w+ Error in \w+ \S+ \((?P<path>[^)]*)\)\s*$")


@attrs.frozen
class ErrorInfo:
    """Why a node failed: dbt's message and the kind of error."""

    message: str
    type: str

    @property
    def cause(self) -> str:
        """The line that says what went wrong (the database's or compiler's own
        words), without dbt's "Runtime Error in model x (path)" header."""
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        if len(lines) > 1 and _NODE_HEADER.match(lines[0]):
            return lines[1]
        return lines[0] if lines else self.type

    @property
    def path(self) -> str | None:
        """The node's file as dbt's header names it, when it does."""
        first = self.message.lstrip().splitlines()[0] if self.message.strip() else ""
        found = _NODE_HEADER.match(first)
        return found["path"] if found else None


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
    carried_over: bool = False  # a retry's: recorded by the previous run, not run again
    # The SQL dbt ran, when it says (asset descriptions); never in the result dict.
    compiled_code: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def is_failure(self) -> bool:
        """Error or skip: what makes ``dbt build`` skip the node's dependents."""
        return self.status in (NodeStatus.ERROR, NodeStatus.SKIPPED)


def missing_result(unique_id: str) -> NodeResult:
    """The result of a node the executor was asked to run but did not report."""
    message = "dbt returned no result for this node"
    return NodeResult(unique_id, NodeStatus.ERROR, error=ErrorInfo(message, "MissingResult"))


# dbt's message for an exposure or saved query it "ran" (run_results.json).
NO_OP_MESSAGE = "NO-OP"


def no_op_result(unique_id: str, at: datetime) -> NodeResult:
    """The result of a node dbt runs nothing for (an exposure, a saved query),
    ended at ``at``: as dbt reports it, status ``no-op``, message ``NO-OP``,
    no failures, an empty adapter response, and no invocation (nothing ran)."""
    return NodeResult(
        unique_id,
        NodeStatus.SUCCESS,
        DbtStatus.NO_OP,
        message=NO_OP_MESSAGE,
        timing=Timing(at, at),
        failures=0,
    )


def failure_line(result: NodeResult) -> str:
    """One line on why ``result`` failed: its cause, or dbt's status."""
    if result.error is not None:
        return result.error.cause
    return result.message or (result.dbt_status.value if result.dbt_status else "error")


def skipped(unique_id: str, failed_upstream: tuple[str, ...], reason: str) -> NodeResult:
    """The result of a node that never ran because ``failed_upstream`` failed."""
    return NodeResult(
        unique_id,
        NodeStatus.SKIPPED,
        DbtStatus.SKIPPED,
        reason=reason,
        failed_upstream=failed_upstream,
    )
