"""The public API: run a dbt project's DAG under Prefect.

    from adapters.prefect import PrefectDbtOrchestrator, PrefectDbtSettings
"""

# Prefect must configure logging before dbt is first imported: dbt's import
# leaves the root logger set up so that Prefect's console format is lost.
import prefect  # noqa: F401  # isort: skip

from adapters.dbt_core import DbtCoreExecutor, ProfileNotFoundError, ProjectNotFoundError
from adapters.prefect._options import ExecutionMode, RunOptions
from adapters.prefect.orchestrator import PrefectDbtOrchestrator
from adapters.prefect.settings import PrefectDbtSettings
from domain.cli_args import BlockedFlagError
from domain.errors import DbtBuildFailed, OptionsConflictError, PlanError
from domain.placement import TestStrategy

__all__ = [
    "BlockedFlagError",
    "DbtBuildFailed",
    "DbtCoreExecutor",
    "ExecutionMode",
    "OptionsConflictError",
    "PlanError",
    "PrefectDbtOrchestrator",
    "PrefectDbtSettings",
    "ProfileNotFoundError",
    "ProjectNotFoundError",
    "RunOptions",
    "TestStrategy",
]
