"""How long a node may run, and the result of one that ran longer; pure.

A node's own limit comes from its dbt config, ``prefect_timeout_seconds``
(``config(prefect_timeout_seconds=600)`` or ``+prefect_timeout_seconds`` in
``dbt_project.yml``) or ``meta: {prefect_timeout_seconds: 600}``; else the
build's ``node_timeout_seconds``; else none. A value of 0 or less turns the
limit off for that node.
"""

from __future__ import annotations

import attrs

from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, ErrorInfo, NodeResult, NodeStatus

TIMEOUT_KEY = "prefect_timeout_seconds"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def node_timeout(node: Node, default: float | None) -> float | None:
    """The seconds ``node`` may run: its config or meta value, else ``default``."""
    for source in (node.config.raw, node.config.meta):
        found = _number(source.get(TIMEOUT_KEY))
        if found is not None:
            return found if found > 0 else None
    return default


def timed_out(result: NodeResult, seconds: float) -> NodeResult:
    """``result`` (of a node cancelled at its limit) as the timeout error it is."""
    said = result.error.message if result.error else (result.message or "")
    message = (
        f"timed out after {seconds:g} s and was cancelled in the warehouse; raise "
        f"{TIMEOUT_KEY} in the node's config or meta, or node_timeout_seconds"
        + (f"\ndbt said:\n{said.strip()}" if said.strip() else "")
    )
    return attrs.evolve(
        result,
        status=NodeStatus.ERROR,
        dbt_status=DbtStatus.ERROR,
        message=message,
        error=ErrorInfo(message, "NodeTimeout"),
    )
