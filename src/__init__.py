"""prefect-dbt-orchestrator: run a dbt project's DAG under Prefect, node by node.

Every public name imports from here::

    from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings

The pure planner is ``prefect_dbt_orchestrator.domain``, the ports are
``.ports`` and the bindings ``.adapters``. Importing this package loads
neither dbt nor Prefect: the names that need them are imported on first use
(PEP 562), so ``plan``-only or domain-only users never pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.caching import CacheEntry, CacheOptions
from prefect_dbt_orchestrator.domain.cli_args import BlockedFlagError
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    DbtBuildFailed,
    OptionsConflictError,
    OrchestrationError,
    PlanError,
    SchedulerUnavailable,
)
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.ports.executor import DbtExecutor, ExecutorUnavailable

if TYPE_CHECKING:
    from prefect_dbt_orchestrator.adapters.dbt_cloud.executor import DbtCloudExecutor
    from prefect_dbt_orchestrator.adapters.dbt_core import (
        DbtCoreExecutor,
        MissingAdapterError,
        ProfileNotFoundError,
        ProjectNotFoundError,
    )
    from prefect_dbt_orchestrator.adapters.prefect import (
        CacheConfig,
        CachePolicyFactory,
        DbtNodeCachePolicy,
        ManifestView,
        PrefectDbtOrchestrator,
        PrefectDbtSettings,
        RunOptions,
        create_freshness_aware_cache_policy,
    )
    from prefect_dbt_orchestrator.adapters.prefect.dbt_cloud_block import DbtCloudCredentials

__version__ = "0.1.0"

# name -> the module that defines it; imported when the name is first read.
_LAZY = {
    "DbtCoreExecutor": "prefect_dbt_orchestrator.adapters.dbt_core",
    "MissingAdapterError": "prefect_dbt_orchestrator.adapters.dbt_core",
    "ProfileNotFoundError": "prefect_dbt_orchestrator.adapters.dbt_core",
    "ProjectNotFoundError": "prefect_dbt_orchestrator.adapters.dbt_core",
    "CacheConfig": "prefect_dbt_orchestrator.adapters.prefect",
    "CachePolicyFactory": "prefect_dbt_orchestrator.adapters.prefect",
    "DbtNodeCachePolicy": "prefect_dbt_orchestrator.adapters.prefect",
    "ManifestView": "prefect_dbt_orchestrator.adapters.prefect",
    "create_freshness_aware_cache_policy": "prefect_dbt_orchestrator.adapters.prefect",
    "PrefectDbtOrchestrator": "prefect_dbt_orchestrator.adapters.prefect",
    "PrefectDbtSettings": "prefect_dbt_orchestrator.adapters.prefect",
    "RunOptions": "prefect_dbt_orchestrator.adapters.prefect",
    "DbtCloudExecutor": "prefect_dbt_orchestrator.adapters.dbt_cloud.executor",
    "DbtCloudCredentials": "prefect_dbt_orchestrator.adapters.prefect.dbt_cloud_block",
}

__all__ = [
    "BlockedFlagError",
    "BuildInterrupted",
    "BuildPlan",
    "CacheConfig",
    "CacheEntry",
    "CacheOptions",
    "CachePolicyFactory",
    "DbtBuildFailed",
    "DbtCloudCredentials",
    "DbtCloudExecutor",
    "DbtCoreExecutor",
    "DbtExecutor",
    "DbtNodeCachePolicy",
    "ExecutionMode",
    "ExecutorUnavailable",
    "ManifestView",
    "MissingAdapterError",
    "OptionsConflictError",
    "OrchestrationError",
    "PlanError",
    "PrefectDbtOrchestrator",
    "PrefectDbtSettings",
    "ProfileNotFoundError",
    "ProjectNotFoundError",
    "RunOptions",
    "SchedulerUnavailable",
    "TestStrategy",
    "create_freshness_aware_cache_policy",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefect_dbt_orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
