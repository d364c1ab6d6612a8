"""The seed documents' import paths (``prefect_dbt.core._orchestrator`` and
``prefect_dbt.core._executor``), with ``prefect_dbt`` read as
``prefect_dbt_orchestrator``, so their examples run unchanged but for the name.

New code imports every public name from ``prefect_dbt_orchestrator`` itself.
"""
