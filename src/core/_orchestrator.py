"""``prefect_dbt_orchestrator.core._orchestrator``: the seeds' path to the orchestrator."""

from prefect_dbt_orchestrator.adapters.prefect import (
    CacheConfig,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
)
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.errors import DbtBuildFailed
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.placement import TestStrategy

__all__ = [
    "BuildPlan",
    "CacheConfig",
    "DbtBuildFailed",
    "ExecutionMode",
    "PrefectDbtOrchestrator",
    "PrefectDbtSettings",
    "TestStrategy",
]
