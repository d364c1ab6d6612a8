"""Publish the run summary as a Prefect markdown artifact (inside a flow run only)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from prefect_dbt_orchestrator.adapters.prefect._api import check_prefect_api
from prefect_dbt_orchestrator.domain.errors import SchedulerUnavailable
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.render import summary_markdown

SUMMARY_KEY = "dbt-orchestrator-summary"
API_CHECK_SECONDS = 3.0
_LOG = logging.getLogger("prefect_dbt_orchestrator")


def publish_summary(results: Mapping[str, NodeResult]) -> bool:
    """Create the summary artifact; False when it could not be (logged, never raised).

    The API is asked first, with a short timeout: when it went away during
    the build, Prefect's client would retry for a minute before failing.
    """
    if FlowRunContext.get() is None:
        return False
    try:
        check_prefect_api(API_CHECK_SECONDS)
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=summary_markdown(results),
            description="dbt build summary (PrefectDbtOrchestrator)",
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
