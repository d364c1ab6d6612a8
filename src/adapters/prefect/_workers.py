"""Node tasks in other processes: what they are given, and each worker's dbt session.

On the default thread pool a node task finds its build in the process's
registry (``_tasks.registered``). A process pool's or a Dask cluster's worker
has no such registry: its tasks are given a ``WorkerNodes`` (plain values
that pickle), and the worker opens one dbt session per build from the
build's ``WorkerRecipe`` and reuses it for every node it runs.

The build's own directory (under the target dir, which the workers read
anyway) is the channel back: a ``stop`` file there stops the workers'
nodes (their queries are cancelled), and the directory's removal, at the
build's end, closes their sessions.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.adapters.prefect._stop import INTERRUPTED, BuildStop
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.plan import PlannedNode
from prefect_dbt_orchestrator.ports.executor import (
    DbtExecutor,
    DistributableExecutor,
    WorkerRecipe,
)

STOP_FILE = "stop"
RUNNING_DIR = "running"  # <uid>: the pid of the worker running that node
BUILD_PREFIX = ".orchestrator-build-"
WATCH_SECONDS = 0.5  # how often a worker looks for the stop file
CANCEL_REPEAT_SECONDS = 1.0  # as in the build's own process

_LOG = logging.getLogger("prefect_dbt_orchestrator")


@attrs.frozen
class WorkerBuild:
    """What every node task of one build needs in another process."""

    folder: str  # the build's own directory: the stop file, the manifest copy
    recipe: WorkerRecipe
    invocation: InvocationOptions
    concurrency_limit: str | None = None
    concurrency_timeout: float | None = None

    @property
    def stop_path(self) -> Path:
        return Path(self.folder) / STOP_FILE


@attrs.frozen
class WorkerNodes:
    """One task's share of the build: its nodes as planned, with their timeouts."""

    build: WorkerBuild
    nodes: Mapping[str, Node]
    planned: Mapping[str, PlannedNode]
    timeouts: Mapping[str, float | None]


