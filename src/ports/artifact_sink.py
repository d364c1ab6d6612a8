"""The artifact sink port: where a run publishes what it did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult


class ArtifactSink(Protocol):
    """Publishes the run summary and per-node materializations.

    Everything passed in is data; a sink that cannot publish raises ``OSError``
    (or its backend's error) and the driver logs it without failing the run.
    """

    def publish_summary(self, *, markdown: str, results: Mapping[str, NodeResult]) -> None:
        """Publish the closing summary of one run."""
        ...

    def record_materialization(
        self, node: Node, result: NodeResult, *, upstream: tuple[Node, ...]
    ) -> None:
        """Record that ``node`` was built (for asset lineage), with what it read."""
        ...
