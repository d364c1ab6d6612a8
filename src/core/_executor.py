"""``prefect_dbt_orchestrator.core._executor``: the seeds' path to the dbt Core executor."""

from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor

__all__ = ["DbtCoreExecutor"]
