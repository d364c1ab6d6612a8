"""PrefectDbtSettings: where the dbt project, its profiles and its target dir are."""

from __future__ import annotations

import os
from pathlib import Path

import attrs


def _default_project_dir() -> Path:
    return Path(os.environ.get("DBT_PROJECT_DIR") or Path.cwd())


def _default_profiles_dir(settings: PrefectDbtSettings) -> Path:
    """dbt's own lookup: DBT_PROFILES_DIR, the project dir if it has profiles.yml, ~/.dbt."""
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    if (Path(settings.project_dir) / "profiles.yml").is_file():
        return Path(settings.project_dir)
    return Path.home() / ".dbt"


def _path(value: str | os.PathLike[str]) -> Path:
    return Path(value).expanduser()


@attrs.frozen
class PrefectDbtSettings:
    """Where the project lives. Relative ``target_path`` is under ``project_dir``.

    Defaults follow dbt: ``DBT_PROJECT_DIR`` or the current directory;
    ``DBT_PROFILES_DIR``, else the project dir when it holds profiles.yml,
    else ``~/.dbt``; ``DBT_TARGET_PATH`` or ``target``.
    """

    project_dir: Path = attrs.field(factory=_default_project_dir, converter=_path)
    profiles_dir: Path = attrs.field(
        default=attrs.Factory(_default_profiles_dir, takes_self=True), converter=_path
    )
    target_path: Path = attrs.field(
        factory=lambda: Path(os.environ.get("DBT_TARGET_PATH") or "target"), converter=_path
    )

    @property
    def target_dir(self) -> Path:
        """The target directory as an absolute-or-project-relative path."""
        if self.target_path.is_absolute():
            return self.target_path
        return self.project_dir / self.target_path
