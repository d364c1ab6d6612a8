"""The orchestrator on a real multi-writer warehouse: PostgreSQL from ``scripts/postgres``.

* The demo project (``--target postgres``) with ``fail_model`` on gives every
  node, in both modes, the status plain ``dbt build --target postgres`` gives.
* ``projects/pg_sleep`` (six independent models, each holding a connection for a
  while) shows in its recorded node timings that PER_NODE runs exactly
  ``concurrency`` nodes at once, and that a Prefect global concurrency limit
  shared by two flow runs in two processes caps both together.

Overlap is counted from each result's ``timing``; nothing asserts on wall time.
Every build writes into a schema of its own on the session's server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from prefect_dbt_orchestrator import ExecutionMode
from tests.integration.conftest import (
    DEMO_DIR,
    DEMO_NODE_COUNT,
    REPO,
    PlainDbt,
    as_contract,
    contract_statuses,
    copy_project,
)
from tests.integration.postgres import (
    PG_SLEEP_DIR,
    PG_SLEEP_MODELS,
    PostgresServer,
    fresh_schema,
    moment,
    node_intervals,
    peak_overlap,
    postgres_server_fixture,  # noqa: F401  (the session fixture postgres_server)
)
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

FAIL_VARS = ["--vars", "{fail_model: true}"]
WORKER_DEADLINE = 900  # seconds for one limited-build process (a slow machine)


# ---------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def plain_postgres_failing_build(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Plain ``dbt build --target postgres`` of the demo with ``fail_model`` on."""
    plain = PlainDbt(tmp_path_factory.mktemp("plain-postgres"))
    env = postgres_server.env("DEMO_PG", fresh_schema("plain"))
    return plain.build(DEMO_DIR, "--target", "postgres", *FAIL_VARS, env=env)


@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_a_failing_model_on_postgres_errors_and_skips_what_plain_dbt_build_does(
    mode: ExecutionMode,
    demo_project: Path,
    postgres_server: PostgresServer,
    plain_postgres_failing_build: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in postgres_server.env("DEMO_PG", fresh_schema(mode.name.lower())).items():
        monkeypatch.setenv(name, value)
    orchestrator = orchestrator_for(
        demo_project, execution_mode=mode, raise_on_failure=False, task_tags=False
    )

    results = in_flow(lambda: orchestrator.run_build(target="postgres", extra_cli_args=FAIL_VARS))

    assert len(results) == DEMO_NODE_COUNT
    assert contract_statuses(results) == as_contract(plain_postgres_failing_build)
    assert {uid for uid, r in results.items() if r["status"] == "error"} == {FAILING_MODEL}
    skipped = {uid for uid, r in results.items() if r["status"] == "skipped"}
    assert skipped == SKIPPED_WHEN_FCT_RIDES_FAILS
    message = results[FAILING_MODEL]["error"]["message"]
    assert 'relation "a_table_that_does_not_exist" does not exist' in message  # PostgreSQL's words


# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize(("concurrency", "sleep_seconds"), [(4, 2.0), (1, 0.5)])
def test_per_node_runs_exactly_concurrency_nodes_at_once_on_postgres(
    concurrency: int,
    sleep_seconds: float,
    postgres_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = copy_project(PG_SLEEP_DIR, tmp_path / "pg_sleep")
    for name, value in postgres_server.env("PG_SLEEP", fresh_schema("sleep")).items():
        monkeypatch.setenv(name, value)
    orchestrator = orchestrator_for(
        project, execution_mode=ExecutionMode.PER_NODE, concurrency=concurrency, task_tags=False
    )
    sleep = ["--vars", f"{{sleep_seconds: {sleep_seconds}}}"]

    results = in_flow(lambda: orchestrator.run_build(extra_cli_args=sleep))

    assert contract_statuses(results) == dict.fromkeys(PG_SLEEP_MODELS, "success")
    assert peak_overlap(node_intervals(results, PG_SLEEP_MODELS)) == concurrency


def _create_limit(slots: int) -> str:
    name = f"warehouse-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        async with get_client() as client:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=slots)
            )

    anyio.run(create)
    return name


def test_a_global_limit_caps_two_flow_runs_in_two_processes_together(
    postgres_server: PostgresServer, prefect_api_url: str, tmp_path: Path
) -> None:
    limit = _create_limit(2)
    workers = {}
    for run in ("first", "second"):
        project = copy_project(PG_SLEEP_DIR, tmp_path / run)
        env = os.environ | postgres_server.env("PG_SLEEP", fresh_schema(run))
        env["PREFECT_API_URL"] = prefect_api_url
        command = [
            sys.executable, "-m", "tests.integration.postgres", "limited-build",
            "--project", str(project), "--limit", limit, "--out", str(tmp_path / f"{run}.json"),
            "--barrier", str(tmp_path / "barrier"), "--parties", "2", "--sleep", "1",
        ]  # fmt: skip
        workers[run] = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    for run, worker in workers.items():
        output, _ = worker.communicate(timeout=WORKER_DEADLINE)
        assert worker.returncode == 0, f"{run} worker:\n{output[-4000:]}"

    records = {run: json.loads((tmp_path / f"{run}.json").read_text()) for run in workers}
    runs = {run: record["results"] for run, record in records.items()}
    for results in runs.values():
        assert contract_statuses(results) == dict.fromkeys(PG_SLEEP_MODELS, "success")
    spans = {run: node_intervals(results, PG_SLEEP_MODELS) for run, results in runs.items()}
    # Never more than the limit's 2 slots across both runs; each run alone would
    # start all 6 nodes at once (a limit name sets no thread count).
    assert peak_overlap(spans["first"] + spans["second"]) == 2
    # Both builds were under way together: each began before the other's last node
    # ended, so the other's slots held it back. (Prefect grants slots in no fair
    # order: one run may well get both slots until it is done.)
    for run, other in (("first", "second"), ("second", "first")):
        last_end = max(end for _, end in spans[other])
        assert moment(records[run]["began_at"]) < last_end, (run, records[run]["began_at"])