@contextlib.contextmanager
def worker_build(
    executor: DbtExecutor,
    parent: Path,
    invocation: InvocationOptions,
    stop: BuildStop,
    concurrency_limit: str | None = None,
    concurrency_timeout: float | None = None,
) -> Iterator[WorkerBuild]:
    """The build's ``WorkerBuild`` (its directory made under ``parent``, removed
    at the end); a stop request writes the stop file the workers look for.

    Raises:
        OptionsConflictError: ``executor`` cannot run nodes in other processes.
    """
    from prefect_dbt_orchestrator.domain.errors import OptionsConflictError

    if not isinstance(executor, DistributableExecutor):
        raise OptionsConflictError(
            f"{type(executor).__name__} cannot run nodes in other processes (it has no "
            "worker_recipe())",
            "use the default thread pool task runner (task_runner=None) with this executor",
        )
    parent.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=parent)
    try:
        build = WorkerBuild(
            folder,
            executor.worker_recipe(Path(folder)),
            invocation,
            concurrency_limit,
            concurrency_timeout,
        )
        stop.when_requested(functools.partial(_write_stop, build.stop_path, stop))
        yield build
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_here(build: WorkerBuild, unique_ids: Iterable[str]) -> Iterator[None]:
    """While this worker runs ``unique_ids``: a file per node in the build's
    ``running/`` folder holding this process's pid (see ``dead_workers``)."""
    folder = Path(build.folder) / RUNNING_DIR
    written: list[Path] = []
    with contextlib.suppress(OSError):  # the build ended meanwhile: nothing to watch
        folder.mkdir(exist_ok=True)
        for uid in unique_ids:
            path = folder / uid
            path.write_text(str(os.getpid()), encoding="utf-8")
            written.append(path)
    try:
        yield
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def dead_workers(build: WorkerBuild, unique_ids: Iterable[str]) -> dict[str, int]:
    """The nodes among ``unique_ids`` whose worker process, on this machine, is
    gone (or a zombie): unique_id -> that worker's pid.

    A process pool notices a dead worker only when its manager thread wakes,
    which may be when another task ends (Python 3.11); the build looks itself.
    """
    folder = Path(build.folder) / RUNNING_DIR
    dead = {}
    for uid in unique_ids:
        try:
            pid = int((folder / uid).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not started yet, or already ended
            continue
        if not _alive(pid):
            dead[uid] = pid
    return dead


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a killed pool worker stays a zombie until
    the pool reaps it, so Linux's /proc state is read where there is one."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            state = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_stop(path: Path, stop: BuildStop) -> None:
    with contextlib.suppress(OSError):  # the build ended meanwhile
        partial = path.with_name(f".{STOP_FILE}.{os.getpid()}")
        partial.write_text(stop.reason or INTERRUPTED, encoding="utf-8")
        os.replace(partial, path)


@attrs.define
class _Session:
    """This process's dbt session for one build."""

    key: str
    folder: Path
    executor: DbtExecutor
    stop: BuildStop
    opened_in: float
    active: int = 0
    closed: bool = False
    announced: bool = False  # its opening was logged


class _Sessions:
    """The one dbt session of this worker process (dbt's state is process-wide).

    A node of another build waits until the current session is idle, then
    replaces it. The session closes when its build's directory is gone (the
    build ended), when another build replaces it, or when the process exits.
    """

    def __init__(self) -> None:
        self._current: _Session | None = None
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def using(self, build: WorkerBuild) -> Iterator[_Session]:
        session = self._acquire(build)
        try:
            yield session
        finally:
            with self._changed:
                session.active -= 1
                self._changed.notify_all()

    def _acquire(self, build: WorkerBuild) -> _Session:
        key = build.recipe.session_key
        with self._changed:
            while True:
                current = self._current
                if current is not None and current.key == key and not current.closed:
                    current.active += 1
                    return current
                if current is None or current.active == 0:
                    break
                self._changed.wait(WATCH_SECONDS)
            self._close_locked()
            session = _open(build)
            session.active = 1
            self._current = session
        threading.Thread(
            target=self._watch, args=(session, build.stop_path), name="dbt-worker-watch",
            daemon=True,
        ).start()  # fmt: skip
        return session

    def _watch(self, session: _Session, stop_path: Path) -> None:
        """Stop the session's nodes when the stop file appears; close it once
        its build's directory is gone and no node of it runs."""
        while not session.closed:
            if not session.stop.requested and stop_path.exists():
                with contextlib.suppress(OSError):
                    session.stop.request(stop_path.read_text(encoding="utf-8") or INTERRUPTED)
            if not session.folder.exists():
                with self._changed:
                    if session.active == 0 and self._current is session:
                        self._close_locked()
                        return
            time.sleep(WATCH_SECONDS)

    def close(self) -> None:
        with self._changed:
            self._close_locked()

    def _close_locked(self) -> None:
        session, self._current = self._current, None
        if session is None or session.closed:
            return
        session.closed = True
        session.stop.end()
        try:
            session.executor.finish_run()
        except Exception as exc:  # closing must not fail the next build
            _LOG.warning("closing this worker's dbt session failed: %s", exc)
        self._changed.notify_all()


def _open(build: WorkerBuild) -> _Session:
    _quiet_interrupts()
    started = time.perf_counter()
    executor = build.recipe.open()
    stop = BuildStop()
    stop.when_requested(executor.cancel, repeat_every=CANCEL_REPEAT_SECONDS)
    elapsed = time.perf_counter() - started
    session = _Session(build.recipe.session_key, Path(build.folder), executor, stop, elapsed)
    if build.stop_path.exists():  # the build stopped before this worker's first node
        session.stop.request(INTERRUPTED)
    return session


def _quiet_interrupts() -> None:
    """A process-pool worker leaves Ctrl-C to the build's process, which stops
    the build and tells its workers (the terminal sends SIGINT to them all)."""
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


SESSIONS = _Sessions()
atexit.register(SESSIONS.close)
