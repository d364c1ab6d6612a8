"""DbtCloudExecutor against the local dbt Cloud API server (tests/dbt_cloud_api),
which runs real dbt Core on a copy of the demo behind the v2 API.

The failing demo (``fail_model`` on) built through ephemeral dbt Cloud jobs
gives every node the status a local ``dbt build`` gives it; no job is left
behind; the token appears in no result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_dbt_orchestrator import ExecutionMode
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials
from prefect_dbt_orchestrator.adapters.dbt_cloud.executor import DbtCloudExecutor
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
    credentials = DbtCloudCredentials(api_key=TOKEN, account_id=ACCOUNT, base_url=server.base_url)
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
