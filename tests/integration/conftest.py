"""Fixtures for the integration tests: a real Prefect server, throwaway copies of
real dbt projects, and plain dbt (``dbtRunner``, in this process) to compare with.

* ``prefect_api_url`` (session, autouse): a Prefect server of its own, started
  once with ``prefect_test_harness`` (10-20 s). A server the machine already
  runs (127.0.0.1:4200) is never used: ``PREFECT_API_URL`` is unset first.
* ``demo_project``: a copy of ``demo/`` in ``tmp_path`` whose DuckDB file
  (``DEMO_DUCKDB_PATH``) is in ``tmp_path`` too.
* ``flaky_project``: a copy of ``projects/flaky`` (its model ``flaky`` fails on
  its first attempt only).
* ``generated_project``: a factory running ``shared/bench/gen_project.py``.
* ``plain_dbt`` and ``plain_demo_build``: plain ``dbt build`` on a SEPARATE copy
  of a project, with its own database, and ``dbt ls`` on a project.

dbt keeps process-wide state (flags, adapters): never run two builds at once
in this process, which is why nothing here runs in a thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
import pytest
from dbt.cli.main import dbtRunner
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo"
FLAKY_DIR = Path(__file__).resolve().parent / "projects" / "flaky"
DEMO_NODE_COUNT = 29

_COPY_IGNORE = shutil.ignore_patterns(
    "target", "logs", "dbt_packages", "*.duckdb", "*.duckdb.wal", ".user.yml"
)

# dbt's own statuses folded into the result contract's (see domain.outcomes).
_CONTRACT = {
    "success": "success",
    "pass": "success",
    "warn": "success",
    "no-op": "success",
    "error": "error",
    "fail": "error",
    "runtime error": "error",
    "partial success": "error",
    "skipped": "skipped",
}
EXECUTABLE_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test"})


def bench_dir() -> Path:
    """``shared/bench`` (the project generator): ``DBT_BENCH_DIR``, else beside the
    repository, else ``/work/shared/bench``. A missing one fails loudly."""
    override = os.environ.get("DBT_BENCH_DIR")
    candidates = [Path(override)] if override else []
    candidates += [parent / "shared" / "bench" for parent in Path(__file__).resolve().parents]
    candidates.append(Path("/work/shared/bench"))
    for candidate in candidates:
        if (candidate / "gen_project.py").is_file():
            return candidate
    raise FileNotFoundError(
        "shared/bench/gen_project.py was not found beside the repository; "
        "set DBT_BENCH_DIR to the folder that holds it"
    )


def copy_project(source: Path, destination: Path) -> Path:
    """A clean copy of a dbt project: no target/, logs/ or database files."""
    shutil.copytree(source, destination, ignore=_COPY_IGNORE)
    return destination


def as_contract(dbt_statuses: Mapping[str, str]) -> dict[str, str]:
    """dbt's statuses (pass, warn, fail...) as the contract's success/error/skipped."""
    return {uid: _CONTRACT[status] for uid, status in dbt_statuses.items()}


def contract_statuses(results: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The ``status`` of every node of an orchestrator result dict."""
    return {uid: str(result["status"]) for uid, result in results.items()}


def invoke_dbt(args: list[str]) -> Any:
    """``dbtRunner().invoke`` without dbt.log: dbt_common drops its file handler on
    the next invocation without closing it, a ResourceWarning (an error here)."""
    return dbtRunner().invoke([*args, "--log-level-file", "none"])


# ---------------------------------------------------------------- Prefect


@pytest.fixture(scope="session", autouse=True)
def prefect_api_url() -> Iterator[str]:
    """A Prefect server for the whole session; yields its API URL."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PREFECT_API_URL", raising=False)
        with prefect_test_harness(server_startup_timeout=90):
            url = PREFECT_API_URL.value()
            assert url, "prefect_test_harness set no PREFECT_API_URL"
            yield str(url)


# ---------------------------------------------------------------- projects


@pytest.fixture
def demo_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo project, building into ``tmp_path/demo.duckdb``."""
    project = copy_project(DEMO_DIR, tmp_path / "demo")
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    return project


SLOW_DIR = Path(__file__).resolve().parent / "projects" / "slow"


@attrs.frozen
class SlowProject:
    """A copy of ``projects/slow``; ``marker`` appears once the slow query runs."""

    project_dir: Path
    marker: Path
    env: dict[str, str]


