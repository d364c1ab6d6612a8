"""The default NodeSelector: the domain's pure-Python engine, no dbt process."""

from __future__ import annotations

from domain.manifest import Manifest
from domain.selection import Selection, SelectionContext, SelectionRequest, select
from ports.node_selector import NodeSelector


class PythonSelector(NodeSelector):
    """Evaluates dbt's selector language in Python, with dbt's answers."""

    def select(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection:
        return select(manifest, request, context)
