"""only_fresh_sources and freshness-aware caching on real dbt-duckdb.

``projects/fresh`` reads three sources the test loads itself into DuckDB's
``raw`` schema: orders and users have freshness rules, notes has none. The
state path is the project's target dir, so each build compares with the
check the previous build recorded there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
from prefect import flow

from prefect_dbt_orchestrator import (
    ExecutionMode,
    OptionsConflictError,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
    create_freshness_aware_cache_policy,
)
from prefect_dbt_orchestrator.adapters.prefect._caching import CacheConfig
from tests.integration.conftest import copy_project

pytestmark = pytest.mark.integration

FRESH_DIR = Path(__file__).resolve().parent / "projects" / "fresh"
ORDERS, USERS, NOTES, CALENDAR, USER_ORDERS = (
    f"model.freshproj.{n}"
    for n in ("stg_orders", "stg_users", "stg_notes", "calendar", "user_orders")
)
ORDERS_TEST = "test.freshproj.not_null_stg_orders_id"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@attrs.frozen
class FreshProject:
    project_dir: Path
    database: Path

    def load(self, table: str, row_id: int, loaded_at: datetime) -> None:
        """Land one row in a source table, loaded at ``loaded_at``."""
        columns = {"orders": "user_id", "users": "name", "notes": "body"}[table]
        value = "1" if table == "orders" else f"'{table}-{row_id}'"
        with duckdb.connect(str(self.database)) as db:
            db.execute(
                f"insert into raw.{table} (id, {columns}, loaded_at) values ({row_id}, {value}, ?)",
                [loaded_at.replace(tzinfo=None)],
            )

    def orchestrator(self, mode: ExecutionMode, **options: Any) -> PrefectDbtOrchestrator:
        settings = PrefectDbtSettings(project_dir=self.project_dir, profiles_dir=self.project_dir)
        return PrefectDbtOrchestrator(
            settings=settings, execution_mode=mode, state_path=settings.target_dir,
            raise_on_failure=False, create_summary_artifact=False, **options,
        )  # fmt: skip


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FreshProject]:
    project = FreshProject(copy_project(FRESH_DIR, tmp_path / "fresh"), tmp_path / "fresh.duckdb")
    monkeypatch.setenv("FRESH_DUCKDB_PATH", str(project.database))
    with duckdb.connect(str(project.database)) as db:
        db.execute("create schema raw")
        db.execute("create table raw.orders (id int, user_id int, loaded_at timestamp)")
        db.execute("create table raw.users (id int, name text, loaded_at timestamp)")
        db.execute("create table raw.notes (id int, body text, loaded_at timestamp)")
    for table in ("orders", "users", "notes"):
        project.load(table, 1, T0)
    yield project


def _build(orchestrator: PrefectDbtOrchestrator, **run: Any) -> dict[str, Any]:
    @flow(name="source-freshness-test")
    def build() -> dict[str, Any]:
        return orchestrator.run_build(**run)

    return build()


def _short(unique_id: str) -> str:
    """A data test's id without dbt's hash suffix."""
    return unique_id.rsplit(".", 1)[0] if unique_id.startswith("test.") else unique_id


def _ran(results: dict[str, Any]) -> set[str]:
    return {_short(uid) for uid, r in results.items() if r["status"] == "success"}


def _skipped(results: dict[str, Any]) -> set[str]:
    return {_short(uid) for uid, r in results.items() if r["status"] == "skipped"}


@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_new_rows_in_one_source_run_exactly_what_reads_it(
    fresh: FreshProject, mode: ExecutionMode
) -> None:
    orchestrator = fresh.orchestrator(mode)
    first = _build(orchestrator, only_fresh_sources=True)  # no previous check: all run
    assert _skipped(first) == set() and len(_ran(first)) == 6

    fresh.load("orders", 2, T0 + timedelta(hours=1))
    planned = orchestrator.plan(only_fresh_sources=True)
    second = _build(orchestrator, only_fresh_sources=True)

    assert _skipped(second) == {USERS} == {_short(u) for u in planned.skipped_nodes}
    assert {ORDERS, ORDERS_TEST, USER_ORDERS, NOTES, CALENDAR} == _ran(second)
    assert "source.freshproj.raw.users" in second[USERS]["reason"]

    third = _build(orchestrator, only_fresh_sources=True)  # nothing new anywhere
    assert _skipped(third) == {ORDERS, ORDERS_TEST, USERS, USER_ORDERS}
    assert _ran(third) == {NOTES, CALENDAR}  # no rule, and no source: always run

    fresh.load("users", 2, T0 + timedelta(hours=2))
    fourth = _build(orchestrator, only_fresh_sources=True)
    assert _skipped(fourth) == {ORDERS, ORDERS_TEST}
    assert {USERS, USER_ORDERS} <= _ran(fourth)  # fed by both: runs when either is new


def test_plan_checks_freshness_without_moving_the_previous_state(fresh: FreshProject) -> None:
    orchestrator = fresh.orchestrator(ExecutionMode.PER_NODE)
    _build(orchestrator, only_fresh_sources=True)
    fresh.load("orders", 2, T0 + timedelta(hours=1))

    orchestrator.plan(only_fresh_sources=True)
    orchestrator.plan(only_fresh_sources=True)  # a dry run records nothing
    results = _build(orchestrator, only_fresh_sources=True)

    assert ORDERS in _ran(results) and _skipped(results) == {USERS}


def test_only_fresh_sources_without_a_state_path_is_a_clear_error(fresh: FreshProject) -> None:
    settings = PrefectDbtSettings(project_dir=fresh.project_dir, profiles_dir=fresh.project_dir)
    orchestrator = PrefectDbtOrchestrator(settings=settings)

    with pytest.raises(OptionsConflictError, match="state_path"):
        orchestrator.run_build(only_fresh_sources=True)


def test_a_freshness_aware_cache_misses_only_what_reads_a_source_with_new_rows(
    fresh: FreshProject, tmp_path: Path
) -> None:
    orchestrator = fresh.orchestrator(
        ExecutionMode.PER_NODE,
        cache=CacheConfig(key_storage=tmp_path / "cache"),
        cache_policy_factory=create_freshness_aware_cache_policy,
    )
    _build(orchestrator)
    fresh.load("users", 2, T0 + timedelta(hours=3))

    planned = orchestrator.plan()
    results = _build(orchestrator)

    assert planned.cache_reasons[USERS] == "source data changed"
    assert planned.cache_reasons[USER_ORDERS] == f"upstream {USERS} changed"
    cached = {uid for uid, r in results.items() if r["status"] == "cached"}
    assert (
        cached
        == {ORDERS, NOTES, CALENDAR}
        == {uid for uid, kind in (planned.cache_predictions or {}).items() if kind == "hit"}
    )
