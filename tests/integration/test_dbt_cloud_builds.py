"""The seed's dbt Cloud examples, run as written against the local dbt Cloud
API server (tests/dbt_cloud_api, real dbt behind it): their statuses equal a
local ``dbt build`` of the same project; a build killed mid-way leaves jobs
that the next build deletes (their runs cancelled); the token shows in no
output of a failing run; the cache sees dbt Cloud's warehouse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists
from pydantic import SecretStr

from prefect_dbt_orchestrator import (
    CacheConfig,
    DbtCloudCredentials,
    DbtCloudExecutor,
    ExecutionMode,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
    TestStrategy,
)
from tests.dbt_cloud_api import DbtCloudServer, RunStatus
from tests.integration.conftest import PlainDemoBuild, as_contract, contract_statuses
from tests.integration.test_dbt_cloud_executor import (
    ACCOUNT,
    FAIL_VARS,
    PREFIX,
    TOKEN,
    cloud,  # noqa: F401  # the fixture
    executor_for,
)
from tests.integration.test_failures_visible import _in_flow_state, read_back_when
from tests.integration.test_orchestrator_builds import in_flow, orchestrator_for

pytestmark = pytest.mark.integration

POLL = 0.2  # seconds; the examples' default of 10 would make each run last 10 s here


def production_job(server: DbtCloudServer) -> int:
    """A job like a team's production job: one successful ``dbt compile`` run,
    whose manifest ``defer_to_job_id`` fetches. Made over the API itself."""
    headers = {"Authorization": f"Token {TOKEN}"}
    root = f"{server.base_url}/api/v2/accounts/{ACCOUNT}/"
    with httpx.Client(base_url=root, headers=headers, timeout=60) as api:
        body = {"name": "production", "project_id": 1, "environment_id": 2,
                "execute_steps": ["dbt compile"]}  # fmt: skip
        job_id = int(api.post("jobs/", json=body).json()["data"]["id"])
        run_id = int(
            api.post(f"jobs/{job_id}/run/", json={"cause": "nightly"}).json()["data"]["id"]
        )
        deadline = time.monotonic() + 600
        while server.run_status(run_id) not in (RunStatus.SUCCESS, RunStatus.ERROR):
            assert time.monotonic() < deadline, "the production job never ended"
            time.sleep(0.2)
    assert server.run_status(run_id) == RunStatus.SUCCESS
    return job_id


def prefixed(server: DbtCloudServer, prefix: str = PREFIX) -> list[dict[str, Any]]:
    return [job for job in server.jobs() if job["name"].startswith(f"{prefix}-")]


def saved_block(server: DbtCloudServer, name: str) -> None:
    DbtCloudCredentials(
        api_key=SecretStr(TOKEN), account_id=ACCOUNT, base_url=server.base_url
    ).save(name, overwrite=True)


def gcl(name: str, slots: int) -> None:
    """A global concurrency limit on the session's Prefect server (kept if there)."""

    async def create() -> None:
        async with get_client() as client:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots)
                )

    anyio.run(create)


def test_seed_example_5_runs_as_written_without_a_local_project(
    cloud: DbtCloudServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plain_demo_build: PlainDemoBuild,
) -> None:
    """000's example 5: the block loaded by name, the manifest deferred to a
    production job, a named concurrency limit, no settings at all: the flow
    runs in an empty folder (no dbt project), as on a Prefect worker."""
    empty = tmp_path / "flow-folder"
    empty.mkdir()
    monkeypatch.chdir(empty)
    saved_block(cloud, "my-dbt-cloud")
    gcl("dbt-cloud-slots", 2)
    production = production_job(cloud)

    def run_dbt_cloud() -> dict[str, dict[str, Any]]:
        credentials = DbtCloudCredentials.load("my-dbt-cloud")
        cloud_executor = DbtCloudExecutor(
            credentials=credentials,
            project_id=12345,
            environment_id=67890,
            job_name_prefix="prefect-ci",
            defer_to_job_id=production,
            poll_frequency_seconds=POLL,
        )
        orchestrator = PrefectDbtOrchestrator(
            executor=cloud_executor,
            concurrency_limit_name="dbt-cloud-slots",
            test_strategy=TestStrategy.IMMEDIATE,
        )
        return orchestrator.run_build()

    results = in_flow(run_dbt_cloud)

    assert contract_statuses(results) == as_contract(plain_demo_build())
    assert prefixed(cloud, "prefect-ci") == []
    assert [job["id"] for job in cloud.jobs()] == [production]
    compiles = [r for r in cloud.requests if r.method == "POST" and b"dbt compile" in r.body]
    assert len(compiles) == 1, "the manifest came from the production job, not a compile job"
    assert list(empty.iterdir()) == []  # no local project read or written


