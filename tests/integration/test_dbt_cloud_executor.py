"""DbtCloudExecutor against the local dbt Cloud API server (tests/dbt_cloud_api),
which runs real dbt Core on a copy of the demo behind the v2 API.

The failing demo (``fail_model`` on) built through ephemeral dbt Cloud jobs
gives every node the status a local ``dbt build`` gives it; no job is left
behind; the token appears in no result.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_dbt_orchestrator import DbtCloudCredentials, DbtCloudExecutor, ExecutionMode
from prefect_dbt_orchestrator.adapters.dbt_cloud._client import cool_down_for
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import (
    DbtCloudCredentials as PlainCredentials,
)
from tests.dbt_cloud_api import DbtCloudServer
from tests.integration.conftest import (
    DEMO_NODE_COUNT,
    PlainDemoBuild,
    as_contract,
    contract_statuses,
)
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

ACCOUNT, TOKEN = 11, "dbtc_executor_test_token_93b1"
PREFIX = "prefect-orchestrator"
FAIL_VARS = ("--vars", "{fail_model: true}")


@pytest.fixture
def cloud(demo_project: Path, tmp_path: Path) -> Iterator[DbtCloudServer]:
    env = {"DEMO_DUCKDB_PATH": str(tmp_path / "cloud-demo.duckdb")}
    server = DbtCloudServer(
        account_id=ACCOUNT, token=TOKEN, project_dir=demo_project, profiles_dir=demo_project,
        work_dir=tmp_path / "cloud", env=env,
    )  # fmt: skip
    with server:
        yield server


def executor_for(server: DbtCloudServer) -> DbtCloudExecutor:
    credentials = PlainCredentials(api_key=TOKEN, account_id=ACCOUNT, base_url=server.base_url)
    return DbtCloudExecutor(credentials, project_id=1, environment_id=2, poll_frequency_seconds=0.2)


def test_the_failing_demo_through_dbt_cloud_jobs_gets_plain_dbts_statuses(
    cloud: DbtCloudServer, demo_project: Path, plain_demo_build: PlainDemoBuild
) -> None:
    orchestrator = orchestrator_for(
        demo_project, executor=executor_for(cloud), execution_mode=ExecutionMode.PER_WAVE,
        raise_on_failure=False,
    )  # fmt: skip

    results = in_flow(lambda: orchestrator.run_build(extra_cli_args=list(FAIL_VARS)))

    assert len(results) == DEMO_NODE_COUNT
    assert contract_statuses(results) == as_contract(plain_demo_build(*FAIL_VARS))
    assert [job for job in cloud.jobs() if job["name"].startswith(PREFIX)] == []
    assert TOKEN not in json.dumps(results, default=str)
    assert TOKEN not in repr(orchestrator.executor)


def test_a_429_burst_mid_build_is_one_cool_down_and_the_build_completes(
    cloud: DbtCloudServer, demo_project: Path, plain_demo_build: PlainDemoBuild
) -> None:
    """PER_NODE with concurrency 4 (several nodes polling at once): once a job
    exists, the server rate-limits the account for 2 s (every call gets 429
    with Retry-After). The account's one cool-down holds every caller: one
    pause, and no request reaches the server after the last 429 before the
    pause ends."""
    executor = executor_for(cloud)
    orchestrator = orchestrator_for(
        demo_project, executor=executor, execution_mode=ExecutionMode.PER_NODE, concurrency=4,
        raise_on_failure=False,
    )  # fmt: skip

    def burst_once_running() -> None:
        deadline = time.monotonic() + 600
        while not cloud.jobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        cloud.rate_limit(2)

    burst = threading.Thread(target=burst_once_running, daemon=True)
    burst.start()
    # the three seeds: independent, so three nodes poll their runs at once
    results = in_flow(lambda: orchestrator.run_build(select="path:seeds"))
    burst.join(60)

    assert contract_statuses(results) == as_contract(plain_demo_build("--select", "path:seeds"))
    assert len(results) == 3
    cool_down = cool_down_for(executor.credentials)
    assert cloud.injected, "no request met the rate limit"
    assert cool_down.pauses == 1
    last_429 = cloud.injected[-1].at
    after = [r.at for r in cloud.requests if r.at > last_429]
    assert after, "the build made no request after the burst"
    assert min(after) >= cool_down.until
    assert [job for job in cloud.jobs() if job["name"].startswith(PREFIX)] == []


def test_the_block_saved_on_prefect_loads_and_drives_the_executor(
    cloud: DbtCloudServer,
) -> None:
    block = DbtCloudCredentials(
        api_key=SecretStr(TOKEN), account_id=ACCOUNT, base_url=cloud.base_url
    )
    name = f"cloud-{uuid.uuid4().hex[:8]}"
    block.save(name)

    loaded = DbtCloudCredentials.load(name)
    executor = DbtCloudExecutor(loaded, project_id=1, environment_id=2)

    assert executor.credentials.api_key == TOKEN
    assert TOKEN not in repr(loaded) and TOKEN not in repr(executor)
    try:
        assert executor.delete_orphans() == []  # a real call, authorized with the token
    finally:
        executor.close()
    assert cloud.requests[-1].headers["authorization"] == f"Token {TOKEN}"
