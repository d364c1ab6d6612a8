"""Read what the selector needs from disk: the root project's files and previous-run artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.local.manifest_file import read_manifest
from prefect_dbt_orchestrator.domain.selection import SelectionContext

_NOT_PROJECT = frozenset({"target", "logs", "dbt_packages", "dbt_modules", "node_modules", ".venv"})


def root_project_files(project_dir: Path, target_dir: Path | None = None) -> frozenset[str]:
    """Every file and directory of the project, relative to it (what ``path:`` globs)."""
    skip = set(_NOT_PROJECT)
    if target_dir is not None:
        skip.add(target_dir.name)
    found: set[str] = set()
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        relative = Path(root).relative_to(project_dir)
        for name in (*dirs, *files):
            found.add((relative / name).as_posix())
    return frozenset(found)


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def selection_context(
    project_dir: Path,
    *,
    target_dir: Path | None = None,
    state_path: Path | None = None,
    manifest_path: Path | None = None,
) -> SelectionContext:
    """The selector's outside data: project files and, with ``state_path``, the
    previous manifest, run_results.json and sources.json found there.

    ``manifest_path`` is the current manifest (default: the target dir's), whose
    JSON ``state:modified`` compares with the state one.
    """
    files = root_project_files(project_dir, target_dir)
    if state_path is None:
        return SelectionContext(root_project_files=files)
    target = target_dir or project_dir / "target"
    state_manifest = state_path / "manifest.json"
    return SelectionContext(
        root_project_files=files,
        state_manifest=read_manifest(state_manifest) if state_manifest.is_file() else None,
        state_manifest_json=_json_or_none(state_manifest),
        manifest_json=_json_or_none(manifest_path or target / "manifest.json"),
        run_results=_json_or_none(state_path / "run_results.json"),
        previous_sources=_json_or_none(state_path / "sources.json"),
        current_sources=_json_or_none(target / "sources.json"),
        state_dir=str(state_path),
    )
