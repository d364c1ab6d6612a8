"""Errors of the dbt Core adapter, and the one place dbt's exceptions become ours.

dbt's reason is kept whole (every line of it, less a bare "Runtime Error"
heading): "does not have a target named 'x'" is followed by the valid names.
dbt refusing its input (a profile, target, project file or flag: dbt's
``DbtConfigError``, ``CompilationError``, ``ParsingError``, usage errors) is
bad input, a ``PlanError``; anything else that stops dbt is
``ExecutorUnavailable``.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.redaction import Secrets
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
class DbtInputError(PlanError):
    """dbt refused the project, profile, target or a flag; ``reason`` is dbt's own."""

    step: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.step} failed: {self.reason}\n"
            "fix what dbt names above (a flag, profiles.yml, dbt_project.yml or a project "
            "file); run `dbt parse` in the project to see the same error"
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


# dbt's bare heading line above its reason ("Runtime Error", "Compilation Error").
_HEADING = re.compile(r"[A-Z][A-Za-z ]*Error")


def dbt_reason(text: str) -> str:
    """All of dbt's message, less a bare heading line, dedented; never one line of it."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and _HEADING.fullmatch(lines[0].strip()):
        lines = lines[1:]
    return textwrap.dedent("\n".join(lines)).strip()


def _refuses_input(exc: BaseException) -> bool:
    """dbt refused what it was given, rather than failing to run."""
    try:
        from dbt.cli.exceptions import DbtUsageException
        from dbt.exceptions import ParsingError
        from dbt_common.exceptions import CompilationError, DbtConfigError
    except ImportError:  # no dbt, so it refused nothing
        return False
    return isinstance(exc, DbtConfigError | CompilationError | ParsingError | DbtUsageException)


def dbt_failure(step: str, exc: BaseException | None, reason: str) -> Exception:
    """Ours for dbt's failure ``exc`` at ``step`` (``reason``: its text, secrets
    scrubbed): a missing adapter, dbt refusing its input, or dbt not running."""
    missing = missing_adapter(reason)
    if missing is not None:
        return missing
    if exc is not None and _refuses_input(exc):
        return DbtInputError(step, reason)
    return ExecutorUnavailable(BACKEND, f"{step} failed: {reason}")


@contextlib.contextmanager
def dbt_errors(step: str, secrets: Secrets | None = None) -> Iterator[None]:
    """Turn an exception from dbt itself (not a node failure) into ours (see
    ``dbt_failure``), keeping dbt's whole reason, ``secrets`` scrubbed from it."""
    try:
        yield
    except (PlanError, ExecutorUnavailable):
        raise
    except Exception as exc:  # dbt raises many unrelated classes
        reason = dbt_reason(str(exc)) or type(exc).__name__
        if secrets is not None:
            reason = secrets.scrub(reason)
        raise dbt_failure(step, exc, reason) from exc
