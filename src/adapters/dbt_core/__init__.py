"""dbt Core backend: the executor port over dbt-core, in this process."""

from adapters.dbt_core._errors import ProfileNotFoundError, ProjectNotFoundError
from adapters.dbt_core.executor import DbtCoreExecutor
from adapters.dbt_core.ls_selector import DbtLsSelector, DbtSelectionError
from adapters.dbt_core.project import DbtProject, ProjectLocation

__all__ = [
    "DbtCoreExecutor",
    "DbtLsSelector",
    "DbtProject",
    "DbtSelectionError",
    "ProfileNotFoundError",
    "ProjectLocation",
    "ProjectNotFoundError",
]