@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_the_quick_start_of_002_gets_plain_dbts_statuses(
    cloud: DbtCloudServer,  # noqa: F811
    demo_project: Path,
    plain_demo_build: PlainDemoBuild,
    mode: ExecutionMode,
) -> None:
    """002's dbt Cloud quick start, with its settings pointing at a local
    checkout: ``tag:daily`` on an empty warehouse has 3 seeds that load, a
    snapshot and a mart that fail (their upstream views were never built)
    and 10 nodes skipped, as plain ``dbt build --select tag:daily``."""
    saved_block(cloud, "my-dbt-cloud-creds")
    production = production_job(cloud)

    def run_dbt_cloud_build() -> dict[str, dict[str, Any]]:
        credentials = DbtCloudCredentials.load("my-dbt-cloud-creds")
        executor = DbtCloudExecutor(
            credentials=credentials,
            project_id=123456,
            environment_id=654321,
            defer_to_job_id=production,
            poll_frequency_seconds=POLL,
        )
        orchestrator = PrefectDbtOrchestrator(
            executor=executor,
            settings=PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project),
            execution_mode=mode,
            concurrency=4,
            retries=2,
            retry_delay_seconds=30,
            raise_on_failure=False,  # the seed's flow raises DbtBuildFailed here
        )
        return orchestrator.run_build(select="tag:daily")

    results = in_flow(run_dbt_cloud_build)

    expected = as_contract(plain_demo_build("--select", "tag:daily"))
    assert contract_statuses(results) == expected
    assert sorted(expected.values()).count("skipped") == 10
    assert prefixed(cloud) == []
    # deterministic SQL errors are not retried: one run per executed node or wave
    triggers = [r for r in cloud.requests if r.method == "POST" and r.path.endswith("/run/")]
    ran = sum(1 for r in results.values() if r["status"] != "skipped")
    if mode is ExecutionMode.PER_NODE:
        assert len(triggers) == 1 + ran  # the production run, then one per node
    else:
        assert len(triggers) < 1 + ran


KILLED_BUILD = """
import sys
from prefect import flow
from prefect_dbt_orchestrator import DbtCloudExecutor, ExecutionMode, PrefectDbtOrchestrator
from prefect_dbt_orchestrator import PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials

base_url, token, project, reuse, production = sys.argv[1:6]

@flow
def doomed():
    credentials = DbtCloudCredentials(api_key=token, account_id=11, base_url=base_url)
    executor = DbtCloudExecutor(credentials, 1, 2, poll_frequency_seconds=0.2,
                                reuse_jobs=reuse == "reuse", defer_to_job_id=int(production))
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    orchestrator = PrefectDbtOrchestrator(settings=settings, executor=executor,
                                          execution_mode=ExecutionMode.PER_NODE, concurrency=2)
    orchestrator.run_build(select="path:seeds", extra_cli_args=["--vars", "{doomed: 1}"])

if __name__ == "__main__":
    doomed()
"""


# The job pool's case: its orphans are named as one-off jobs are, and
# tests/unit/test_dbt_cloud_jobs.py covers both kinds (CI time).
@pytest.mark.parametrize("reuse", [True], ids=["reuse-jobs"])
def test_a_build_killed_mid_way_leaves_jobs_the_next_build_deletes(
    cloud: DbtCloudServer,  # noqa: F811
    demo_project: Path,
    tmp_path: Path,
    prefect_api_url: str,
    plain_demo_build: PlainDemoBuild,
    reuse: bool,
) -> None:
    """SIGKILL to a build whose runs hang in dbt Cloud: its jobs stay, named
    for its pid. The next build (same host) cancels their runs and deletes
    them before it starts, then builds; after it, no job has the prefix."""
    cloud.hang_runs("doomed")
    production = production_job(cloud)
    script = tmp_path / "doomed.py"
    script.write_text(KILLED_BUILD)
    argv = [cloud.base_url, TOKEN, str(demo_project), "reuse" if reuse else "fresh"]
    argv.append(str(production))
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    with subprocess.Popen(
        [sys.executable, str(script), *argv], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ) as doomed:  # fmt: skip
        deadline = time.monotonic() + 600
        while not any(s == RunStatus.RUNNING for s in _in_progress(cloud).values()):
            assert doomed.poll() is None, "the build ended before its runs hung"
            assert time.monotonic() < deadline, "no run of the build started"
            time.sleep(0.2)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    left = prefixed(cloud)
    hung = list(_in_progress(cloud))
    assert left and all(f"-{doomed.pid}-" in job["name"] for job in left)

    orchestrator = orchestrator_for(
        demo_project, executor=executor_for(cloud), execution_mode=ExecutionMode.PER_NODE,
        concurrency=2, raise_on_failure=False,
    )  # fmt: skip
    results = in_flow(lambda: orchestrator.run_build(select="path:seeds"))

    assert contract_statuses(results) == as_contract(plain_demo_build("--select", "path:seeds"))
    assert prefixed(cloud) == []
    assert all(cloud.run_status(run_id) == RunStatus.CANCELLED for run_id in hung)


