"""Node tasks in other processes: Prefect's process pool and a Dask cluster, on PostgreSQL.

Each worker process opens its own dbt session and says so in a log line
("worker pid N opened its dbt session"), read back here from the Prefect
API. The demo's failing build ends as plain ``dbt build --target postgres``
does; PER_NODE overlaps as many nodes as it may; retries, ``stop()`` and node
timeouts behave as on the thread pool; a worker killed mid-node leaves one
result per node and a next build that works. A DuckDB file (one writer
process) is refused before anything runs.

Nothing asserts on wall time. A cancelled query shows itself by leaving
``pg_stat_activity`` while its 600 s sleep has far to go (a query still there
a minute after its cancel fails the test, and is terminated so that the
build ends). PostgreSQL notices a killed client only when it next writes to
it: the tests that kill a worker terminate the backend it left sleeping, as
an administrator would, so that its locks do not hold up the next build.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import duckdb
import psutil  # type: ignore[import-untyped]  # distributed's dependency; no stubs here
import psycopg2  # type: ignore[import-untyped]  # dbt-postgres's driver; ships no types
import pytest
from prefect import flow
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner
from prefect_dask.task_runners import DaskTaskRunner
from psycopg2 import sql

from prefect_dbt_orchestrator import ExecutionMode, OptionsConflictError
from prefect_dbt_orchestrator.domain.errors import BuildInterrupted
from tests.integration import test_postgres, test_transient_errors
from tests.integration.conftest import DEMO_NODE_COUNT, as_contract, contract_statuses, copy_project
from tests.integration.postgres import (
    PG_SLEEP_DIR,
    PG_SLEEP_MODELS,
    PostgresServer,
    fresh_schema,
    node_intervals,
    peak_overlap,
    postgres_server_fixture,  # noqa: F401  (the session fixture postgres_server)
)
from tests.integration.test_demo_project import FAILING_MODEL
from tests.integration.test_failures_visible import Readback, read_back_when
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for
from tests.integration.test_postgres import FAIL_VARS
from tests.integration.test_transient_errors import (
    AFTER_BROKEN,
    AFTER_DROPPED,
    BROKEN,
    DROPPED,
    MARKER,
    BackendKiller,
    Faults,
)

pytestmark = pytest.mark.integration

# Fixtures of other modules, registered here under their own names.
plain_postgres_failing_build = test_postgres.plain_postgres_failing_build
faults = test_transient_errors.faults
killer = test_transient_errors.killer

OPENED = re.compile(r"worker pid (\d+) opened its dbt session")
DEADLINE = 600.0  # seconds to wait for a query to start: dbt parses, workers spawn
CANCEL_DEADLINE = 60.0  # seconds a cancelled query may take to leave (it takes about 1)
POLL_SECONDS = 0.05
LONG_SLEEP = ["--vars", "{sleep_seconds: 600}"]  # never slept out: cancelled or killed
DIED = "the worker process running it died"
POOL_DIED = "a worker process of the task runner died while running "
MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])


def process_pool(workers: int = 2) -> TaskRunner[Any]:
    return ProcessPoolTaskRunner(max_workers=workers)


def dask_cluster() -> TaskRunner[Any]:
    """A distributed LocalCluster of two single-threaded worker processes."""
    cluster = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
    # distributed serves HTTP even without a dashboard, on port 8787 unless told
    return DaskTaskRunner(cluster_kwargs=cluster | {"dashboard_address": ":0"})


RUNNERS = pytest.mark.parametrize("make_runner", [process_pool, dask_cluster], ids=["pool", "dask"])


def in_recorded_flow(call: Callable[[], Any], flow_runs: list[uuid.UUID]) -> Any:
    """``in_flow(call)``, noting the flow run's id in ``flow_runs`` first."""

    def recorded() -> Any:
        flow_runs.append(uuid.UUID(flow_run.id))
        return call()

    return in_flow(recorded)


def _sessions_opened(found: Readback) -> set[int]:
    return {int(match.group(1)) for log in found[3] if (match := OPENED.search(log.message))}


def worker_pids(flow_run_id: uuid.UUID) -> set[int]:
    """The pids of the processes that opened a dbt session for the flow run's
    build (their log lines, read back from the Prefect API)."""
    found = read_back_when(flow_run_id, lambda found: bool(_sessions_opened(found)))
    return _sessions_opened(found)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# ---------------------------------------------------------------- the demo


