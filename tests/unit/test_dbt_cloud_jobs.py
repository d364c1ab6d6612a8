"""The dbt Cloud job lifecycle (``_jobs``): jobs deleted whatever ends their
run, the job pool, run timeouts, and which jobs are orphans. dbt Cloud is an
in-memory fake behind an httpx transport (jobs and runs in dicts); the real
server tests are in tests/integration/test_dbt_cloud_*.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx
import pytest
from pydantic import SecretStr

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import CoolDown, DbtCloudClient
from prefect_dbt_orchestrator.adapters.dbt_cloud._jobs import (
    CANCELLED,
    HOST,
    RUNNING,
    SUCCESS,
    JobPool,
    Jobs,
    JobSpec,
    owner_of,
)
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials
from prefect_dbt_orchestrator.adapters.dbt_cloud.executor import DbtCloudExecutor
from prefect_dbt_orchestrator.adapters.prefect.dbt_cloud_block import (
    DbtCloudCredentials as CredentialsBlock,
)
from prefect_dbt_orchestrator.adapters.prefect.orchestrator import PrefectDbtOrchestrator
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError

TOKEN = "dbtc_jobs-unit-token-42"
PREFIX = "prefect-orchestrator"


def _iso(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


@attrs.define
class FakeCloud:
    """The jobs and runs endpoints over dicts. A triggered run ends with
    ``final`` after ``polls`` reads (None: it runs until cancelled)."""

    final: int | None = SUCCESS
    polls: int = 1
    jobs: dict[int, dict[str, Any]] = attrs.Factory(dict)
    runs: dict[int, dict[str, Any]] = attrs.Factory(dict)
    calls: list[tuple[str, str, Any]] = attrs.Factory(list)
    vanish: set[int] = attrs.Factory(set)  # jobs deleted behind the build's back
    broken_deletes: bool = False  # every DELETE answers 500
    _ids: Iterator[int] = attrs.Factory(lambda: iter(range(100, 10_000)))
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/accounts/42/", 1)[1].strip("/")
        body = json.loads(request.content) if request.content else None
        with self._lock:
            self.calls.append((request.method, path, body))
            return self._answer(request, path.split("/"), body)

    def _answer(self, request: httpx.Request, parts: list[str], body: Any) -> httpx.Response:
        method, now = request.method, _iso(datetime.now(UTC))
        if parts == ["jobs"] and method == "POST":
            job = {**body, "id": next(self._ids), "created_at": now, "updated_at": now}
            self.jobs[job["id"]] = job
            return _ok(job)
        if parts == ["jobs"]:
            offset = int(request.url.params.get("offset", 0))
            limit = int(request.url.params.get("limit", 100))
            return _ok(list(self.jobs.values())[offset : offset + limit])
        if parts[0] == "jobs" and len(parts) == 2 and method == "DELETE":
            if self.broken_deletes:
                return httpx.Response(500)
            if self.jobs.pop(int(parts[1]), None) is None:
                return httpx.Response(404, json={"status": {"user_message": "Not found"}})
            return httpx.Response(204)
        if parts[0] == "jobs" and parts[2:] == ["run"]:
            job_id = int(parts[1])
            if job_id in self.vanish or job_id not in self.jobs:
                self.jobs.pop(job_id, None)
                return httpx.Response(404, json={"status": {"user_message": "Job not found"}})
            run = {"id": next(self._ids), "job_definition_id": job_id, "status": 1,
                   "reads": 0, "body": body, "created_at": now, "finished_at": None}  # fmt: skip
            self.runs[run["id"]] = run
            return _ok(run)
        if parts == ["runs"]:
            job_id = int(request.url.params.get("job_definition_id", 0))
            found = [r for r in self.runs.values() if r["job_definition_id"] == job_id]
            if request.url.params.get("status__in"):
                found = [r for r in found if r["status"] in (1, 2, 3)]
            return _ok(sorted(found, key=lambda r: -r["id"]))
        run = self.runs[int(parts[1])]
        if parts[2:] == ["cancel"]:
            run["status"], run["finished_at"] = CANCELLED, now
        elif run["status"] not in (SUCCESS, CANCELLED, 20):
            run["reads"] += 1
            if self.final is not None and run["reads"] >= self.polls:
                run["status"], run["finished_at"] = self.final, now
            else:
                run["status"] = RUNNING
        return _ok(run)


def _ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"status": {"code": 200}, "data": data})


def jobs_over(cloud: FakeCloud, *, timeout: float = 900, prefix: str = PREFIX) -> Jobs:
    credentials = DbtCloudCredentials(api_key=TOKEN, account_id=42, base_url="http://cloud.test")
    client = DbtCloudClient(
        credentials,
        transport=httpx.MockTransport(cloud),
        cool_down=CoolDown(sleep=lambda s: None),
        sleep=lambda s: None,
    )
    spec = JobSpec(42, 1, 2, prefix)
    return Jobs(
        lambda: client,
        spec,
        timeout_seconds=timeout,
        poll_frequency_seconds=0,
        sleep=lambda s: None,
    )


def test_a_one_off_job_is_deleted_after_its_run_whatever_ends_it() -> None:
    cloud = FakeCloud(polls=3)
    jobs = jobs_over(cloud)

    run_id, status = jobs.run("stg_rides", ["dbt", "run", "--select", "x"], "prod", cause="run")

    assert status == SUCCESS and cloud.runs[run_id]["reads"] == 3
    assert cloud.jobs == {}
    created = next(body for method, path, body in cloud.calls if (method, path) == ("POST", "jobs"))
    assert created["execute_steps"] == ["dbt run --select x"]
    assert created["settings"] == {"threads": 4, "target_name": "prod"}
    assert created["name"].startswith(f"{PREFIX}-{HOST}-{os.getpid()}-stg_rides-")

    def boom(run_id: int) -> None:
        raise KeyboardInterrupt  # the flow cancelled while the run was starting

    with pytest.raises(KeyboardInterrupt):
        jobs.run("stg_bikes", ["dbt", "run"], None, cause="run", started=boom)
    assert cloud.jobs == {}


def test_a_run_past_the_timeout_is_cancelled_and_reported_as_none() -> None:
    cloud = FakeCloud(final=None)
    jobs = jobs_over(cloud, timeout=0.0)

    run_id, status = jobs.run("slow", ["dbt", "run"], None, cause="run")

    assert status is None
    assert cloud.runs[run_id]["status"] == CANCELLED
    assert cloud.jobs == {}


def test_the_pool_reuses_idle_jobs_with_the_nodes_step_and_deletes_them_at_the_end() -> None:
    cloud = FakeCloud()
    jobs = jobs_over(cloud)
    jobs.pool = JobPool()

    for name in ("a", "b", "c"):
        jobs.run(name, ["dbt", "run", "--select", name], "prod", cause=name)

    assert len(cloud.jobs) == 1, "three runs one after another share one job"
    bodies = [r["body"] for r in cloud.runs.values()]
    assert [b["steps_override"] for b in bodies] == [["dbt run --select a"],
                                                     ["dbt run --select b"],
                                                     ["dbt run --select c"]]  # fmt: skip
    assert {b["target_name_override"] for b in bodies} == {"prod"}
    jobs.close_pool()
    assert cloud.jobs == {} and jobs.pool is None


def test_the_pool_holds_one_job_per_run_at_once() -> None:
    cloud = FakeCloud(polls=2)
    jobs = jobs_over(cloud)
    jobs.pool = JobPool()
    started = threading.Barrier(3)

    def run(name: str) -> None:
        jobs.run(name, ["dbt", "run"], None, cause=name, started=lambda _: started.wait(30))

    threads = [threading.Thread(target=run, args=(n,)) for n in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(cloud.jobs) == 3
    jobs.run("d", ["dbt", "run"], None, cause="d")
    assert len(cloud.jobs) == 3, "the fourth run took an idle job"
    jobs.close_pool()
    assert cloud.jobs == {}


def test_a_pooled_job_deleted_meanwhile_is_replaced() -> None:
    cloud = FakeCloud()
    jobs = jobs_over(cloud)
    jobs.pool = JobPool()
    jobs.run("a", ["dbt", "run"], None, cause="a")
    (first,) = cloud.jobs
    cloud.vanish.add(first)  # another host's clean-up took it

    run_id, status = jobs.run("b", ["dbt", "run"], None, cause="b")

    assert status == SUCCESS
    assert first not in cloud.jobs and cloud.runs[run_id]["job_definition_id"] in cloud.jobs
    jobs.close_pool()
    assert cloud.jobs == {}


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def _job(cloud: FakeCloud, name: str, age: timedelta, running: bool = False) -> int:
    job_id = next(cloud._ids)
    then = _iso(datetime.now(UTC) - age)
    cloud.jobs[job_id] = {"id": job_id, "name": name, "created_at": then, "updated_at": then}
    if running:
        run_id = next(cloud._ids)
        cloud.runs[run_id] = {"id": run_id, "job_definition_id": job_id, "status": RUNNING,
                              "reads": 0, "created_at": then, "finished_at": None}  # fmt: skip
    return job_id


def test_orphans_are_this_hosts_dead_processes_and_other_hosts_idle_jobs() -> None:
    cloud = FakeCloud()
    hour = timedelta(hours=1)
    dead = _job(cloud, f"{PREFIX}-{HOST}-{_dead_pid()}-stg-abc123", timedelta(0), running=True)
    alive = _job(cloud, f"{PREFIX}-{HOST}-{os.getpid()}-stg-abc123", 5 * hour)
    stale = _job(cloud, f"{PREFIX}-other_pod-12-stg-abc123", 3 * hour)
    recent = _job(cloud, f"{PREFIX}-other_pod-12-stg-abc124", timedelta(minutes=5))
    busy = _job(cloud, f"{PREFIX}-other_pod-13-stg-abc125", 3 * hour, running=True)
    theirs = _job(cloud, "nightly-build", 30 * hour)
    other_prefix = _job(cloud, f"{PREFIX}x-{HOST}-{_dead_pid()}-stg-abc126", 30 * hour)
    jobs = jobs_over(cloud)

    orphans = jobs.orphans(older_than_seconds=2 * 3600)

    assert set(orphans) == {dead, stale}
    assert "is gone" in orphans[dead] and "other_pod" in orphans[stale]
    hung = next(r for r in cloud.runs.values() if r["job_definition_id"] == dead)
    jobs.delete_orphan(dead)
    assert hung["status"] == CANCELLED and dead not in cloud.jobs
    assert {alive, recent, busy, theirs, other_prefix} <= set(cloud.jobs)


def test_the_job_list_is_read_page_by_page() -> None:
    cloud = FakeCloud()
    dead = _dead_pid()
    made = [_job(cloud, f"{PREFIX}-{HOST}-{dead}-n{i}-abc", timedelta(0)) for i in range(230)]

    assert set(jobs_over(cloud).orphans(3600)) == set(made)
    offsets = [path for method, path, _ in cloud.calls if path == "jobs"]
    assert len(offsets) == 3


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        (f"{PREFIX}-my_host-123-stg_rides-abc123", ("my_host", 123)),
        (f"{PREFIX}-h-7-wave-build-3-ffffff", ("h", 7)),
        (f"{PREFIX}-h-x7-stg-abc", None),
        (f"{PREFIX}x-h-7-stg-abc", None),
        ("nightly", None),
    ],
)
def test_owner_of_reads_host_and_pid_from_the_prefix_only(
    name: str, owner: tuple[str, int] | None
) -> None:
    assert owner_of(name, PREFIX) == owner


def test_the_executor_refuses_bad_ids_and_durations_by_name() -> None:
    credentials = DbtCloudCredentials(api_key=TOKEN, account_id=42)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"project_id": 0}, "project_id=0"),
        ({"environment_id": "prod"}, "environment_id='prod'"),
        ({"timeout_seconds": 0}, "timeout_seconds=0"),
        ({"job_name_prefix": " "}, "job_name_prefix"),
    ]
    for options, named in cases:
        values: dict[str, Any] = {"project_id": 1, "environment_id": 2, **options}
        with pytest.raises(OptionsConflictError, match=named):
            DbtCloudExecutor(credentials, **values)


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ({"defer": True, "defer_state_path": "prod-state"}, "defer=True"),
        ({"defer_state_path": "prod-state"}, "defer_state_path"),
        ({"selection_engine": "dbt"}, 'selection_engine="dbt"'),
        ({"manifest_path": "target/manifest.json"}, "manifest_path"),
    ],
)
def test_options_that_need_local_files_are_refused_with_the_cloud_executor(
    option: dict[str, Any], named: str
) -> None:
    block = CredentialsBlock(api_key=SecretStr(TOKEN), account_id=42)
    executor = DbtCloudExecutor(block, project_id=1, environment_id=2)

    with pytest.raises(OptionsConflictError) as refused:
        PrefectDbtOrchestrator(executor=executor, **option)

    assert named in str(refused.value)
    assert "DbtCloudExecutor runs dbt elsewhere" in str(refused.value)


def test_a_pooled_job_that_cannot_be_deleted_is_logged_and_left_to_the_next_build(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud = FakeCloud(broken_deletes=True)
    credentials = DbtCloudCredentials(api_key=TOKEN, account_id=42, base_url="http://cloud.test")
    executor = DbtCloudExecutor(
        credentials, 1, 2, reuse_jobs=True, transport=httpx.MockTransport(cloud),
        sleep=lambda s: None, poll_frequency_seconds=0.01, cleanup_orphans=False,
    )  # fmt: skip
    executor.start_run([], options=InvocationOptions())
    executor._jobs.run("a", ["dbt", "run"], None, cause="a")

    executor.finish_run()  # does not raise

    assert len(cloud.jobs) == 1
    assert "could not be deleted" in caplog.text and TOKEN not in caplog.text
