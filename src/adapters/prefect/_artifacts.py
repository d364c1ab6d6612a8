"""Publish the run summary as Prefect artifacts (inside a flow run only): the
markdown summary (key ``dbt-orchestrator-summary``) and a table with one row
per node (key ``dbt-orchestrator-nodes``), for sorting in the UI."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext

from prefect_dbt_orchestrator.adapters.prefect._api import check_prefect_api
from prefect_dbt_orchestrator.domain.errors import SchedulerUnavailable
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.summary import RunSummary, node_table, summary_markdown

SUMMARY_KEY = "dbt-orchestrator-summary"
TABLE_KEY = "dbt-orchestrator-nodes"
API_CHECK_SECONDS = 3.0
_LOG = logging.getLogger("prefect_dbt_orchestrator")


def publish_summary(
    summary: RunSummary, results: Mapping[str, NodeResult], nodes: Mapping[str, Node]
) -> bool:
    """Create the summary artifacts; False when they could not be (logged, never raised).

    The API is asked first, with a short timeout: when it went away during
    the build, Prefect's client would retry for a minute before failing.
    """
    if FlowRunContext.get() is None:
        return False
    try:
        check_prefect_api(API_CHECK_SECONDS)
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=summary_markdown(summary),
            description="dbt build summary (PrefectDbtOrchestrator)",
        )
        create_table_artifact(
            key=TABLE_KEY,
            table=node_table(results, nodes),
            description="every node of the dbt build: status, duration, attempts, rows",
        )
    except SchedulerUnavailable as lost:
        _LOG.warning(
            "%s; every node ran and the results are complete, but Prefect's record of this "
            "run is not (no summary artifact; node states may be missing)",
            lost,
        )
        return False
    except Exception as exc:  # the build's results matter more than its summary
        _LOG.warning("could not publish the dbt summary artifact: %s", exc)
        return False
    return True