@RUNNERS
@MODES
def test_the_demo_fails_as_plain_dbt_build_does_with_its_nodes_in_worker_processes(
    make_runner: Callable[[], TaskRunner[Any]],
    mode: ExecutionMode,
    demo_project: Path,
    postgres_server: PostgresServer,
    plain_postgres_failing_build: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, postgres_server.env("DEMO_PG", fresh_schema("runners")))
    orchestrator = orchestrator_for(
        demo_project, execution_mode=mode, raise_on_failure=False, task_tags=False,
        task_runner=make_runner(),
    )  # fmt: skip
    flow_runs: list[uuid.UUID] = []

    results = in_recorded_flow(
        lambda: orchestrator.run_build(target="postgres", extra_cli_args=FAIL_VARS), flow_runs
    )

    assert len(results) == DEMO_NODE_COUNT
    assert contract_statuses(results) == as_contract(plain_postgres_failing_build)
    message = results[FAILING_MODEL]["error"]["message"]
    assert 'relation "a_table_that_does_not_exist" does not exist' in message  # PostgreSQL's words
    pids = worker_pids(flow_runs[0])
    assert pids, "no worker process opened a dbt session"
    assert os.getpid() not in pids


@flow(
    name="user-flow-on-a-process-pool",
    task_runner=process_pool(),
    log_prints=False,
)
def user_flow(project_dir: str) -> dict[str, dict[str, Any]]:
    """A user's flow whose own task runner is a process pool (at module level:
    the pool's workers import it by name)."""
    orchestrator = orchestrator_for(
        Path(project_dir),
        execution_mode=ExecutionMode.PER_NODE,
        raise_on_failure=False,
        task_tags=False,
    )
    return orchestrator.run_build(target="postgres", extra_cli_args=FAIL_VARS)


def test_a_flow_on_a_process_pool_runs_the_nodes_in_its_workers_without_being_told(
    demo_project: Path,
    postgres_server: PostgresServer,
    plain_postgres_failing_build: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, postgres_server.env("DEMO_PG", fresh_schema("user_flow")))

    state = user_flow(str(demo_project), return_state=True)

    results = state.result()
    assert len(results) == DEMO_NODE_COUNT
    assert contract_statuses(results) == as_contract(plain_postgres_failing_build)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    pids = worker_pids(flow_run_id)
    assert pids, "no worker process opened a dbt session"
    assert os.getpid() not in pids


def test_a_duckdb_project_on_a_process_pool_is_refused_before_anything_runs(
    demo_project: Path, tmp_path: Path
) -> None:
    orchestrator = orchestrator_for(demo_project, task_runner=process_pool(), task_tags=False)
    flow_runs: list[uuid.UUID] = []

    with pytest.raises(OptionsConflictError, match="DuckDB file") as raised:
        in_recorded_flow(orchestrator.run_build, flow_runs)

    assert "task_runner=None" in str(raised.value)  # the fix
    run, tasks, _, _ = read_back_when(
        flow_runs[0], lambda found: found[0].state_type is StateType.FAILED
    )
    assert run.state_type is StateType.FAILED
    assert tasks == []  # not one node's task run
    database = tmp_path / "demo.duckdb"  # the demo_project fixture's
    if database.exists():  # dbt may have opened it to plan; it wrote nothing
        with duckdb.connect(str(database), read_only=True) as connection:
            listed = connection.execute("select table_name from information_schema.tables")
            assert listed.fetchall() == []


# ---------------------------------------------------------------- concurrency and retries


@attrs.frozen
class SleepProject:
    """A copy of ``projects/pg_sleep`` building into ``schema`` on ``server``."""

    project: Path
    schema: str
    server: PostgresServer


