"""Workers of a process pool keep a true picture of the warehouse between builds.

``projects/pg_cascade``: two root tables that each hold a worker for a moment
(so both workers of the pool open their dbt session first), a table ``base``
on them and eight views on ``base``. Building it again rebuilds ``base``, and
PostgreSQL drops its views with the old table (``drop ... cascade``). Only the
worker that rebuilt ``base`` saw that happen; the views that run on the other
worker must not be taken for still existing (dbt would rename a view that is
gone: "relation ... does not exist"). The second build must succeed as the
first did, and as plain ``dbt build`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.task_runners import ProcessPoolTaskRunner

from prefect_dbt_orchestrator import ExecutionMode
from tests.integration.conftest import contract_statuses, copy_project
from tests.integration.postgres import (
    PostgresServer,
    fresh_schema,
    postgres_server_fixture,  # noqa: F401  (the session fixture postgres_server)
)
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

PG_CASCADE_DIR = Path(__file__).resolve().parent / "projects" / "pg_cascade"
VIEWS = tuple(f"model.pg_cascade.view_{index}" for index in range(1, 9))
NODES = ("model.pg_cascade.root_a", "model.pg_cascade.root_b", "model.pg_cascade.base", *VIEWS)


def test_a_rebuild_on_a_process_pool_recreates_the_views_postgres_dropped(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_project(PG_CASCADE_DIR, tmp_path / "pg_cascade")
    for name, value in postgres_server.env("PG_CASCADE", fresh_schema("cascade")).items():
        monkeypatch.setenv(name, value)

    def build() -> dict[str, str]:
        orchestrator = orchestrator_for(
            project,
            execution_mode=ExecutionMode.PER_NODE,
            concurrency=2,
            task_runner=ProcessPoolTaskRunner(max_workers=2),
            raise_on_failure=False,
        )
        return contract_statuses(in_flow(orchestrator.run_build))

    first = build()
    again = build()

    assert first == dict.fromkeys(NODES, "success")
    assert again == dict.fromkeys(NODES, "success")
