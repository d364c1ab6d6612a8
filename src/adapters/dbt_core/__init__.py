"""dbt Core backend: the executor port over dbt-core, in this process."""

from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    MissingAdapterError,
    ProfileNotFoundError,
    ProjectNotFoundError,
)
from prefect_dbt_orchestrator.adapters.dbt_core.executor import DbtCoreExecutor
from prefect_dbt_orchestrator.adapters.dbt_core.ls_selector import DbtLsSelector, DbtSelectionError
from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject, ProjectLocation

__all__ = [
    "DbtCoreExecutor",
    "DbtLsSelector",
    "DbtProject",
    "DbtSelectionError",
    "MissingAdapterError",
    "ProfileNotFoundError",
    "ProjectLocation",
    "ProjectNotFoundError",
]
