"""Access to ``../shared/corpus``: real manifests and what real dbt answered.

The corpus is read, never written. ``DBT_CORPUS_DIR`` overrides where it is;
otherwise it is found beside the repository (``../shared/corpus``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.manifest import Manifest

PROJECTS = (
    "jaffle_shop_duckdb",
    "jaffle_shop",
    "dbt_project_evaluator",
    "nba_monte_carlo",
    "tuva",
)


def corpus_dir() -> Path:
    """The corpus directory; a missing corpus fails loudly, it is never skipped."""
    override = os.environ.get("DBT_CORPUS_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "corpus" for parent in here.parents]
    candidates.append(Path("/work/shared/corpus"))
    for candidate in candidates:
        if (candidate / "jaffle_shop" / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(
        "the dbt corpus was not found beside the repository (../shared/corpus); "
        "set DBT_CORPUS_DIR to its path"
    )


@cache
def raw_manifest(project: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpus_dir() / project / "manifest.json").read_text())
    return data


@cache
def manifest(project: str) -> Manifest:
    return structure_manifest(raw_manifest(project), source=f"{project}/manifest.json")


@cache
def run_results(project: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpus_dir() / project / "run_results.json").read_text())
    return data


def jsonl(project: str, name: str) -> Iterator[dict[str, Any]]:
    with (corpus_dir() / project / name).open() as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def root_project_files(project: str) -> list[str]:
    text = (corpus_dir() / project / "root_project_files.txt").read_text()
    return [line for line in text.splitlines() if line.strip()]


def project_layout(project: str, folder: Path) -> Path:
    """Empty files and folders in ``folder`` laid out as the project's root files
    (what ``path:`` selectors glob); an entry with entries below it is a folder."""
    entries = root_project_files(project)
    parents = {entry.rsplit("/", 1)[0] for entry in entries if "/" in entry}
    for entry in entries:
        target = folder / entry
        if entry in parents:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    return folder