@pytest.fixture
def sleepers(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SleepProject:
    schema = fresh_schema("sleepers")
    set_env(monkeypatch, postgres_server.env("PG_SLEEP", schema))
    return SleepProject(copy_project(PG_SLEEP_DIR, tmp_path / "pg_sleep"), schema, postgres_server)


def test_per_node_on_a_process_pool_runs_concurrency_nodes_at_once(
    sleepers: SleepProject,
) -> None:
    orchestrator = orchestrator_for(
        sleepers.project, execution_mode=ExecutionMode.PER_NODE, concurrency=4,
        task_runner=process_pool(4), task_tags=False,
    )  # fmt: skip
    # Long enough to outlast the spread of the four workers' start-up (each
    # spawns, imports dbt and opens its session before its first node).
    sleep = ["--vars", "{sleep_seconds: 5}"]

    results = in_flow(lambda: orchestrator.run_build(extra_cli_args=sleep))

    assert contract_statuses(results) == dict.fromkeys(PG_SLEEP_MODELS, "success")
    assert peak_overlap(node_intervals(results, PG_SLEEP_MODELS)) == 4


def test_a_dropped_connection_in_a_worker_is_retried_and_succeeds(
    faults: Faults, killer: BackendKiller
) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=ExecutionMode.PER_NODE, retries=1,
        raise_on_failure=False, task_tags=False, task_runner=process_pool(),
    )  # fmt: skip

    results = in_flow(lambda: orchestrator.run_build(select="dropped+"))

    assert killer.failure is None, killer.failure
    assert len(killer.killed) == 1, "the first attempt's backend was not terminated"
    assert contract_statuses(results) == {DROPPED: "success", AFTER_DROPPED: "success"}
    assert results[DROPPED]["retries"] == 1  # 2 attempts: the killed one, then this one
    assert "retries" not in results[AFTER_DROPPED]


def test_a_sql_error_in_a_worker_is_not_retried(faults: Faults) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=ExecutionMode.PER_NODE, retries=2,
        raise_on_failure=False, task_tags=False, task_runner=process_pool(),
    )  # fmt: skip

    results = in_flow(lambda: orchestrator.run_build(select="broken+"))

    assert contract_statuses(results) == {BROKEN: "error", AFTER_BROKEN: "skipped"}
    assert 'syntax error at or near "selec"' in results[BROKEN]["error"]["message"]
    assert results[BROKEN].get("retries", 0) == 0, "a deterministic SQL error was retried"
    assert results[AFTER_BROKEN]["failed_upstream"] == [BROKEN]


# ---------------------------------------------------------------- faults

# The build's running queries (its schema is in each of dbt's statements; dbt's
# query comment names the node).
ACTIVE = """
    select pid, client_port, query from pg_stat_activity
    where pid <> pg_backend_pid() and state = 'active' and query like %(schema)s
"""
SLEEPING = ACTIVE + " and wait_event = 'PgSleep'"  # pg_sleep's argument is evaluated
NODE_ID = re.compile(r'"node_id": "([^"]+)"')


@attrs.frozen
class Query:
    """A running query of the build: its backend, its client's port, its node."""

    backend: int
    port: int
    node: str


@contextlib.contextmanager
def connected(server: PostgresServer) -> Iterator[Any]:
    """An autocommit cursor on ``server``."""
    connection = psycopg2.connect(
        host=server.host, port=server.port, user=server.user, dbname=server.database
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def queries_of(cursor: Any, schema: str, query: str = ACTIVE) -> list[Query]:
    """The running (or sleeping) queries of ``schema``, by node."""
    cursor.execute(query, {"schema": f"%{schema}%"})
    found = [
        Query(pid, port, m.group(1) if (m := NODE_ID.search(text)) else "")
        for pid, port, text in cursor.fetchall()
    ]
    return sorted(found, key=lambda q: q.node)


def terminate(cursor: Any, queries: list[Query]) -> None:
    for query in queries:
        cursor.execute("select pg_terminate_backend(%s)", (query.backend,))


def wait_for_sleeper(cursor: Any, schema: str, ended: threading.Event) -> Query:
    """The first sleeping query of ``schema``.

    Raises:
        TimeoutError: none slept while the build ran (or in ``DEADLINE``).
    """
    deadline = time.monotonic() + DEADLINE
    while not ended.is_set() and time.monotonic() < deadline:
        if found := queries_of(cursor, schema, SLEEPING):
            return found[0]
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"no query of {schema} slept while the build ran")


def process_on_port(port: int) -> int:
    """The pid of the child (or grandchild) of this process whose TCP socket
    has local port ``port``: the worker behind a backend's ``client_port``."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a process that just ended
            if any(c.laddr and c.laddr.port == port for c in child.net_connections("tcp")):
                return int(child.pid)
    raise LookupError(f"no child process of pid {os.getpid()} has local port {port}")


@contextlib.contextmanager
def in_background(run: Callable[[threading.Event], None]) -> Iterator[None]:
    """``run(ended)`` in a thread while the block runs; ``ended`` is set after it."""
    ended = threading.Event()
    thread = threading.Thread(target=run, args=(ended,), name="fault", daemon=True)
    thread.start()
    try:
        yield
    finally:
        ended.set()
        thread.join(DEADLINE)


@attrs.define
class WorkerKiller:
    """Once the build's query sleeps: SIGKILLs the worker process behind it,
    then terminates the backend it left. With ``marker``, first creates
    pg_faults' marker: a re-run of the node does not sleep."""

    server: PostgresServer
    schema: str
    marker: bool = False
    victim: Query | None = None
    killed: int | None = None
    failure: BaseException | None = None

    def run(self, ended: threading.Event) -> None:
        try:
            with connected(self.server) as cursor:
                self.victim = wait_for_sleeper(cursor, self.schema, ended)
                if self.marker:
                    marker = sql.Identifier(self.schema, MARKER)
                    cursor.execute(sql.SQL("create table {} (id int)").format(marker))
                self.killed = process_on_port(self.victim.port)
                os.kill(self.killed, signal.SIGKILL)
                terminate(cursor, [self.victim])
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc


