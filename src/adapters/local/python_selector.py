"""The default NodeSelector: the domain's pure-Python engine, no dbt process."""

from __future__ import annotations

from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionRequest,
    select,
)
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector


class PythonSelector(NodeSelector):
    """Evaluates dbt's selector language in Python, with dbt's answers."""

    def select(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection:
        return select(manifest, request, context)
