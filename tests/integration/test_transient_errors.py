"""Retries on PostgreSQL: a dropped connection is retried, a SQL error is not.

``projects/pg_faults``: ``dropped`` sleeps (``pg_sleep``) for as long as the
table ``backend_terminated`` is missing from the build's schema. A thread here
waits until that query is sleeping (``pg_stat_activity``), creates the table,
then terminates the query's backend (``pg_terminate_backend``): the first
attempt fails with libpq's "server closed the connection unexpectedly" and the
second one does not sleep. ``broken`` is a SQL syntax error. Each model has
one child. Both modes; nothing asserts on wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg2  # type: ignore[import-untyped]  # dbt-postgres's driver; ships no types
import pytest
from psycopg2 import sql

from prefect_dbt_orchestrator import ExecutionMode
from tests.integration.conftest import copy_project
from tests.integration.postgres import (
    PostgresServer,
    fresh_schema,
    postgres_server_fixture,  # noqa: F401  (the session fixture postgres_server)
)
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

PG_FAULTS_DIR = Path(__file__).resolve().parent / "projects" / "pg_faults"
DROPPED = "model.pg_faults.dropped"
AFTER_DROPPED = "model.pg_faults.after_dropped"
BROKEN = "model.pg_faults.broken"
AFTER_BROKEN = "model.pg_faults.after_broken"
MARKER = "backend_terminated"  # the project's var killed_marker
KILL_DEADLINE = 600.0  # seconds to wait for the sleeping query: dbt parses first
POLL_SECONDS = 0.05
MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])

# The build's own sleeping query (its schema is in dbt's CREATE TABLE), while
# it sleeps: pg_sleep's argument, the marker check, has been evaluated.
SLEEPING = """
    select pid from pg_stat_activity
    where pid <> pg_backend_pid() and state = 'active' and wait_event = 'PgSleep'
      and query like '%%pg_sleep%%' and query like %(schema)s
"""


@attrs.frozen
class Faults:
    """A copy of ``projects/pg_faults`` building into ``schema`` on ``server``."""

    project: Path
    schema: str
    server: PostgresServer


@pytest.fixture
def faults(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Faults:
    schema = fresh_schema("faults")
    for name, value in postgres_server.env("PG_FAULTS", schema).items():
        monkeypatch.setenv(name, value)
    return Faults(copy_project(PG_FAULTS_DIR, tmp_path / "pg_faults"), schema, postgres_server)


@attrs.define
class BackendKiller:
    """Once the build's query sleeps: creates the marker, then terminates its backend."""

    faults: Faults
    killed: list[int] = attrs.Factory(list)
    failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._kill_once()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc

    def _kill_once(self) -> None:
        server = self.faults.server
        connection = psycopg2.connect(
            host=server.host, port=server.port, user=server.user, dbname=server.database
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                pids = self._wait_for_sleeper(cursor)
                marker = sql.Identifier(self.faults.schema, MARKER)
                cursor.execute(sql.SQL("create table {} (id int)").format(marker))
                for pid in pids:
                    cursor.execute("select pg_terminate_backend(%s)", (pid,))
                    self.killed.append(pid)
        finally:
            connection.close()

    def _wait_for_sleeper(self, cursor: Any) -> list[int]:
        deadline = time.monotonic() + KILL_DEADLINE
        while time.monotonic() < deadline:
            cursor.execute(SLEEPING, {"schema": f"%{self.faults.schema}%"})
            pids = [row[0] for row in cursor.fetchall()]
            if pids:
                return pids
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"no sleeping query of {self.faults.schema} in {KILL_DEADLINE:g} s")


@pytest.fixture
def killer(faults: Faults) -> Iterator[BackendKiller]:
    """A BackendKiller running in a thread for the test's build."""
    killer = BackendKiller(faults)
    thread = threading.Thread(target=killer.run, name="pg-backend-killer", daemon=True)
    thread.start()
    yield killer
    thread.join(KILL_DEADLINE)


@MODES
def test_a_model_whose_connection_is_dropped_mid_query_succeeds_on_its_retry(
    mode: ExecutionMode, faults: Faults, killer: BackendKiller
) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=mode, retries=1, raise_on_failure=False, task_tags=False
    )

    results = in_flow(lambda: orchestrator.run_build(select="dropped+"))

    assert killer.failure is None, killer.failure
    assert len(killer.killed) == 1, "the first attempt's backend was not terminated"
    assert set(results) == {DROPPED, AFTER_DROPPED}
    assert results[DROPPED]["status"] == "success", results[DROPPED]
    assert results[DROPPED]["retries"] == 1  # 2 attempts: the killed one, then this one
    assert results[AFTER_DROPPED]["status"] == "success", results[AFTER_DROPPED]
    assert "retries" not in results[AFTER_DROPPED]


@MODES
def test_a_model_with_a_sql_error_is_not_retried_and_its_child_is_skipped(
    mode: ExecutionMode, faults: Faults
) -> None:
    orchestrator = orchestrator_for(
        faults.project, execution_mode=mode, retries=2, raise_on_failure=False, task_tags=False
    )

    results = in_flow(lambda: orchestrator.run_build(select="broken+"))

    assert set(results) == {BROKEN, AFTER_BROKEN}
    broken = results[BROKEN]
    assert broken["status"] == "error", broken
    assert 'syntax error at or near "selec"' in broken["error"]["message"]  # PostgreSQL's words
    assert broken.get("retries", 0) == 0, "a deterministic SQL error was retried"
    assert results[AFTER_BROKEN]["status"] == "skipped"
    assert results[AFTER_BROKEN]["failed_upstream"] == [BROKEN]
