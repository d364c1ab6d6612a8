"""``dbt-orchestrate``'s exit codes, and the one place an error becomes one.

Every expected failure ends in one ``dbt-orchestrate: error: ...`` line on
stderr and its code; the Python traceback is shown with ``--debug`` only
(always for an internal error, which is a bug).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import attrs
import httpx

from prefect_dbt_orchestrator.adapters.local.build_lock import BuildLockedError
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    OrchestrationError,
    PlanError,
    SchedulerUnavailable,
)
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

SUCCESS = 0
NODE_FAILED = 1
BAD_INPUT = 2
UNAVAILABLE = 3
INTERNAL = 70  # BSD's EX_SOFTWARE
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
TERMINATED = 143  # 128 + SIGTERM

EXIT_CODES = """\
exit codes:
  0    success: every selected node succeeded, or was skipped by design
       (plan and ls: even when nothing is selected)
  1    build: some node errored (the flow run ends Failed; --results-json is written)
  2    bad input, found before anything runs and before a flow run starts: a flag,
       selector, project, profile, target, manifest or --results-json path, or
       another build of the same project running (its lock names the process)
  3    infrastructure: dbt, the warehouse or the Prefect API is unavailable
       (no dbt adapter for the profile's type, PREFECT_API_URL unreachable...)
  70   internal error: a bug in dbt-orchestrate (the traceback is printed)
  130  interrupted (SIGINT, Ctrl-C)
  143  terminated (SIGTERM)
Failures print one line on stderr; --debug adds the Python traceback.
"""


@attrs.frozen
class ResultsPathError(PlanError):
    """``--results-json`` names a path the results could not be written to."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return (
            f"--results-json {self.path}: {self.problem}; pass the path of a file in a "
            "directory you can write to (missing directories are created)"
        )


def _nearest_existing(path: Path) -> Path:
    for folder in path.parents:
        if folder.exists():
            return folder
    return Path(path.anchor or ".")


def check_results_path(path: Path | None) -> None:
    """Fail now, before the build, if ``path`` cannot be written at its end.

    Raises:
        ResultsPathError: ``path`` is a directory, or a file or folder on the way
            cannot be written or created.
    """
    if path is None:
        return
    if path.is_dir():
        raise ResultsPathError(path, "it is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ResultsPathError(path, "the file is not writable")
        return
    folder = _nearest_existing(path)
    if not folder.is_dir():
        raise ResultsPathError(path, f"{folder} is a file, so no directory can be made in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ResultsPathError(path, f"the directory {folder} is not writable")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def prefect_failure(exc: BaseException) -> SchedulerUnavailable | None:
    """The Prefect API failure behind ``exc`` (an httpx error in its chain), if any.

    The message names the HTTP status and path, never headers (an API key).
    """
    for link in _chain(exc):
        if isinstance(link, httpx.HTTPStatusError):  # PrefectHTTPStatusError too
            status, path = link.response.status_code, link.request.url.path
            return SchedulerUnavailable("the Prefect API", f"answered HTTP {status} on {path}")
        if isinstance(link, httpx.TransportError):
            cause = f"{type(link).__name__}: {link}".rstrip(": ")
            return SchedulerUnavailable(
                "the Prefect API", f"is unavailable: {cause if link is exc else f'{exc} ({cause})'}"
            )
    return None


def _as_ours(exc: BaseException) -> BaseException:
    """Our error for ``exc``: itself, or SchedulerUnavailable for a Prefect API failure."""
    if isinstance(exc, OrchestrationError):
        return exc
    failure = prefect_failure(exc)
    return exc if failure is None else failure


def exit_code(exc: BaseException) -> int:
    """The exit code for ``exc`` reaching ``main`` (see EXIT_CODES)."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    ours = _as_ours(exc)
    if isinstance(ours, BuildInterrupted):
        return 128 + ours.signal_number if ours.signal_number else NODE_FAILED
    if isinstance(ours, PlanError | BuildLockedError):  # a busy project: said before it runs
        return BAD_INPUT
    if isinstance(ours, ExecutorUnavailable | SchedulerUnavailable):
        return UNAVAILABLE
    return INTERNAL


def report(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` as one message on stderr (with its traceback under ``debug``,
    or when it is a bug); return its exit code."""
    code = exit_code(exc)
    if debug or code == INTERNAL:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    elif code == INTERNAL:
        message = f"internal error ({type(exc).__name__}: {exc}); please report it"
    else:
        message = f"error: {_as_ours(exc)}"
    print(f"dbt-orchestrate: {message}", file=sys.stderr)
    return code
