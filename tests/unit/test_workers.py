"""A worker process's dbt session for builds started elsewhere (``_workers``),
and the build's side of it: its folder, its recipe, its stop file.

The recipe here opens an in-memory ``FakeExecutor``; real process pools and
Dask clusters run in tests/integration/test_task_runners.py.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from prefect import State
from prefect.states import Failed

from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject
from prefect_dbt_orchestrator.adapters.dbt_core.worker import DbtCoreRecipe
from prefect_dbt_orchestrator.adapters.prefect._stop import BuildStop
from prefect_dbt_orchestrator.adapters.prefect._tasks import NodeFailed, worth_retrying
from prefect_dbt_orchestrator.adapters.prefect._workers import (
    RUNNING_DIR,
    STOP_FILE,
    WorkerBuild,
    _Sessions,
    dead_workers,
    running_here,
    worker_build,
)
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.outcomes import ErrorInfo, NodeResult, NodeStatus
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable
from tests.unit.fakes import FakeExecutor

DEADLINE = 120.0  # seconds a test waits for a watcher thread (a loaded machine)


@attrs.define
class FakeRecipe:
    """Opens a ``FakeExecutor``; remembers each one, and how many it opened."""

    key: str
    opened: list[FakeExecutor] = attrs.Factory(list)

    @property
    def session_key(self) -> str:
        return self.key

    def open(self) -> FakeExecutor:
        executor = FakeExecutor()
        self.opened.append(executor)
        return executor


@attrs.define
class Distributable(FakeExecutor):
    """A FakeExecutor whose nodes could run elsewhere: its recipe opens fakes."""

    recipes: list[Path] = attrs.Factory(list)

    def worker_recipe(self, folder: Path) -> FakeRecipe:
        self.recipes.append(folder)
        return FakeRecipe(folder.name)


def build_in(folder: Path, recipe: FakeRecipe) -> WorkerBuild:
    folder.mkdir(parents=True, exist_ok=True)
    return WorkerBuild(str(folder), recipe, InvocationOptions())


def test_a_worker_opens_one_session_per_build_and_reuses_it(tmp_path: Path) -> None:
    sessions, recipe = _Sessions(), FakeRecipe("build-1")
    build = build_in(tmp_path / "b1", recipe)

    with sessions.using(build) as first, sessions.using(build) as second:
        assert first is second
    with sessions.using(build) as third:
        assert third is first

    assert len(recipe.opened) == 1
    sessions.close()
    assert recipe.opened[0].finished == 1


def test_another_builds_node_waits_for_the_session_to_be_idle_then_replaces_it(
    tmp_path: Path,
) -> None:
    sessions = _Sessions()
    one, two = FakeRecipe("one"), FakeRecipe("two")
    first_build, second_build = build_in(tmp_path / "1", one), build_in(tmp_path / "2", two)
    replaced = threading.Event()

    def second_node() -> None:
        with sessions.using(second_build):
            replaced.set()

    with sessions.using(first_build):
        waiter = threading.Thread(target=second_node)
        waiter.start()
        assert not replaced.wait(1.0)  # the first build's node still runs here
        assert one.opened[0].finished == 0
    waiter.join(DEADLINE)

    assert replaced.is_set()
    assert one.opened[0].finished == 1  # closed before the other build's session opened
    assert len(two.opened) == 1
    sessions.close()


def test_a_session_closes_once_its_builds_folder_is_gone(tmp_path: Path) -> None:
    sessions, recipe = _Sessions(), FakeRecipe("gone")
    build = build_in(tmp_path / "build", recipe)
    with sessions.using(build):
        pass

    Path(build.folder).rmdir()
    closed = _wait_for(lambda: recipe.opened[0].finished == 1)

    assert closed
    sessions.close()
    assert recipe.opened[0].finished == 1  # not twice


def test_the_stop_file_stops_the_workers_nodes_and_cancels_their_queries(
    tmp_path: Path,
) -> None:
    sessions, recipe = _Sessions(), FakeRecipe("stopping")
    build = build_in(tmp_path / "build", recipe)

    with sessions.using(build) as session:
        assert not session.stop.requested
        (Path(build.folder) / STOP_FILE).write_text("build interrupted (SIGTERM)")
        assert _wait_for(lambda: session.stop.requested)
        assert _wait_for(lambda: None in recipe.opened[0].cancelled)  # every query

    assert session.stop.reason == "build interrupted (SIGTERM)"
    sessions.close()


def test_a_session_opened_after_the_build_stopped_starts_stopped(tmp_path: Path) -> None:
    sessions, recipe = _Sessions(), FakeRecipe("late")
    build = build_in(tmp_path / "build", recipe)
    (Path(build.folder) / STOP_FILE).write_text("build interrupted")

    with sessions.using(build) as session:
        assert session.stop.requested
    sessions.close()


def test_the_build_folder_holds_the_recipe_and_the_stop_file_and_is_removed_after(
    tmp_path: Path,
) -> None:
    executor, stop = Distributable(), BuildStop()

    with worker_build(executor, tmp_path, InvocationOptions(), stop) as build:
        folder = Path(build.folder)
        assert executor.recipes == [folder]
        assert folder.parent == tmp_path
        stop.request("build stopped by stop()")
        assert _wait_for(lambda: build.stop_path.exists())
        assert build.stop_path.read_text() == "build stopped by stop()"
        assert pickle.loads(pickle.dumps(build.invocation)) == build.invocation
    stop.end()

    assert not folder.exists()


def test_an_executor_that_cannot_run_elsewhere_is_refused_before_any_folder(
    tmp_path: Path,
) -> None:
    with (
        pytest.raises(OptionsConflictError, match="cannot run nodes in other processes"),
        worker_build(FakeExecutor(), tmp_path, InvocationOptions(), BuildStop()),
    ):
        pass

    assert list(tmp_path.iterdir()) == []


def _failed(message: str, kind: str = "DbtDatabaseError") -> State[Any]:
    result = NodeResult("model.p.m", NodeStatus.ERROR, error=ErrorInfo(message, kind))
    return Failed(data=NodeFailed(result))


def test_a_node_task_is_retried_for_a_dropped_connection_not_for_a_sql_error() -> None:
    dropped = _failed("server closed the connection unexpectedly")
    syntax = _failed('syntax error at or near "selec"')
    other: State[Any] = Failed(data=RuntimeError("the API call failed"))

    assert worth_retrying(None, None, dropped) is True
    assert worth_retrying(None, None, syntax) is False
    assert worth_retrying(None, None, other) is True


def _wait_for(check: Callable[[], bool]) -> bool:
    """Whether ``check()`` came true within DEADLINE seconds (polled)."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_recipe_refuses_a_manifest_copy_that_changed_or_is_missing(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"nodes": {}}')
    folder = tmp_path / "build"
    folder.mkdir()
    project = DbtProject(tmp_path, tmp_path)
    recipe = DbtCoreRecipe.write(
        folder, project, manifest, node_ids=["model.p.a"], options=InvocationOptions(),
        root_package="p", quiet=True,
    )  # fmt: skip
    copy = folder / "manifest.json"
    assert copy.read_text() == manifest.read_text()
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    assert recipe.session_key != attrs.evolve(recipe, checksum="0" * 64).session_key

    copy.write_text('{"nodes": {"changed": 1}}')
    with pytest.raises(ExecutorUnavailable, match="changed while it ran"):
        recipe.open()
    copy.unlink()
    with pytest.raises(ExecutorUnavailable, match="cannot read the build's manifest"):
        recipe.open()


def test_a_node_whose_worker_was_killed_is_found_dead_even_before_it_is_reaped(
    tmp_path: Path,
) -> None:
    build = build_in(tmp_path / "build", FakeRecipe("pids"))
    with running_here(build, ["model.p.here"]):
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        try:
            (Path(build.folder) / RUNNING_DIR / "model.p.gone").write_text(str(worker.pid))
            assert dead_workers(build, ["model.p.here", "model.p.gone", "model.p.later"]) == {}
            worker.kill()
            # a zombie until waited for, as a killed pool worker is until its pool notices
            assert _wait_for(lambda: dead_workers(build, ["model.p.gone"]) != {})
            assert dead_workers(build, ["model.p.here", "model.p.gone"]) == {
                "model.p.gone": worker.pid
            }
        finally:
            worker.kill()
            worker.wait()
    assert not (Path(build.folder) / RUNNING_DIR / "model.p.here").exists()
