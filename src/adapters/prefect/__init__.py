"""The public API: run a dbt project's DAG under Prefect.

from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator, PrefectDbtSettings
"""

# Prefect must configure logging before dbt is first imported: dbt's import
# leaves the root logger set up so that Prefect's console format is lost.
import prefect  # noqa: F401  # isort: skip

from prefect_dbt_orchestrator.adapters.dbt_core import (
    DbtCoreExecutor,
    ProfileNotFoundError,
    ProjectNotFoundError,
)
from prefect_dbt_orchestrator.adapters.prefect._cache_policy import (
    CachePolicyFactory,
    DbtNodeCachePolicy,
    ManifestView,
    create_freshness_aware_cache_policy,
)
from prefect_dbt_orchestrator.adapters.prefect._caching import CacheConfig
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect.orchestrator import PrefectDbtOrchestrator
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.cli_args import BlockedFlagError
from prefect_dbt_orchestrator.domain.errors import DbtBuildFailed, OptionsConflictError, PlanError
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.placement import TestStrategy

__all__ = [
    "BlockedFlagError",
    "CacheConfig",
    "CachePolicyFactory",
    "DbtBuildFailed",
    "DbtCoreExecutor",
    "DbtNodeCachePolicy",
    "ExecutionMode",
    "ManifestView",
    "OptionsConflictError",
    "PlanError",
    "PrefectDbtOrchestrator",
    "PrefectDbtSettings",
    "ProfileNotFoundError",
    "ProjectNotFoundError",
    "RunOptions",
    "TestStrategy",
    "create_freshness_aware_cache_policy",
]