@attrs.define
class QueryWatch:
    """Once the build's query sleeps: calls ``then``, and waits for the build's
    queries to end. Those still running ``CANCEL_DEADLINE`` later are
    terminated (so that the build ends) and noted in ``lingered``."""

    project: SleepProject
    then: Callable[[], None] = attrs.field(default=lambda: None)
    slept: Query | None = None
    lingered: list[Query] = attrs.Factory(list)
    failure: BaseException | None = None

    def run(self, ended: threading.Event) -> None:
        try:
            with connected(self.project.server) as cursor:
                self.slept = wait_for_sleeper(cursor, self.project.schema, ended)
                self.then()
                deadline = time.monotonic() + CANCEL_DEADLINE
                while (left := queries_of(cursor, self.project.schema)) and not ended.is_set():
                    if time.monotonic() > deadline:
                        self.lingered = left
                        terminate(cursor, left)
                        return
                    time.sleep(POLL_SECONDS)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc


def test_a_pool_worker_killed_mid_node_errors_that_node_and_skips_the_others(
    sleepers: SleepProject,
) -> None:
    # Two nodes at once: Python 3.11's ProcessPoolExecutor watches only the
    # workers it had when its manager thread last woke up, so it would notice
    # the death of a worker spawned while another task ran only when that task
    # ends (in 600 s); the build watches its workers' pids itself.
    orchestrator = orchestrator_for(
        sleepers.project, execution_mode=ExecutionMode.PER_NODE, concurrency=2,
        raise_on_failure=False, task_tags=False, task_runner=process_pool(),
    )  # fmt: skip
    worker_killer = WorkerKiller(sleepers.server, sleepers.schema)
    flow_runs: list[uuid.UUID] = []

    with in_background(worker_killer.run), pytest.raises(BuildInterrupted) as raised:
        in_recorded_flow(lambda: orchestrator.run_build(extra_cli_args=LONG_SLEEP), flow_runs)

    assert worker_killer.failure is None, worker_killer.failure
    assert worker_killer.victim is not None
    assert worker_killer.killed in worker_pids(flow_runs[0])  # a worker, not a bystander
    victim, stopped = worker_killer.victim.node, raised.value
    assert set(stopped.results) == set(PG_SLEEP_MODELS)
    assert stopped.results[victim]["status"] == "error", stopped.results[victim]
    error = stopped.results[victim]["error"]
    assert isinstance(error, dict) and DIED in error["message"], error
    assert stopped.reason.startswith(POOL_DIED + victim)
    # every other node skipped, with the stop's reason
    assert stopped.unfinished == tuple(uid for uid in PG_SLEEP_MODELS if uid != victim)
    quick = ["--vars", "{sleep_seconds: 0}"]
    again = in_flow(lambda: orchestrator.run_build(extra_cli_args=quick))  # on a new pool
    assert contract_statuses(again) == dict.fromkeys(PG_SLEEP_MODELS, "success")


def test_a_pool_worker_killed_mid_wave_errors_its_node_and_stops_the_build(
    faults: Faults,
) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=ExecutionMode.PER_WAVE, raise_on_failure=False,
        task_tags=False, task_runner=process_pool(),
    )  # fmt: skip
    worker_killer = WorkerKiller(faults.server, faults.schema, marker=True)

    with in_background(worker_killer.run), pytest.raises(BuildInterrupted) as raised:
        in_flow(lambda: orchestrator.run_build(select="dropped+", extra_cli_args=LONG_SLEEP))

    assert worker_killer.failure is None, worker_killer.failure
    stopped = raised.value
    assert contract_statuses(stopped.results) == {DROPPED: "error", AFTER_DROPPED: "skipped"}
    error = stopped.results[DROPPED]["error"]
    assert isinstance(error, dict) and DIED in error["message"], error
    assert stopped.reason.startswith(POOL_DIED + DROPPED)
    assert stopped.results[AFTER_DROPPED]["failed_upstream"] == [DROPPED]
    again = in_flow(lambda: orchestrator.run_build(select="dropped+"))  # on a new pool
    assert contract_statuses(again) == {DROPPED: "success", AFTER_DROPPED: "success"}


