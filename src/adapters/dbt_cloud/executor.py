"""DbtCloudExecutor: the executor port over dbt Cloud's Administrative API v2.

Each node (or wave) runs as an ephemeral dbt Cloud job: created with the
node's command as its one step, triggered, polled until it ends (or
cancelled at ``timeout_seconds``), its ``run_results.json`` mapped to
results as the dbt Core executor maps dbt's own, and always deleted. The
manifest comes from ``defer_to_job_id``'s latest successful run, else from
an ephemeral ``dbt compile`` job. No local dbt project is needed.

Jobs are named ``<job_name_prefix>-<host>-<pid>-<label>``: a job left by a
process of this host that no longer runs is an orphan, deleted at the next
build's start (``cleanup_orphans``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import httpx

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import BACKEND, DbtCloudClient
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials
from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.commands import InvocationOptions, command_for, exact_selector
from prefect_dbt_orchestrator.domain.freshness import SourceLoad, read_source_loads
from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, Source
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    NodeStatus,
    no_op_result,
)
from prefect_dbt_orchestrator.domain.redaction import Secrets
from prefect_dbt_orchestrator.domain.result_entries import EntryError, result_from_entry
from prefect_dbt_orchestrator.ports.executor import CacheInputs, DbtExecutor, ExecutorUnavailable

# dbt Cloud's run statuses
QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
ENDED = frozenset({SUCCESS, ERROR, CANCELLED})
RUN_TIMEOUT = "DbtCloudRunTimeout"
_HOST = socket.gethostname().split(".")[0].lower() or "host"


def _as_credentials(given: Any) -> DbtCloudCredentials:
    """``given`` as plain credentials: ours, a block with ``plain()``, or anything
    with ``api_key`` (a str or a pydantic SecretStr), ``account_id`` and maybe
    ``base_url`` (prefect-dbt's block of the same name)."""
    if isinstance(given, DbtCloudCredentials):
        return given
    plain = getattr(given, "plain", None)
    if callable(plain):
        found = plain()
        if isinstance(found, DbtCloudCredentials):
            return found
    key = getattr(given, "api_key", None)
    secret = getattr(key, "get_secret_value", None)
    values: dict[str, Any] = {
        "api_key": secret() if callable(secret) else key,
        "account_id": getattr(given, "account_id", None),
    }
    if getattr(given, "base_url", None):
        values["base_url"] = str(given.base_url)
    return DbtCloudCredentials(**values)


class DbtCloudExecutor(DbtExecutor):
    """Runs nodes as ephemeral dbt Cloud jobs (see the module docstring).

    Args:
        credentials: ``DbtCloudCredentials`` (or the Prefect block of that name).
        project_id, environment_id: where the jobs are created and run.
        job_name_prefix: the start of every job's name (orphans are found by it).
        timeout_seconds: how long a run may take before it is cancelled.
        poll_frequency_seconds: how often a run's status is read.
        threads: ``--threads`` for every command, when set.
        defer_to_job_id: the job whose latest successful run's manifest is used.
        cleanup_orphans: delete, at each build's start, this host's jobs of the
            prefix whose process is gone.
    """

    def __init__(
        self,
        credentials: Any,
        project_id: int,
        environment_id: int,
        *,
        job_name_prefix: str = "prefect-orchestrator",
        timeout_seconds: float = 900,
        poll_frequency_seconds: float = 10,
        threads: int | None = None,
        defer_to_job_id: int | None = None,
        cleanup_orphans: bool = True,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = _as_credentials(credentials)
        self.project_id = int(project_id)
        self.environment_id = int(environment_id)
        self.job_name_prefix = job_name_prefix
        self.timeout_seconds = timeout_seconds
        self.poll_frequency_seconds = poll_frequency_seconds
        self.threads = threads
        self.defer_to_job_id = defer_to_job_id
        self.cleanup_orphans = cleanup_orphans
        self._transport = transport
        self._http: DbtCloudClient | None = None  # opened on first use, closed by close()
        self._sleep = sleep
        self._root_package: str | None = None
        self._adapter_type = "unknown"
        self._dbt_version = ""
        self._secrets = Secrets((self.credentials.api_key,))
        self._runs: dict[str, int] = {}  # unique_id -> its running dbt Cloud run
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    @property
    def _client(self) -> DbtCloudClient:
        with self._lock:
            if self._http is None:
                self._http = DbtCloudClient(
                    self.credentials, transport=self._transport, sleep=self._sleep
                )
            return self._http

    def close(self) -> None:
        """Close the API connections (the next call opens new ones)."""
        with self._lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return (
            f"DbtCloudExecutor(account_id={self.credentials.account_id}, "
            f"project_id={self.project_id}, environment_id={self.environment_id})"
        )

    # ------------------------------------------------------------ the manifest

    def load_manifest(
        self, *, target: str | None = None, extra_args: Sequence[str] = (), fresh: bool = False
    ) -> Manifest:
        """From ``defer_to_job_id``'s latest successful run, else a compile job."""
        if self.defer_to_job_id is not None:
            path = f"jobs/{self.defer_to_job_id}/artifacts/manifest.json"
            data = self._client.artifact(path)
            source = f"dbt Cloud job {self.defer_to_job_id}'s manifest.json"
        else:
            step = ["dbt", "compile", *extra_args]
            with self._job("compile", step, target) as job_id:
                run_id = self._trigger(job_id, "compile the manifest")
                status = self._wait(run_id)
                if status != SUCCESS:
                    raise ExecutorUnavailable(
                        BACKEND,
                        f"the compile job's run {run_id} ended with status {status}",
                        "see the run in dbt Cloud; `dbt compile` must pass for a build",
                    )
                data = self._client.artifact(f"runs/{run_id}/artifacts/manifest.json")
            source = f"dbt Cloud run {run_id}'s manifest.json"
        manifest = structure_manifest(data, source=source)
        self._root_package = manifest.project_name
        self._adapter_type = manifest.metadata.adapter_type or "unknown"
        self._dbt_version = manifest.metadata.dbt_version
        return manifest

    # ------------------------------------------------------------ a build

    def start_run(self, nodes: Sequence[Node], *, options: InvocationOptions) -> None:
        if self.cleanup_orphans:
            self.delete_orphans()

    def finish_run(self) -> None:
        """Every job was deleted as its node ended; the API connections close."""
        self.close()

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        with self._lock:
            runs = [r for uid, r in self._runs.items() if unique_ids is None or uid in unique_ids]
            self._cancelled.update(runs)
        for run_id in runs:
            with contextlib.suppress(ExecutorUnavailable):  # best effort: it may just have ended
                self._client.post(f"runs/{run_id}/cancel/")

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        """dbt Cloud's warehouse is not visible from here: no relation is known
        to exist, so a cache hit is never taken for a relation that is gone."""
        environment = KeyEnvironment(
            target_name=options.target or "default",
            adapter_type=self._adapter_type,
            dbt_version=self._dbt_version,
            adapter_version="",
            full_refresh=options.full_refresh,
        )
        return CacheInputs(environment, frozenset())

    def source_freshness(
        self, sources: Sequence[Node], *, options: InvocationOptions, record: bool
    ) -> Mapping[str, SourceLoad]:
        selectors = [
            f"source:{n.package_name}.{n.source_name}.{n.name}"
            for n in sources
            if isinstance(n, Source)
        ]
        if not selectors:
            return {}
        step = ["dbt", "source", "freshness", "--select", *selectors, *options.extra_args]
        with self._job("freshness", step, options.target) as job_id:
            run_id = self._trigger(job_id, "source freshness")
            self._wait(run_id)  # a source past error_after fails the run: that is data
            data = self._client.artifact(f"runs/{run_id}/artifacts/sources.json")
        return read_source_loads(data, source=f"dbt Cloud run {run_id}'s sources.json")

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        if is_no_op(node):
            return no_op_result(node.unique_id, datetime.now(UTC))
        command = command_for(node.resource_type).value
        args = ["--select", exact_selector(node, self._root_package), *self._flags(options)]
        results = self._run([node.unique_id], command, args, options, node.name)
        return results[node.unique_id]

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        now = datetime.now(UTC)
        done = {n.unique_id: no_op_result(n.unique_id, now) for n in nodes if is_no_op(n)}
        todo = [n for n in nodes if n.unique_id not in done]
        if not todo:
            return done
        selectors = [exact_selector(n, self._root_package) for n in todo]
        args = ["--select", *selectors, "--indirect-selection", "empty", *self._flags(options)]
        ids = [n.unique_id for n in todo]
        # dbt Cloud reports a node's start and end only at the run's end: each
        # node's clock is the whole run's.
        with _around_all(around_node, ids):
            results = self._run(ids, "build", args, options, f"wave-of-{len(ids)}")
        return {**done, **results}

    # ------------------------------------------------------------ jobs and runs

    def _flags(self, options: InvocationOptions) -> list[str]:
        flags = ["--full-refresh"] if options.full_refresh else []
        threads = self.threads or options.threads
        if threads is not None:
            flags += ["--threads", str(threads)]
        return [*flags, *options.extra_args]

    def _run(
        self,
        unique_ids: Sequence[str],
        command: str,
        args: Sequence[str],
        options: InvocationOptions,
        label: str,
    ) -> dict[str, NodeResult]:
        invocation = Invocation(command, self._secrets.redact_args(args))
        with self._job(label, ["dbt", command, *args], options.target) as job_id:
            run_id = self._trigger(job_id, f"{command} {label}")
            with self._lock:
                self._runs.update(dict.fromkeys(unique_ids, run_id))
            try:
                status = self._wait(run_id)
            finally:
                with self._lock:
                    for uid in unique_ids:
                        self._runs.pop(uid, None)
            return self._results(run_id, status, unique_ids, invocation)

    def _results(
        self, run_id: int, status: int | None, unique_ids: Sequence[str], invocation: Invocation
    ) -> dict[str, NodeResult]:
        if status is None:
            return {
                uid: _failed(
                    uid,
                    f"dbt Cloud run {run_id} did not end within {self.timeout_seconds:g} s "
                    "(timeout_seconds) and was cancelled",
                    RUN_TIMEOUT,
                    invocation,
                )
                for uid in unique_ids
            }
        entries: dict[str, Any] = {}
        try:
            document = self._client.artifact(f"runs/{run_id}/artifacts/run_results.json")
        except ExecutorUnavailable:
            document = None  # a run that failed before dbt wrote anything
        if isinstance(document, Mapping) and isinstance(document.get("results"), list):
            listed = [e for e in document["results"] if isinstance(e, Mapping)]
            entries = {str(e.get("unique_id")): e for e in listed}
        results = {}
        for uid in unique_ids:
            try:
                result = result_from_entry(entries[uid], invocation)
            except (KeyError, EntryError):
                cancelled = status == CANCELLED or run_id in self._cancelled
                why = "was cancelled" if cancelled else f"ended with status {status}"
                message = f"dbt Cloud run {run_id} {why} without a result for it"
                result = _failed(uid, message, "DbtCloudRunError", invocation)
            results[uid] = self._secrets.scrub_result(result)
        return results

    def _job(self, label: str, step: Sequence[str], target: str | None) -> _Job:
        name = f"{self.job_name_prefix}-{_HOST}-{os.getpid()}-{label}-{uuid.uuid4().hex[:6]}"
        settings: dict[str, Any] = {"threads": self.threads or 4}
        if target is not None:
            settings["target_name"] = target
        body = {
            "account_id": self.credentials.account_id,
            "project_id": self.project_id,
            "environment_id": self.environment_id,
            "name": name[:255],
            "execute_steps": [shlex.join(step)],
            "job_type": "other",
            "state": 1,
            "generate_docs": False,
            "run_generate_sources": False,
            "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": False},
            "settings": settings,
        }
        return _Job(self._client, body)

    def _trigger(self, job_id: int, cause: str) -> int:
        run = self._client.post(
            f"jobs/{job_id}/run/", {"cause": f"prefect-dbt-orchestrator: {cause}"}
        )
        return int(run["id"])

    def _wait(self, run_id: int) -> int | None:
        """The run's final status; None when it ran past ``timeout_seconds``
        (it is then cancelled)."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = int(self._client.get(f"runs/{run_id}/")["status"])
            if status in ENDED:
                return status
            if time.monotonic() >= deadline:
                with contextlib.suppress(ExecutorUnavailable):  # it may just have ended
                    self._client.post(f"runs/{run_id}/cancel/")
                return None
            self._sleep(self.poll_frequency_seconds)

    def delete_orphans(self) -> list[int]:
        """Delete this host's jobs of the prefix whose process no longer runs;
        returns their ids."""
        mine = f"{self.job_name_prefix}-{_HOST}-"
        jobs = self._client.get("jobs/", {"project_id": self.project_id, "limit": 100})
        deleted = []
        for job in jobs if isinstance(jobs, list) else []:
            name = str(job.get("name") or "")
            if not name.startswith(mine):
                continue
            pid = name[len(mine) :].split("-", 1)[0]
            if pid.isdigit() and not _running(int(pid)):
                self._client.delete(f"jobs/{job['id']}/")
                deleted.append(int(job["id"]))
        return deleted


class _Job:
    """A job that lives as long as its ``with`` block: deleted whatever ends it."""

    def __init__(self, client: DbtCloudClient, body: Mapping[str, Any]) -> None:
        self._client = client
        self._body = body
        self._id: int | None = None

    def __enter__(self) -> int:
        job = self._client.post("jobs/", self._body)
        self._id = int(job["id"])
        return self._id

    def __exit__(self, *exc: object) -> None:
        if self._id is not None:
            self._client.delete(f"jobs/{self._id}/")


def _failed(uid: str, message: str, kind: str, invocation: Invocation) -> NodeResult:
    return NodeResult(
        uid,
        NodeStatus.ERROR,
        DbtStatus.ERROR,
        message=message,
        invocation=invocation,
        error=ErrorInfo(message, kind),
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _around_all:  # noqa: N801  # a context manager used like a function
    """``around_node`` entered for every one of ``unique_ids`` at once."""

    def __init__(
        self,
        around: Callable[[str], AbstractContextManager[object]] | None,
        unique_ids: Sequence[str],
    ) -> None:
        self._managers = [around(uid) if around else nullcontext() for uid in unique_ids]

    def __enter__(self) -> None:
        for manager in self._managers:
            manager.__enter__()

    def __exit__(self, *exc: Any) -> None:
        for manager in reversed(self._managers):
            manager.__exit__(*exc)
