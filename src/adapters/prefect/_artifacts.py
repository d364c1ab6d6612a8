"""Publish the run summary as Prefect artifacts (inside a flow run only): the
markdown summary (key ``dbt-orchestrator-summary``) and a table with one row
per node (key ``dbt-orchestrator-nodes``), for sorting in the UI."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger

from prefect_dbt_orchestrator.adapters.prefect._api import check_prefect_api
from prefect_dbt_orchestrator.adapters.prefect._build import BuildCall
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect._retry import recorded_nodes
from prefect_dbt_orchestrator.adapters.prefect._run_results import record_run_results
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.errors import SchedulerUnavailable
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.summary import (
    RunSummary,
    node_table,
    summarize,
    summary_lines,
    summary_markdown,
)

SUMMARY_KEY = "dbt-orchestrator-summary"
TABLE_KEY = "dbt-orchestrator-nodes"
API_CHECK_SECONDS = 3.0
_LOG = logging.getLogger("prefect_dbt_orchestrator")


def report_build(
    call: BuildCall,
    results: Mapping[str, NodeResult],
    build_plan: BuildPlan,
    elapsed: float,
    settings: PrefectDbtSettings,
    options: RunOptions,
) -> None:
    """The build's closing report: the summary in the log, ``run_results.json``
    (``write_run_results``), the artifacts (``create_summary_artifact``)."""
    nodes = recorded_nodes(build_plan, results)
    summary = summarize(results, nodes, elapsed)
    logger = get_run_logger() if FlowRunContext.get() else _LOG
    for line in summary_lines(summary):
        logger.info("%s", line)
    if options.write_run_results:
        record_run_results(call, results, nodes, settings, elapsed)
    if options.create_summary_artifact:
        publish_summary(summary, results, nodes)


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