def _dropped_ended(found: Readback) -> bool:
    runs = [t for t in found[1] if t.name in (DROPPED, AFTER_DROPPED)]
    return len(runs) >= 2 and all(t.state is not None and t.state.is_final() for t in runs)


def test_a_dask_worker_killed_mid_node_is_replaced_and_the_node_re_run_elsewhere(
    faults: Faults,
) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=ExecutionMode.PER_NODE, raise_on_failure=False,
        task_tags=False, task_runner=dask_cluster(),
    )  # fmt: skip
    worker_killer = WorkerKiller(faults.server, faults.schema, marker=True)
    flow_runs: list[uuid.UUID] = []

    with in_background(worker_killer.run):
        results = in_recorded_flow(
            lambda: orchestrator.run_build(select="dropped+", extra_cli_args=LONG_SLEEP), flow_runs
        )

    assert worker_killer.failure is None, worker_killer.failure
    # Dask's scheduler runs the task again on a live worker (its own resilience,
    # whatever `retries` says), under the same task run id: one result per node.
    assert contract_statuses(results) == {DROPPED: "success", AFTER_DROPPED: "success"}
    found = read_back_when(flow_runs[0], _dropped_ended)
    # the re-run's worker opened a session (the killed one's log line may be lost)
    assert _sessions_opened(found) - {worker_killer.killed}
    task_runs = [t for t in found[1] if t.name == DROPPED]
    assert len(task_runs) == 1, task_runs
    assert task_runs[0].state_type is StateType.COMPLETED
    again = in_flow(lambda: orchestrator.run_build(select="dropped+"))
    assert contract_statuses(again) == {DROPPED: "success", AFTER_DROPPED: "success"}


@RUNNERS
def test_stop_from_another_thread_cancels_the_queries_running_in_workers(
    make_runner: Callable[[], TaskRunner[Any]], sleepers: SleepProject
) -> None:
    orchestrator = orchestrator_for(
        sleepers.project, execution_mode=ExecutionMode.PER_NODE, concurrency=2,
        raise_on_failure=False, task_tags=False, task_runner=make_runner(),
    )  # fmt: skip
    reason = "stopped by the test"
    watch = QueryWatch(sleepers, then=lambda: orchestrator.stop(reason))

    with in_background(watch.run), pytest.raises(BuildInterrupted) as raised:
        in_flow(lambda: orchestrator.run_build(extra_cli_args=LONG_SLEEP))

    assert watch.failure is None, watch.failure
    assert watch.slept is not None
    assert watch.lingered == [], f"queries still ran {CANCEL_DEADLINE:g} s after stop()"
    stopped = raised.value
    assert stopped.reason == reason
    assert set(stopped.results) == set(PG_SLEEP_MODELS)
    assert stopped.unfinished == PG_SLEEP_MODELS  # none finished: each one skipped
    assert contract_statuses(stopped.results) == dict.fromkeys(PG_SLEEP_MODELS, "skipped")


@RUNNERS
def test_a_node_over_its_timeout_in_a_worker_is_cancelled(
    make_runner: Callable[[], TaskRunner[Any]], sleepers: SleepProject
) -> None:
    orchestrator = orchestrator_for(
        sleepers.project, execution_mode=ExecutionMode.PER_NODE, node_timeout_seconds=3,
        raise_on_failure=False, task_tags=False, task_runner=make_runner(),
    )  # fmt: skip
    watch = QueryWatch(sleepers)
    only = PG_SLEEP_MODELS[0]

    with in_background(watch.run):
        results = in_flow(
            lambda: orchestrator.run_build(select="sleep_1", extra_cli_args=LONG_SLEEP)
        )

    assert watch.failure is None, watch.failure
    assert watch.lingered == [], f"the query still ran {CANCEL_DEADLINE:g} s after its timeout"
    assert set(results) == {only}
    assert results[only]["status"] == "error"
    assert results[only]["error"]["type"] == "NodeTimeout"
    assert "timed out after 3 s" in results[only]["error"]["message"]
