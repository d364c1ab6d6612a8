"""The node selector port: which nodes a selection picks."""

from __future__ import annotations

from typing import Protocol

from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection import Selection, SelectionContext, SelectionRequest


class NodeSelector(Protocol):
    """Answers a selection request the way ``dbt ls`` would.

    The default is the pure-Python engine (``domain.selection``); a ``dbt ls``
    adapter exists as an explicit opt-in. Bad input raises a ``PlanError``
    naming the term and the fix; a selection that matches nothing is data
    (an empty Selection).
    """

    def select(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection:
        """The selected unique_ids, each with the reason it was selected."""
        ...
