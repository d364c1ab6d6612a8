"""What a build runs with, outside the project's files: versions and packages."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path


def version_of(distribution: str) -> str:
    """The installed version of ``distribution``; empty when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def installed_packages(packages_dir: Path) -> dict[str, str]:
    """Each installed dbt package's name and version, from its ``dbt_project.yml``
    (a package without a version gets its file's digest)."""
    found: dict[str, str] = {}
    for project_file in sorted(packages_dir.glob("*/dbt_project.yml")):
        text = project_file.read_text(encoding="utf-8", errors="replace")
        name = _yaml_field(text, "name") or project_file.parent.name
        found[name] = _yaml_field(text, "version") or hashlib.sha256(text.encode()).hexdigest()
    return found


def _yaml_field(text: str, field: str) -> str | None:
    """A top-level scalar of a YAML file, without a YAML parser's cost."""
    match = re.search(rf"^{field}\s*:\s*['\"]?([^'\"#\n]+?)['\"]?\s*(#.*)?$", text, re.M)
    return match[1].strip() if match else None
