"""Where a dbt project lives, and whether its manifest is still current."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import attrs

from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    ProfileNotFoundError,
    ProjectNotFoundError,
)

_SOURCE_SUFFIXES = frozenset({".sql", ".py", ".yml", ".yaml", ".csv", ".md", ".jinja", ".j2"})
_NOT_SOURCES = frozenset({"target", "logs", "dbt_packages", "dbt_modules", "node_modules"})


class ProjectLocation(Protocol):
    """Anything that says where the project, its profiles and its target dir are
    (``PrefectDbtSettings`` is one)."""

    @property
    def project_dir(self) -> Path: ...

    @property
    def profiles_dir(self) -> Path: ...

    @property
    def target_path(self) -> Path: ...


@attrs.frozen
class DbtProject:
    """A dbt project on disk. ``target_path`` is relative to ``project_dir`` unless absolute."""

    project_dir: Path = attrs.field(converter=Path)
    profiles_dir: Path = attrs.field(converter=Path)
    target_path: Path = attrs.field(default=Path("target"), converter=Path)

    @classmethod
    def at(cls, location: ProjectLocation) -> DbtProject:
        """A checked DbtProject from any ProjectLocation.

        Raises:
            ProjectNotFoundError: no dbt_project.yml in the project dir.
            ProfileNotFoundError: no profiles.yml in the profiles dir.
        """
        project = cls(
            Path(location.project_dir).expanduser().resolve(),
            Path(location.profiles_dir).expanduser().resolve(),
            Path(location.target_path),
        )
        if not (project.project_dir / "dbt_project.yml").is_file():
            raise ProjectNotFoundError(project.project_dir)
        if not (project.profiles_dir / "profiles.yml").is_file():
            raise ProfileNotFoundError(project.profiles_dir, "there is no profiles.yml")
        return project

    @property
    def target_dir(self) -> Path:
        return (
            self.target_path
            if self.target_path.is_absolute()
            else self.project_dir / self.target_path
        )

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "manifest.json"

    def declares_packages(self) -> bool:
        return any(
            (self.project_dir / name).is_file() for name in ("packages.yml", "dependencies.yml")
        )

    def packages_installed(self) -> bool:
        folder = self.project_dir / "dbt_packages"
        return folder.is_dir() and any(folder.iterdir())

    def newest_source_mtime(self) -> float:
        """The latest modification time among the project's own source files."""
        newest = 0.0
        skip = _NOT_SOURCES | {self.target_dir.name}
        for root, dirs, files in os.walk(self.project_dir):
            dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
            for name in files:
                if Path(name).suffix in _SOURCE_SUFFIXES:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
        return newest

    def manifest_is_current(self) -> bool:
        """True when manifest.json exists and is newer than every project file."""
        try:
            written = self.manifest_path.stat().st_mtime
        except FileNotFoundError:
            return False
        return written >= self.newest_source_mtime()
