"""Publish the run summary as a Prefect markdown artifact (inside a flow run only)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.render import summary_markdown

SUMMARY_KEY = "dbt-orchestrator-summary"
_LOG = logging.getLogger("prefect_dbt_orchestrator")


def publish_summary(results: Mapping[str, NodeResult]) -> None:
    """Create the summary artifact; a failure to publish is logged, never raised."""
    if FlowRunContext.get() is None:
        return
    try:
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=summary_markdown(results),
            description="dbt build summary (PrefectDbtOrchestrator)",
        )
    except Exception as exc:  # the build's results matter more than its summary
        _LOG.warning("could not publish the dbt summary artifact: %s", exc)
