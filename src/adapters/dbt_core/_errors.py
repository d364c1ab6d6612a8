"""Errors of the dbt Core adapter, and the one place dbt's exceptions become ours."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

BACKEND = "dbt Core"


@attrs.frozen
class ProjectNotFoundError(PlanError):
    """There is no dbt project where the settings point."""

    project_dir: Path

    def __str__(self) -> str:
        return (
            f"no dbt project at {self.project_dir} (no dbt_project.yml there): pass "
            "PrefectDbtSettings(project_dir=...) or --project-dir pointing at the folder "
            "that holds dbt_project.yml"
        )


@attrs.frozen
class ProfileNotFoundError(PlanError):
    """No profiles.yml defines the profile the project asks for."""

    profiles_dir: Path
    problem: str

    def __str__(self) -> str:
        return (
            f"no usable dbt profile in {self.profiles_dir}: {self.problem}; pass "
            "PrefectDbtSettings(profiles_dir=...) or --profiles-dir pointing at the folder "
            "that holds profiles.yml, or set DBT_PROFILES_DIR"
        )


@attrs.frozen
class MissingAdapterError(ExecutorUnavailable):
    """The profile's warehouse type has no dbt adapter installed (``dbt-<type>``)."""


# The warehouses this distribution ships an extra for.
EXTRAS = {"duckdb": "duckdb", "postgres": "postgres"}
_MISSING = re.compile(r"Could not find adapter type (?P<type>[\w-]+)")


def missing_adapter(problem: str) -> MissingAdapterError | None:
    """The error for dbt's "Could not find adapter type X!" message, if it is that."""
    found = _MISSING.search(problem)
    if found is None:
        return None
    kind = found["type"]
    extra = EXTRAS.get(kind)
    fix = (
        f'install it with: pip install "prefect-dbt-orchestrator[{extra}]"'
        if extra
        else f"install dbt's adapter for it (pip install dbt-{kind}) in this environment"
    )
    return MissingAdapterError(
        BACKEND,
        f"the profile's target is of type {kind!r}, but no dbt-{kind} adapter is installed",
        fix,
    )


@contextlib.contextmanager
def dbt_errors(step: str) -> Iterator[None]:
    """Turn an exception from dbt itself (not a node failure) into ExecutorUnavailable."""
    try:
        yield
    except (PlanError, ExecutorUnavailable):
        raise
    except Exception as exc:  # dbt raises many unrelated classes; all mean "could not run"
        message = str(exc).strip().splitlines()
        detail = message[0] if message else type(exc).__name__
        missing = missing_adapter(str(exc))
        if missing is not None:
            raise missing from exc
        raise ExecutorUnavailable(BACKEND, f"{step} failed: {detail}") from exc
