"""What the orchestrator builds from its options, and what it falls back on."""

from __future__ import annotations

import logging
from typing import Any

from prefect_dbt_orchestrator.adapters.local.python_selector import PythonSelector
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect._stop import INTERRUPTED, BuildStop
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    DbtBuildFailed,
    OptionsConflictError,
    OrchestrationError,
)
from prefect_dbt_orchestrator.ports.executor import needs_local_project
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


def refuse_local_only(
    executor: object, options: RunOptions, selection_engine: object, manifest_path: object
) -> None:
    """Options that hand dbt local files, refused for an executor that runs dbt
    elsewhere (``needs_local_project = False``, dbt Cloud): its dbt cannot
    read them, and ignoring them would build something else than asked.

    Raises:
        OptionsConflictError: naming the first such option.
    """
    if needs_local_project(executor):
        return
    name = type(executor).__name__
    given = {
        "defer=True": options.defer,
        "defer_state_path": options.defer_state_path is not None,
        "favor_state=True": options.favor_state,
        'selection_engine="dbt"': selection_engine == "dbt",
        "manifest_path": manifest_path is not None,
    }
    fixes = {
        "manifest_path": f"leave it out: {name} fetches its own manifest",
        'selection_engine="dbt"': 'leave it out: the default "python" engine selects on '
        f"{name}'s manifest",
    }
    for option, on in given.items():
        if on:
            raise OptionsConflictError(
                f"{option} needs dbt to read local files, and {name} runs dbt elsewhere",
                fixes.get(
                    option,
                    "leave it out; for deferral in dbt Cloud set the job's deferral there, "
                    "and state:modified selection still works with state_path",
                ),
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


def build_outcome(
    payload: dict[str, dict[str, Any]], stopped: BuildStop | None, raising: bool
) -> dict[str, dict[str, Any]]:
    """A finished build's return value (its summary is written by then).

    Raises:
        BuildInterrupted: the build was stopped (a signal, its timeout, stop()).
        DbtBuildFailed: a node errored and ``raising``.
    """
    if stopped is not None and stopped.requested:
        reason = stopped.reason or INTERRUPTED
        raise BuildInterrupted(payload, reason, stopped.signal_number or 0)
    if raising and any(r.get("status") == "error" for r in payload.values()):
        raise DbtBuildFailed(payload)
    return payload


def returned_by_own_flow(
    outcome: object, payload: dict[str, dict[str, Any]] | None, raise_on_failure: bool
) -> dict[str, dict[str, Any]]:
    """What ``run_build`` outside a flow returns (or raises) for its own flow's
    ``outcome``: the results, also when Prefect failed after the build ran.

    Raises:
        BuildInterrupted: the build was stopped.
        DbtBuildFailed: a node errored and ``raise_on_failure``.
        Exception: the build could not run (the error, as it was raised).
    """
    if not isinstance(outcome, OrchestrationError | dict) and payload is not None:
        outcome = results_despite_prefect(outcome, payload)
    if isinstance(outcome, BuildInterrupted):
        raise outcome
    if isinstance(outcome, DbtBuildFailed):
        if raise_on_failure:
            raise outcome
        return outcome.results
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome  # type: ignore[return-value]  # the flow's return value
