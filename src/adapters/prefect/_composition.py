"""What the orchestrator builds from its options, and what it falls back on."""

from __future__ import annotations

import logging
from typing import Any

from prefect_dbt_orchestrator.adapters.local.python_selector import PythonSelector
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.errors import DbtBuildFailed, OptionsConflictError
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector

_LOG = logging.getLogger("prefect_dbt_orchestrator")


def selector_for(engine: str | NodeSelector, settings: PrefectDbtSettings) -> NodeSelector:
    """The selector for ``selection_engine``.

    "python" (the default), "dbt" (runs ``dbt ls``), or any NodeSelector.
    """
    if not isinstance(engine, str):
        return engine
    if engine == "python":
        return PythonSelector()
    if engine == "dbt":
        from prefect_dbt_orchestrator.adapters.dbt_core.ls_selector import DbtLsSelector

        return DbtLsSelector(settings)
    raise OptionsConflictError(
        f"selection_engine={engine!r} is not known", 'use "python" (default) or "dbt" (runs dbt ls)'
    )


def results_despite_prefect(problem: object, payload: dict[str, dict[str, Any]]) -> object:
    """The build ran to its end but Prefect failed after it (its API went away):
    the results are not lost, only Prefect's record of the run. Returns them (as
    ``DbtBuildFailed`` when a node errored)."""
    _LOG.warning(
        "Prefect failed after the build ended (%s): every node ran and these are its "
        "results, but Prefect's record of this run is incomplete",
        problem,
    )
    if any(r.get("status") == "error" for r in payload.values()):
        return DbtBuildFailed(payload)
    return payload
