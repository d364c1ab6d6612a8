"""Read ``manifest.json`` from disk into the domain's Manifest."""

from __future__ import annotations

import json
from pathlib import Path

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import ManifestMalformedError
from prefect_dbt_orchestrator.domain.manifest import Manifest


def read_manifest(path: Path) -> Manifest:
    """Load and structure the manifest at ``path``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ManifestMalformedError: the file is not JSON.
        ManifestKeyError, ManifestVersionError: see ``structure_manifest``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no manifest at {path}: run `dbt parse` in the project, or pass manifest_path"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestMalformedError(
            str(path), f"invalid JSON at line {exc.lineno}, column {exc.colno}"
        ) from exc
    return structure_manifest(data, source=str(path))
