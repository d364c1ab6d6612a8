"""PER_NODE task runs are named after their node and, on request, tagged with
its resource type, materialization and dbt tags."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.runtime import flow_run

from prefect_dbt_orchestrator.adapters.prefect import (
    ExecutionMode,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
)

pytestmark = pytest.mark.integration


async def _task_runs(flow_run_id: UUID) -> dict[str, set[str]]:
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name: set(run.tags) for run in runs}


@pytest.mark.parametrize("tagged", [True, False])
def test_node_task_runs_carry_the_node_name_and_tags_when_asked(
    demo_project: Path, tagged: bool
) -> None:
    orchestrator = PrefectDbtOrchestrator(
        settings=PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project),
        execution_mode=ExecutionMode.PER_NODE,
        task_tags=tagged,
    )

    @flow(name="tags-check")
    def build() -> str:
        orchestrator.run_build(select="+fct_rides", exclude="test_type:data")
        return str(flow_run.id)

    runs = asyncio.run(_task_runs(UUID(build())))

    assert "model.demo.fct_rides" in runs
    expected = {"model", "incremental", "hourly"} if tagged else set()
    assert runs["model.demo.fct_rides"] == expected
    assert ("seed" in runs["seed.demo.raw_bikes"]) is tagged
