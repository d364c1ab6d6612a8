"""The local dbt Cloud API server itself: auth, jobs, runs of real dbt, faults.

Few and small dbt runs (a seed, one model); each test has its own DuckDB file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dbt_cloud_api import DbtCloudServer, RunStatus
from tests.integration.conftest import SlowProject

pytestmark = pytest.mark.integration

ACCOUNT, TOKEN = 7, "dbtc_test_token_4f2a"


def _server(project: Path, tmp_path: Path, env: dict[str, str]) -> DbtCloudServer:
    return DbtCloudServer(
        account_id=ACCOUNT, token=TOKEN, project_dir=project, profiles_dir=project,
        work_dir=tmp_path / "cloud", env=env,
    )  # fmt: skip


@pytest.fixture
def cloud(demo_project: Path, tmp_path: Path) -> Iterator[DbtCloudServer]:
    env = {"DEMO_DUCKDB_PATH": str(tmp_path / "demo.duckdb")}
    with _server(demo_project, tmp_path, env) as server:
        yield server


def _client(server: DbtCloudServer, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Token {token}"} if token else {}
    base = f"{server.base_url}/api/v2/accounts/{ACCOUNT}/"
    return httpx.Client(base_url=base, headers=headers, timeout=30)


@pytest.fixture
def api(cloud: DbtCloudServer) -> Iterator[httpx.Client]:
    with _client(cloud) as client:
        yield client


def _create_job(api: httpx.Client, name: str, *steps: str) -> dict[str, Any]:
    body = {
        "account_id": ACCOUNT, "project_id": 1, "environment_id": 2, "name": name,
        "execute_steps": list(steps), "job_type": "other",
        "triggers": {"github_webhook": False, "schedule": False},
        "settings": {"threads": 4, "target_name": "dev"},
    }  # fmt: skip
    response = api.post("jobs/", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()["data"]
    return job


def _trigger(api: httpx.Client, job_id: int) -> dict[str, Any]:
    response = api.post(f"jobs/{job_id}/run/", json={"cause": "test"})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


def _wait(
    api: httpx.Client, run_id: int, *, until: set[int], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.get(f"runs/{run_id}/").json()["data"]
        if run["status"] in until or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


DONE = {10, 20, 30}


def test_requests_without_the_right_token_or_account_are_refused(cloud: DbtCloudServer) -> None:
    refused = {"code": 401, "is_success": False, "user_message": "Invalid token"}
    for token in (None, "wrong"):
        with _client(cloud, token) as client:
            response = client.get("jobs/")
        assert response.status_code == 401
        assert response.json()["status"].items() >= refused.items()
        assert response.json()["data"] is None
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        other = client.get(f"{cloud.base_url}/api/v2/accounts/{ACCOUNT + 1}/jobs/")
    assert other.status_code == 404 and other.json()["status"]["is_success"] is False
    assert cloud.requests[0].headers.get("authorization") is None
    assert cloud.requests[1].headers["authorization"] == "Token wrong"


def test_a_job_runs_real_dbt_and_serves_its_run_results(
    cloud: DbtCloudServer, api: httpx.Client
) -> None:
    job = _create_job(api, "pdo-test-seed", "dbt seed --select raw_bikes")
    assert job["id"] and job["execute_steps"] == ["dbt seed --select raw_bikes"]
    assert api.get("runs/1/artifacts/run_results.json").status_code == 404
    queued = _trigger(api, job["id"])
    assert (queued["status"], queued["job_definition_id"]) == (1, job["id"])
    assert api.get(f"runs/{queued['id']}/artifacts/run_results.json").status_code == 404
    run = _wait(api, queued["id"], until=DONE)
    assert run["status"] == 10, run
    assert run["is_complete"] and run["is_success"] and not run["is_error"]
    assert (run["status_humanized"], run["finished_at"] is not None) == ("Success", True)
    results = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    statuses = {r["unique_id"]: r["status"] for r in results["results"]}
    assert statuses == {"seed.demo.raw_bikes": "success"}
    manifest = api.get(f"runs/{run['id']}/artifacts/manifest.json").json()
    assert "model.demo.fct_rides" in manifest["nodes"]
    assert all(TOKEN in r.headers["authorization"] for r in cloud.requests)


def test_a_failing_node_ends_the_run_in_error_with_its_run_results(api: httpx.Client) -> None:
    step = "dbt run --select fct_rides --vars '{fail_model: true}'"
    job = _create_job(api, "pdo-test-fail", step, "dbt seed --select raw_bikes")
    run = _wait(api, _trigger(api, job["id"])["id"], until=DONE)
    assert (run["status"], run["is_error"], run["is_success"]) == (20, True, False)
    results = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    [fct] = results["results"]
    assert (fct["unique_id"], fct["status"]) == ("model.demo.fct_rides", "error")
    assert "a_table_that_does_not_exist" in fct["message"]
    assert api.get(f"runs/{run['id']}/artifacts/run_results.json?step=2").status_code == 404
    steps = api.get(f"runs/{run['id']}/?include_related=run_steps").json()["data"]["run_steps"]
    assert [s["index"] for s in steps] == [1]


def test_injected_errors_come_before_the_real_answer(cloud: DbtCloudServer) -> None:
    cloud.fail_next(2, status=429, retry_after=3)
    cloud.fail_next(1, status=500)
    with _client(cloud) as client:
        answers = [client.get("jobs/") for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 500, 200]
    assert [a.headers.get("Retry-After") for a in answers] == ["3", "3", None, None]
    assert answers[0].json()["status"]["is_success"] is False
    assert answers[3].json()["extra"]["pagination"] == {"count": 0, "total_count": 0}


def test_a_dropped_connection_leaves_the_job_created(cloud: DbtCloudServer) -> None:
    cloud.drop_next_connection()
    with _client(cloud) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("jobs/")
        cloud.drop_next_connection(after_processing=True)
        with pytest.raises(httpx.RemoteProtocolError):
            _create_job(client, "pdo-test-lost", "dbt seed")
        assert [job["name"] for job in cloud.jobs()] == ["pdo-test-lost"]
        assert client.get("jobs/").status_code == 200


def test_deleted_jobs_are_no_longer_listed(cloud: DbtCloudServer, api: httpx.Client) -> None:
    kept = _create_job(api, "pdo-run1-a", "dbt seed")
    gone = _create_job(api, "PDO-run1-b", "dbt seed")
    _create_job(api, "other", "dbt seed")
    deleted = api.delete(f"jobs/{gone['id']}/")
    assert (deleted.status_code, deleted.json()["data"]["state"]) == (200, 2)
    listed = api.get("jobs/", params={"name__icontains": "pdo-run1"}).json()["data"]
    assert [job["id"] for job in listed] == [kept["id"]]
    everything = api.get("jobs/", params={"name__icontains": "pdo-", "state": "all"}).json()
    assert [job["id"] for job in everything["data"]] == [kept["id"], gone["id"]]
    assert [job["name"] for job in cloud.jobs()] == ["pdo-run1-a", "other"]
    assert api.post(f"jobs/{gone['id']}/run/", json={"cause": "x"}).status_code == 404
    assert api.get("jobs/", params={"name__startswith": "pdo"}).status_code == 400


def test_the_job_manifest_comes_from_its_latest_successful_run(
    cloud: DbtCloudServer, api: httpx.Client
) -> None:
    job = _create_job(api, "pdo-test-manifest", "dbt seed --select raw_bikes")
    assert api.get(f"jobs/{job['id']}/artifacts/manifest.json").status_code == 404
    good = _wait(api, _trigger(api, job["id"])["id"], until=DONE)
    cloud.fail_runs("raw_bikes")
    bad = _wait(api, _trigger(api, job["id"])["id"], until=DONE)
    assert (good["status"], bad["status"]) == (10, 20)
    served = api.get(f"jobs/{job['id']}/artifacts/manifest.json")
    assert served.status_code == 200
    written = _manifest_of(api, good["id"])
    assert served.json() == written


def _manifest_of(api: httpx.Client, run_id: int) -> Any:
    return json.loads(api.get(f"runs/{run_id}/artifacts/manifest.json").content)


def test_runs_of_one_job_wait_for_each_other(cloud: DbtCloudServer, api: httpx.Client) -> None:
    cloud.hang_runs("--select hang")
    job = _create_job(api, "pdo-test-queue", "dbt build --select hang")
    first, second = _trigger(api, job["id"]), _trigger(api, job["id"])
    assert _wait(api, first["id"], until={3})["status"] == 3
    time.sleep(0.5)
    assert api.get(f"runs/{second['id']}/").json()["data"]["status"] == 1
    cancelled = api.post(f"runs/{first['id']}/cancel/")
    assert cancelled.status_code == 200
    assert _wait(api, first["id"], until=DONE)["status"] == 30
    assert _wait(api, second["id"], until={3})["status"] == 3
    api.post(f"runs/{second['id']}/cancel/")
    run = _wait(api, second["id"], until=DONE)
    assert (run["status"], run["is_cancelled"], run["status_humanized"]) == (30, True, "Cancelled")
    listed = api.get("runs/", params={"job_definition_id": job["id"], "order_by": "-id"}).json()
    assert [r["id"] for r in listed["data"]] == [second["id"], first["id"]]


def test_cancel_stops_a_running_dbt_process(slow_project: SlowProject, tmp_path: Path) -> None:
    project = slow_project.project_dir
    with _server(project, tmp_path, slow_project.env) as server, _client(server) as api:
        job = _create_job(api, "pdo-test-slow", "dbt run --select slow")
        run = _trigger(api, job["id"])
        deadline = time.monotonic() + 60
        while not slow_project.marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow_project.marker.exists(), "the slow query never started"
        started = time.monotonic()
        api.post(f"runs/{run['id']}/cancel/")
        done = _wait(api, run["id"], until=DONE, timeout=30)
        assert done["status"] == 30 and server.run_status(run["id"]) == RunStatus.CANCELLED
        assert time.monotonic() - started < 20


def test_steps_override_runs_the_given_steps_instead_of_the_jobs(
    cloud: DbtCloudServer, api: httpx.Client
) -> None:
    job = _create_job(api, "pooled", "dbt seed --select raw_bikes")
    bad = api.post(f"jobs/{job['id']}/run/", json={"cause": "t", "steps_override": ["ls"]})
    assert bad.status_code == 400

    override = {"cause": "t", "steps_override": ["dbt seed --select raw_stations"]}
    run = api.post(f"jobs/{job['id']}/run/", json=override).json()["data"]
    done = _wait(api, run["id"], until={RunStatus.SUCCESS, RunStatus.ERROR})

    assert done["status"] == RunStatus.SUCCESS
    results = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    assert [r["unique_id"] for r in results["results"]] == ["seed.demo.raw_stations"]
    assert api.get(f"jobs/{job['id']}/").json()["data"]["execute_steps"] == [
        "dbt seed --select raw_bikes"
    ]  # the job itself is unchanged


def test_echo_auth_next_answers_once_with_the_header_in_its_message(
    cloud: DbtCloudServer, api: httpx.Client
) -> None:
    cloud.echo_auth_next()

    first, second = api.get("jobs/"), api.get("jobs/")

    assert first.status_code == 500 and TOKEN in first.text
    assert second.status_code == 200 and TOKEN not in second.text