def _in_progress(server: DbtCloudServer) -> dict[int, int]:
    """The runs queued, starting or running: id -> status."""
    headers = {"Authorization": f"Token {TOKEN}"}
    url = f"{server.base_url}/api/v2/accounts/{ACCOUNT}/runs/"
    runs = httpx.get(url, headers=headers, params={"status__in": "[1,2,3]"}, timeout=60)
    return {int(run["id"]): int(run["status"]) for run in runs.json()["data"]}


def test_the_token_shows_in_no_output_of_a_failing_run(
    cloud: DbtCloudServer,  # noqa: F811
    demo_project: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The failing demo, PER_NODE, with run_results.json and the summary
    written, and an API error echoing the Authorization header on the way:
    the token is in none of the results, the files of the target dir, the
    Prefect flow run, task runs, artifacts and logs, the printed output and
    the log records, nor the errors' text."""
    caplog.set_level("DEBUG")
    orchestrator = orchestrator_for(
        demo_project, executor=executor_for(cloud), execution_mode=ExecutionMode.PER_NODE,
        concurrency=4, write_run_results=True, raise_on_failure=True,
    )  # fmt: skip
    errors: list[BaseException] = []

    def build() -> object:
        try:
            return orchestrator.run_build(select="+fct_rides+", extra_cli_args=list(FAIL_VARS))
        except Exception as exc:  # DbtBuildFailed, read below
            errors.append(exc)
            return None

    cloud.echo_auth_next()
    flow_run_id = _in_flow_state(build)
    run, tasks, artifacts, logs = read_back_when(flow_run_id, lambda found: bool(found[1]))

    assert errors and type(errors[0]).__name__ == "DbtBuildFailed"
    assert cloud.injected, "the echoing answer was never sent"
    outputs = {
        "error": f"{errors[0]!s} {errors[0]!r} {json.dumps(errors[0].results, default=str)}",  # type: ignore[attr-defined]
        "flow run": run.model_dump_json(),
        "task runs": json.dumps([t.model_dump(mode="json") for t in tasks]),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "logs": json.dumps([log.model_dump(mode="json") for log in logs]),
        "log records": "\n".join(r.getMessage() for r in caplog.records),
        "printed": "".join(capfd.readouterr()),
        "repr": repr(orchestrator) + repr(orchestrator.executor),
    }
    for path in (demo_project / "target").rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    assert "run_results.json" in " ".join(outputs)
    assert len(logs) > 5 and len(tasks) > 5 and artifacts
    leaked = [where for where, text in outputs.items() if TOKEN in text]
    assert leaked == []


def test_the_cache_sees_dbt_clouds_warehouse(
    cloud: DbtCloudServer,  # noqa: F811
    demo_project: Path,
    tmp_path: Path,
) -> None:
    """Caching through dbt Cloud: the second build of the seeds and staging
    views is served from the cache (their tests run: tests are never cached
    by default), after one catalog job per build tells which relations
    exist; a relation dropped in the warehouse meanwhile is rebuilt, the
    rest still served."""
    cache = CacheConfig(key_storage=tmp_path / "cache")

    def build() -> dict[str, dict[str, Any]]:
        orchestrator = orchestrator_for(
            demo_project, executor=executor_for(cloud), execution_mode=ExecutionMode.PER_WAVE,
            cache=cache,
        )  # fmt: skip
        return in_flow(lambda: orchestrator.run_build(select="path:seeds path:models/staging"))

    first = build()
    second = build()
    with duckdb.connect(str(tmp_path / "cloud-demo.duckdb")) as warehouse:
        warehouse.execute("drop view main.stg_rides")
    third = build()

    assert {r["status"] for r in first.values()} == {"success"}
    relations = [uid for uid in second if not uid.startswith("test.")]
    assert relations and {second[uid]["status"] for uid in relations} == {"cached"}
    assert {r["status"] for uid, r in second.items() if uid not in relations} == {"success"}
    assert third["model.demo.stg_rides"]["status"] == "success"
    assert third["seed.demo.raw_rides"]["status"] == "cached"
    assert third["model.demo.stg_bikes"]["status"] == "cached"
    catalog_jobs = [r for r in cloud.requests if r.method == "POST" and b"docs generate" in r.body]
    assert len(catalog_jobs) == 3
    assert prefixed(cloud) == []
