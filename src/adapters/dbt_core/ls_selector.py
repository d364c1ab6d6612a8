"""DbtLsSelector: the NodeSelector port answered by ``dbt ls`` itself, in this process.

The explicit opt-in (``selection_engine="dbt"``) for when dbt's own answer is
wanted over the pure-Python engine: it runs ``dbt ls --output json
--output-keys unique_id`` through ``dbtRunner``, which parses the project
(partially, when dbt can) and costs one to a few seconds per call.

dbt reads its state from a directory, so when the context carries a state
manifest (and previous run results or sources) they are written to a
temporary directory passed as ``--state``. ``target/manifest.json`` is not
rewritten (``--no-write-json``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    BACKEND,
    ProfileNotFoundError,
    dbt_errors,
)
from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject, ProjectLocation
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionError,
    SelectionRequest,
)
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector

REASON = "dbt ls"

# Printing nothing: results come back as data, errors as exceptions.
_QUIET = (
    "--quiet",
    "--log-level",
    "none",
    "--log-level-file",
    "none",
    "--no-send-anonymous-usage-stats",
    "--no-write-json",
)

_SELECTION_DOCS = "https://docs.getdbt.com/reference/node-selection/syntax"
_STATE_FIX = (
    "pass --state DIR (state_path=...) pointing at the target directory of the run to "
    "compare with (its manifest.json, run_results.json, sources.json)"
)
# dbt raises plain DbtRuntimeError/DbtInternalError for bad selections; its
# message is the only thing that tells what was wrong. Checked in order.
_FIXES = (
    ("not a valid method name", f"use one of dbt's selector methods ({_SELECTION_DOCS})"),
    ("invalid node spec", "write each term as [@][N+][method:]value[+N], e.g. `+orders` or `@stg`"),
    ("invalid selector spec", "write each term as [@][N+][method:]value[+N], e.g. `tag:daily+`"),
    ("could not find selector named", "use a selector defined in selectors.yml, or add it there"),
    ("no comparison manifest", _STATE_FIX),
    ("no comparison run_results", _STATE_FIX),
    ("sources.json", _STATE_FIX),
    ("selector", f"fix the selection term ({_SELECTION_DOCS})"),
)
# Frames in these parts of dbt mean the selection itself was rejected.
_SELECTION_CODE = ("/dbt/graph/", "/dbt/config/selectors.py")


@attrs.frozen
class DbtSelectionError(SelectionError):
    """``dbt ls`` rejected the selection (a bad term, flag or selector name)."""

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"dbt ls rejected the selection: {self.problem}; {self.fix}"


class DbtLsSelector(NodeSelector):
    """Answers a selection by running ``dbt ls`` in this process.

    Args:
        settings: where the project, its profiles and its target dir are.

    dbt parses the project on disk itself (the ``manifest`` argument is not
    handed to dbt), so the answer is for the project as it is now.

    ``select`` raises ``DbtSelectionError`` (a ``PlanError``) for a selection
    dbt rejects, ``ProfileNotFoundError``/``ProjectNotFoundError`` for a bad
    location, and ``ExecutorUnavailable`` when dbt cannot run (not installed,
    the project does not parse).
    """

    def __init__(self, settings: ProjectLocation) -> None:
        self._settings = settings

    def select(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection:
        project = DbtProject.at(self._settings)
        with _state_dir(context) as state:
            args = ls_args(project, request, state)
            lines = _invoke(args, project)
        ids = frozenset(json.loads(line)["unique_id"] for line in lines)
        return Selection(ids, dict.fromkeys(ids, REASON))


def ls_args(project: DbtProject, request: SelectionRequest, state: Path | None) -> list[str]:
    """The ``dbt ls`` argv (without ``dbt``) that answers ``request``."""
    args = ["ls", "--output", "json", "--output-keys", "unique_id", *_QUIET]
    args += ["--project-dir", str(project.project_dir), "--profiles-dir", str(project.profiles_dir)]
    args += ["--target-path", str(project.target_dir)]
    if request.selector is not None:
        args += ["--selector", request.selector]
    for flag, values in (
        ("--select", request.select),
        ("--exclude", request.exclude),
        ("--resource-type", request.resource_types),
        ("--exclude-resource-type", request.exclude_resource_types),
    ):
        for value in values:
            args += [flag, value]
    args += ["--indirect-selection", request.indirect_selection]
    if state is not None:
        args += ["--state", str(state)]
    return args


def _invoke(args: list[str], project: DbtProject) -> list[str]:
    try:
        from dbt.cli.main import dbtRunner
    except ImportError as exc:
        raise ExecutorUnavailable(
            BACKEND, f"dbt-core is not installed ({exc})", "pip install 'dbt-core>=1.8,<1.12'"
        ) from exc
    with dbt_errors("dbt ls"):
        outcome = dbtRunner().invoke(args)
    if outcome.success:
        return [str(line) for line in outcome.result or ()]
    raise _error(outcome.exception, project)


def _error(exc: BaseException | None, project: DbtProject) -> Exception:
    """dbt's failure as ours: a rejected selection, a profile problem, or dbt not running."""
    text = str(exc or "it reported failure").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith("Error"):  # dbt's "Runtime Error" header
        lines = lines[1:]
    problem = " ".join(lines).rstrip(".")
    if exc is not None and _is_selection_error(exc):
        lowered = problem.lower()
        fix = next((fix for key, fix in _FIXES if key in lowered), "use a value dbt accepts")
        return DbtSelectionError(problem, fix)
    if "profile" in text.lower() and "could not find" in text.lower():
        return ProfileNotFoundError(project.profiles_dir, problem)
    return ExecutorUnavailable(BACKEND, f"dbt ls failed: {problem}")


def _is_selection_error(exc: BaseException) -> bool:
    """dbt raised it from its selector code, or rejected a selection flag's value."""
    if type(exc).__name__ in ("DbtUsageException", "InvalidSelectorError", "DbtSelectorsError"):
        return True
    if "could not find selector named" in str(exc).lower():
        return True
    frames = exc.__traceback__
    while frames is not None:
        if any(part in frames.tb_frame.f_code.co_filename for part in _SELECTION_CODE):
            return True
        frames = frames.tb_next
    return False


@contextmanager
def _state_dir(context: SelectionContext) -> Iterator[Path | None]:
    """A temporary ``--state`` directory holding the context's previous-run artifacts."""
    if context.state_manifest_json is None:
        yield None
        return
    files: dict[str, Mapping[str, Any] | None] = {
        "manifest.json": context.state_manifest_json,
        "run_results.json": context.run_results,
        "sources.json": context.previous_sources,
    }
    with tempfile.TemporaryDirectory(prefix="dbt-ls-state-") as folder:
        for name, data in files.items():
            if data is not None:
                (Path(folder) / name).write_text(json.dumps(dict(data)), encoding="utf-8")
        yield Path(folder)
