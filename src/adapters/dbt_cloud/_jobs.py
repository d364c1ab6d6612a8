"""The ephemeral dbt Cloud jobs of a build, their runs, and the orphans a
killed build leaves.

A job is named ``<prefix>-<host>-<pid>-<label>-<hex6>``: the name says which
process made it. ``Jobs.run`` runs one step on a job of its own (created,
deleted when the run ends, whatever ends it), or, with a ``JobPool``, on a
job the build keeps and triggers with ``steps_override`` (dbt Cloud runs one
run of a job at a time, so a pool holds one job per node running at once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import ApiRefused, DbtCloudClient
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

# dbt Cloud's run statuses
QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
ENDED = frozenset({SUCCESS, ERROR, CANCELLED})
IN_PROGRESS = "[1,2,3]"  # status__in for queued, starting and running runs
HOST = socket.gethostname().split(".")[0].lower().replace("-", "_") or "host"
PAGE = 100  # jobs listed per request

_LOG = logging.getLogger("prefect_dbt_orchestrator")


@attrs.frozen
class JobSpec:
    """Where a build's jobs are made, and what every one of them is."""

    account_id: int
    project_id: int
    environment_id: int
    prefix: str
    threads: int | None = None

    def name(self, label: str) -> str:
        return f"{self.prefix}-{HOST}-{os.getpid()}-{label}-{uuid.uuid4().hex[:6]}"[:255]

    def body(self, label: str, step: Sequence[str], target: str | None) -> dict[str, Any]:
        """``POST jobs/``'s body: a job of one step, never scheduled."""
        settings: dict[str, Any] = {"threads": self.threads or 4}
        if target is not None:
            settings["target_name"] = target
        return {
            "account_id": self.account_id,
            "project_id": self.project_id,
            "environment_id": self.environment_id,
            "name": self.name(label),
            "execute_steps": [shlex.join(step)],
            "job_type": "other",
            "state": 1,
            "generate_docs": False,
            "run_generate_sources": False,
            "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": False},
            "settings": settings,
        }


class JobPool:
    """The jobs a build keeps (``reuse_jobs=True``): a node takes an idle one or
    makes one, so there are never more than the nodes running at once."""

    def __init__(self) -> None:
        self._idle: list[int] = []
        self._all: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def add(self, job_id: int) -> None:
        with self._lock:
            self._all.add(job_id)

    def give_back(self, job_id: int) -> None:
        with self._lock:
            if job_id in self._all:
                self._idle.append(job_id)

    def forget(self, job_id: int) -> None:
        """A job gone from dbt Cloud (deleted elsewhere): never handed out again."""
        with self._lock:
            self._all.discard(job_id)

    def drain(self) -> list[int]:
        """Every job of the pool, which is emptied."""
        with self._lock:
            jobs, self._all, self._idle = sorted(self._all), set(), []
        return jobs