@pytest.fixture
def slow_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlowProject:
    project = copy_project(SLOW_DIR, tmp_path / "slow")
    marker = tmp_path / "slow.started"
    env = {"SLOW_DUCKDB_PATH": str(tmp_path / "slow.duckdb"), "SLOW_MARKER_PATH": str(marker)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return SlowProject(project, marker, env)


FLAKY_MODEL = "model.flaky.flaky"
FLAKY_DOWNSTREAM = "model.flaky.flaky_downstream"


@attrs.frozen
class FlakyProject:
    """A copy of ``projects/flaky``; ``marker`` exists once ``flaky`` has run once."""

    project_dir: Path
    marker: Path
    database: Path


@pytest.fixture
def flaky_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FlakyProject:
    project = copy_project(FLAKY_DIR, tmp_path / "flaky")
    marker = tmp_path / "flaky-attempted"
    database = tmp_path / "flaky.duckdb"
    monkeypatch.setenv("FLAKY_DUCKDB_PATH", str(database))
    monkeypatch.setenv("FLAKY_MARKER_PATH", str(marker))
    return FlakyProject(project, marker, database)


@attrs.frozen
class GeneratedProject:
    """A project written by gen_project.py, its profiles.yml pointing at ``database``."""

    project_dir: Path
    database: Path

    def profiles_for(self, folder: Path) -> Path:
        """A profiles dir OUTSIDE the project whose database is a fresh file in ``folder``.

        Outside the project, so its files do not change; a fresh path, because
        dbt-duckdb keeps one open database per path; the same file name, so the
        catalog (DuckDB names it after the file) is the same in every run.
        """
        folder.mkdir(parents=True, exist_ok=False)
        text = (self.project_dir / "profiles.yml").read_text(encoding="utf-8")
        assert str(self.database) in text, text
        new = text.replace(str(self.database), str(folder / self.database.name))
        (folder / "profiles.yml").write_text(new, encoding="utf-8")
        return folder


class GenerateProject(Protocol):
    def __call__(
        self, models: int = 50, *, layers: int = 5, tests_per_model: int = 2, seed: int = 42
    ) -> GeneratedProject: ...


@pytest.fixture
def generated_project(tmp_path: Path) -> GenerateProject:
    """A factory: ``generated_project(50)`` -> 3 seeds, 50 models, 96 tests (146 nodes)."""

    def generate(
        models: int = 50, *, layers: int = 5, tests_per_model: int = 2, seed: int = 42
    ) -> GeneratedProject:
        assert models <= 50, "keep the suite fast: at most the 50-model project"
        out = tmp_path / f"gen{models}"
        database = tmp_path / f"gen{models}.duckdb"
        command = [
            sys.executable, str(bench_dir() / "gen_project.py"),
            "--models", str(models), "--layers", str(layers),
            "--tests-per-model", str(tests_per_model), "--seed", str(seed),
            "--out", str(out), "--db-path", str(database),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return GeneratedProject(out, database)

    return generate


# ---------------------------------------------------------------- plain dbt


class PlainDbt:
    """Plain dbt, in this process: ``build`` on a separate copy, ``ls`` in place."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._copies = 0

    def build(
        self,
        project: Path,
        *args: str,
        profiles_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """``dbt build`` on a fresh copy of ``project``; dbt's status per unique_id.

        ``env`` is set for the build only (point ``DEMO_DUCKDB_PATH`` at another
        file so the copy has its own database).
        """
        self._copies += 1
        copy = copy_project(project, self._workdir / f"plain-{self._copies}-{project.name}")
        with pytest.MonkeyPatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            res = invoke_dbt(["build", *self._location(copy, profiles_dir or copy), *args])
        assert res.exception is None, res.exception
        return {r.node.unique_id: str(r.status) for r in res.result.results}

    def ls(self, project: Path, *args: str, profiles_dir: Path | None = None) -> set[str]:
        """What ``dbt ls`` selects that ``dbt build`` would run (executable types,
        no ephemeral models), on ``project`` itself."""
        res = invoke_dbt(
            [
                "ls", *self._location(project, profiles_dir or project), "--quiet",
                "--output", "json", "--output-keys", "unique_id", "resource_type", "config",
                *args,
            ]
        )  # fmt: skip
        assert res.exception is None and res.success, res.exception
        rows = [json.loads(line) for line in res.result]
        return {
            row["unique_id"]
            for row in rows
            if row["resource_type"] in EXECUTABLE_TYPES
            and row.get("config", {}).get("materialized") != "ephemeral"
        }

    @staticmethod
    def _location(project: Path, profiles_dir: Path) -> list[str]:
        return [
            "--project-dir", str(project),
            "--profiles-dir", str(profiles_dir),
            "--target-path", str(project / "target"),
        ]  # fmt: skip


@pytest.fixture
def plain_dbt(tmp_path: Path) -> PlainDbt:
    return PlainDbt(tmp_path / "plain")


class PlainDemoBuild(Protocol):
    def __call__(self, *args: str) -> dict[str, str]: ...


@pytest.fixture(scope="session")
def plain_demo_build(tmp_path_factory: pytest.TempPathFactory) -> PlainDemoBuild:
    """Plain ``dbt build`` of a pristine demo copy with ``args``; dbt's statuses.

    Memoized per ``args`` for the session: the demo never changes, and each
    build takes seconds.
    """
    root = tmp_path_factory.mktemp("plain-demo")
    seen: dict[tuple[str, ...], dict[str, str]] = {}
    plain = PlainDbt(root)

    def build(*args: str) -> dict[str, str]:
        if args not in seen:
            database = root / f"plain-{len(seen)}.duckdb"
            seen[args] = plain.build(DEMO_DIR, *args, env={"DEMO_DUCKDB_PATH": str(database)})
        return dict(seen[args])

    return build
