"""Errors of the dbt Core adapter, and the one place dbt's exceptions become ours."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import attrs

from domain.errors import PlanError
from ports.executor import ExecutorUnavailable

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
        raise ExecutorUnavailable(BACKEND, f"{step} failed: {detail}") from exc