class Jobs:
    """Runs steps on ephemeral jobs and waits for them (see the module docstring)."""

    def __init__(
        self,
        client: Callable[[], DbtCloudClient],
        spec: JobSpec,
        *,
        timeout_seconds: float,
        poll_frequency_seconds: float,
        sleep: Callable[[float], None],
    ) -> None:
        self._client = client
        self.spec = spec
        self.timeout_seconds = timeout_seconds
        self.poll_frequency_seconds = poll_frequency_seconds
        self._sleep = sleep
        self.pool: JobPool | None = None

    def run(
        self,
        label: str,
        step: Sequence[str],
        target: str | None,
        *,
        cause: str,
        started: Callable[[int], object] = lambda run_id: None,
    ) -> tuple[int, int | None]:
        """Run ``step`` on a job; ``started(run_id)`` once triggered. Returns the
        run id and its final status (None: cancelled at ``timeout_seconds``)."""
        pool = self.pool
        if pool is None:
            with self.one_off(label, step, target) as job_id:
                run_id = self._trigger(job_id, cause)
                started(run_id)
                return run_id, self.wait(run_id)
        job_id, run_id = self._trigger_pooled(pool, label, step, target, cause)
        try:
            started(run_id)
            return run_id, self.wait(run_id)
        finally:
            pool.give_back(job_id)

    @contextlib.contextmanager
    def one_off(self, label: str, step: Sequence[str], target: str | None) -> Iterator[int]:
        """A job that lives as long as the ``with`` block: deleted whatever ends it."""
        job_id = int(self._client().post("jobs/", self.spec.body(label, step, target))["id"])
        try:
            yield job_id
        finally:
            self.delete(job_id)

    def delete(self, job_id: int) -> None:
        """Delete a job; one already gone is fine."""
        try:
            self._client().delete(f"jobs/{job_id}/")
        except ApiRefused as refused:
            if refused.status_code != 404:
                raise

    def close_pool(self) -> None:
        """Delete the pool's jobs (each tried, the first failure raised after)."""
        pool, self.pool = self.pool, None
        failure: ExecutorUnavailable | None = None
        for job_id in pool.drain() if pool else ():
            try:
                self.delete(job_id)
            except ExecutorUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _trigger_pooled(
        self, pool: JobPool, label: str, step: Sequence[str], target: str | None, cause: str
    ) -> tuple[int, int]:
        overrides: dict[str, Any] = {"steps_override": [shlex.join(step)]}
        if target is not None:
            overrides["target_name_override"] = target
        for _ in range(2):  # a pooled job deleted meanwhile is replaced once
            job_id = pool.take()
            if job_id is None:
                body = self.spec.body(f"pool-{label}", step, target)
                job_id = int(self._client().post("jobs/", body)["id"])
                pool.add(job_id)
            try:
                return job_id, self._trigger(job_id, cause, overrides)
            except ApiRefused as refused:
                pool.forget(job_id)
                if refused.status_code != 404:
                    with contextlib.suppress(ExecutorUnavailable):
                        self.delete(job_id)
                    raise
        raise ExecutorUnavailable(
            "dbt Cloud",
            "the build's pooled jobs keep disappearing (deleted while the build runs)",
            "check who deletes jobs of this job_name_prefix; or pass reuse_jobs=False",
        )

    def _trigger(self, job_id: int, cause: str, overrides: Mapping[str, Any] = {}) -> int:
        body = {"cause": f"prefect-dbt-orchestrator: {cause}"[:255], **overrides}
        return int(self._client().post(f"jobs/{job_id}/run/", body)["id"])

    def wait(self, run_id: int) -> int | None:
        """The run's final status; None when it ran past ``timeout_seconds``
        (it is then cancelled)."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = int(self._client().get(f"runs/{run_id}/")["status"])
            if status in ENDED:
                return status
            if time.monotonic() >= deadline:
                self.cancel(run_id)
                return None
            self._sleep(self.poll_frequency_seconds)

    def cancel(self, run_id: int) -> None:
        """Cancel a run; best effort (it may just have ended)."""
        with contextlib.suppress(ExecutorUnavailable):
            self._client().post(f"runs/{run_id}/cancel/")

    # ------------------------------------------------------------ orphans

    def orphans(self, older_than_seconds: float) -> dict[int, str]:
        """The prefix's jobs no running build owns, each with why: made on this
        host by a process that is gone, or on another host with nothing done
        on it for ``older_than_seconds``."""
        found: dict[int, str] = {}
        now = datetime.now(UTC)
        for job in self._listed():
            owner = owner_of(str(job.get("name") or ""), self.spec.prefix)
            if owner is None:
                continue
            host, pid = owner
            if host == HOST:
                if not process_alive(pid):
                    found[int(job["id"])] = f"its process {pid} on this host is gone"
                continue
            idle = (now - self._last_activity(job)).total_seconds()
            if idle >= older_than_seconds:
                found[int(job["id"])] = f"made on host {host}, idle for {idle:.0f} s"
        return found

    def delete_orphan(self, job_id: int) -> None:
        """Cancel the orphan's runs still in progress, then delete it."""
        for run in self._runs_in_progress(job_id):
            self.cancel(int(run["id"]))
        self.delete(job_id)

    def _listed(self) -> Iterator[Mapping[str, Any]]:
        offset = 0
        while True:
            params = {
                "project_id": self.spec.project_id,
                "name__icontains": self.spec.prefix,
                "limit": PAGE,
                "offset": offset,
            }
            page = self._client().get("jobs/", params)
            rows = [j for j in page if isinstance(j, Mapping)] if isinstance(page, list) else []
            yield from (job for job in rows if job.get("state", 1) == 1)
            if len(rows) < PAGE:
                return
            offset += PAGE

    def _runs_in_progress(self, job_id: int) -> list[Mapping[str, Any]]:
        params = {"job_definition_id": job_id, "status__in": IN_PROGRESS, "limit": PAGE}
        runs = self._client().get("runs/", params)
        return [r for r in runs if isinstance(r, Mapping)] if isinstance(runs, list) else []

    def _last_activity(self, job: Mapping[str, Any]) -> datetime:
        """When the job last changed or one of its runs was made or ended; a
        run in progress counts as now."""
        params = {"job_definition_id": job["id"], "order_by": "-id", "limit": 1}
        runs = self._client().get("runs/", params)
        times = [_when(job.get("updated_at")), _when(job.get("created_at"))]
        for run in runs if isinstance(runs, list) else []:
            if isinstance(run, Mapping):
                if run.get("status") not in ENDED:
                    return datetime.now(UTC)
                times += [_when(run.get("created_at")), _when(run.get("finished_at"))]
        return max(t for t in times if t is not None) if any(times) else datetime.now(UTC)


def owner_of(name: str, prefix: str) -> tuple[str, int] | None:
    """The host and pid in a job name this prefix made, or None (not ours)."""
    if not name.startswith(f"{prefix}-"):
        return None
    host, _, rest = name[len(prefix) + 1 :].partition("-")
    pid = rest.split("-", 1)[0]
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


def process_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
