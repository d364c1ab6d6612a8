"""DbtCloudExecutor: the executor port over dbt Cloud's Administrative API v2.

Each node (or wave) runs as an ephemeral dbt Cloud job (``_jobs``): created
with the node's command as its one step, triggered, polled until it ends (or
cancelled at ``timeout_seconds``), its ``run_results.json`` mapped to results
as the dbt Core executor maps dbt's own, and always deleted. With
``reuse_jobs=True`` the build keeps one job per node running at once and
triggers them with the node's step instead. The manifest comes from
``defer_to_job_id``'s latest successful run, else from an ephemeral ``dbt
compile`` job. No local dbt project is needed.

Jobs left by a killed build are orphans, deleted at the next build's start
(``cleanup_orphans``): this host's whose process is gone, and other hosts'
idle for ``orphan_after_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import httpx

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import BACKEND, DbtCloudClient
from prefect_dbt_orchestrator.adapters.dbt_cloud._jobs import (
    SUCCESS,
    JobPool,
    Jobs,
    JobSpec,
)
from prefect_dbt_orchestrator.adapters.dbt_cloud._results import results_of, timed_out
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import (
    as_credentials,
    checked_id,
    checked_prefix,
    checked_seconds,
)
from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.commands import (
    InvocationOptions,
    command_for,
    exact_selector,
    wave_selection,
)
from prefect_dbt_orchestrator.domain.freshness import SourceLoad, read_source_loads
from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, ResourceType, Source
from prefect_dbt_orchestrator.domain.outcomes import (
    Invocation,
    NodeResult,
    no_op_result,
)
from prefect_dbt_orchestrator.domain.redaction import Secrets, flag_values
from prefect_dbt_orchestrator.ports.executor import CacheInputs, DbtExecutor, ExecutorUnavailable

CATALOG_SELECTORS = 200  # a catalog job selects at most this many nodes, else all
_LOG = logging.getLogger("prefect_dbt_orchestrator")


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
        reuse_jobs: keep the build's jobs (one per node running at once) and
            trigger them with each node's step, instead of a job per node.
        cleanup_orphans: delete, at each build's start, the prefix's jobs no
            running build owns (cancelling their runs still in progress).
        orphan_after_seconds: another host's job counts as an orphan after this
            long with nothing done on it (default: twice ``timeout_seconds``,
            at least an hour); this host's as soon as its process is gone.

    Raises:
        OptionsConflictError: bad credentials, ids or durations.
    """

    needs_local_project = False  # options that need local files are refused (orchestrator)

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
        reuse_jobs: bool = False,
        cleanup_orphans: bool = True,
        orphan_after_seconds: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = as_credentials(credentials)
        self.project_id = checked_id("project_id", project_id)
        self.environment_id = checked_id("environment_id", environment_id)
        self.job_name_prefix = checked_prefix(job_name_prefix)
        self.timeout_seconds = checked_seconds("timeout_seconds", timeout_seconds)
        self.poll_frequency_seconds = checked_seconds(
            "poll_frequency_seconds", poll_frequency_seconds
        )
        self.threads = threads
        self.defer_to_job_id = defer_to_job_id
        self.reuse_jobs = reuse_jobs
        self.cleanup_orphans = cleanup_orphans
        self.orphan_after_seconds = (
            max(3600.0, 2 * self.timeout_seconds)
            if orphan_after_seconds is None
            else checked_seconds("orphan_after_seconds", orphan_after_seconds)
        )
        self._transport = transport
        self._http: DbtCloudClient | None = None  # opened on first use, closed by close()
        self._sleep = sleep
        spec = JobSpec(
            self.credentials.account_id,
            self.project_id,
            self.environment_id,
            self.job_name_prefix,
            threads,
        )
        self._jobs = Jobs(
            lambda: self._client,
            spec,
            timeout_seconds=self.timeout_seconds,
            poll_frequency_seconds=self.poll_frequency_seconds,
            sleep=sleep,
        )
        self._root_package: str | None = None
        self._adapter_type = "unknown"
        self._dbt_version = ""
        self._secrets = Secrets((self.credentials.api_key,))
        self._runs: dict[str, int] = {}  # unique_id -> its running dbt Cloud run
        self._cancelled: set[int] = set()
        self._orphans_checked = False  # by this build (reset when it finishes)
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
        """From ``defer_to_job_id``'s latest successful run, else a compile job.
        A build's (``fresh``) first deletes the orphans, whose runs would
        otherwise hold dbt Cloud's run slots."""
        if fresh:
            self._delete_orphans_once()
        if self.defer_to_job_id is not None:
            path = f"jobs/{self.defer_to_job_id}/artifacts/manifest.json"
            data = self._client.artifact(path)
            source = f"dbt Cloud job {self.defer_to_job_id}'s manifest.json"
        else:
            step = ["dbt", "compile", *extra_args]
            run_id, status = self._jobs.run("compile", step, target, cause="compile the manifest")
            if status != SUCCESS:
                ended = f"ended with status {status}" if status else "timed out (cancelled)"
                raise ExecutorUnavailable(
                    BACKEND,
                    f"the compile job's run {run_id} {ended}",
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
        self._delete_orphans_once()
        if self.reuse_jobs:
            self._jobs.pool = JobPool()

    def finish_run(self) -> None:
        """Delete the pooled jobs (a job per node was deleted as its node
        ended); the API connections close. A job that cannot be deleted now
        is an orphan the next build deletes: logged, never raised."""
        self._orphans_checked = False
        try:
            self._jobs.close_pool()
        except ExecutorUnavailable as exc:
            _LOG.warning("a pooled dbt Cloud job could not be deleted (%s)", exc)
        finally:
            self.close()

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        with self._lock:
            runs = [r for uid, r in self._runs.items() if unique_ids is None or uid in unique_ids]
            self._cancelled.update(runs)
        for run_id in runs:
            self._jobs.cancel(run_id)

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        """The key environment, and the relations that exist: the warehouse is
        seen through one ``dbt docs generate --no-compile`` job, whose
        ``catalog.json`` lists the relations it found. When that job fails, no
        relation is taken to exist (every node runs)."""
        environment = KeyEnvironment(
            target_name=options.target or "default",
            adapter_type=self._adapter_type,
            dbt_version=self._dbt_version,
            adapter_version="",
            full_refresh=options.full_refresh,
            # dbt Cloud's vars are in the run: the --vars given here stand for them
            vars={"--vars": list(flag_values(options.extra_args))},
        )
        asked = [n for n in nodes if n.relation_name]
        return CacheInputs(environment, self._catalogued(asked, options) if asked else frozenset())

    def _catalogued(self, nodes: Sequence[Node], options: InvocationOptions) -> frozenset[str]:
        selection: list[str] = []
        if len(nodes) <= CATALOG_SELECTORS:
            selection = ["--select", *(exact_selector(n, self._root_package) for n in nodes)]
        step = ["dbt", "docs", "generate", "--no-compile", *selection, *options.extra_args]
        try:
            run_id, status = self._jobs.run(
                "catalog", step, options.target, cause="which relations exist (cache)"
            )
            catalog = self._client.artifact(f"runs/{run_id}/artifacts/catalog.json")
        except ExecutorUnavailable as exc:
            _LOG.warning("dbt Cloud's catalog could not be read (%s): every node runs", exc)
            return frozenset()
        found = catalog.get("nodes") if isinstance(catalog, Mapping) else None
        listed = set(found) if isinstance(found, Mapping) else set()
        return frozenset(n.unique_id for n in nodes if n.unique_id in listed)

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
        # a source past error_after fails the run: that is data, in sources.json
        run_id, _ = self._jobs.run("freshness", step, options.target, cause="source freshness")
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
        # `dbt build` runs a unit test only with its model selected too: a
        # wave's unit tests are a `dbt test` job of their own, beside the rest.
        unit_tests = [n for n in todo if n.resource_type is ResourceType.UNIT_TEST]
        rest = [n for n in todo if n.resource_type is not ResourceType.UNIT_TEST]
        parts = [
            (command, part) for command, part in (("test", unit_tests), ("build", rest)) if part
        ]
        with _around_all(around_node, [n.unique_id for n in todo]):
            # dbt Cloud tells a node's start and end only at the run's end:
            # each node's clock is the whole run's.
            if len(parts) == 1:
                results = self._run_part(*parts[0], options)
            else:
                with ThreadPoolExecutor(len(parts), thread_name_prefix="dbt-cloud-wave") as pool:
                    futures = [pool.submit(self._run_part, c, part, options) for c, part in parts]
                    results = {uid: r for f in futures for uid, r in f.result().items()}
        return {**done, **results}

    def _run_part(
        self, command: str, nodes: Sequence[Node], options: InvocationOptions
    ) -> dict[str, NodeResult]:
        args = [*wave_selection(nodes, self._root_package), *self._flags(options)]
        label = f"wave-{command}-{len(nodes)}"
        return self._run([n.unique_id for n in nodes], command, args, options, label)

    # ------------------------------------------------------------ runs

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

        def started(run_id: int) -> None:
            with self._lock:
                self._runs.update(dict.fromkeys(unique_ids, run_id))

        try:
            run_id, status = self._jobs.run(
                label, ["dbt", command, *args], options.target,
                cause=f"{command} {label}", started=started,
            )  # fmt: skip
        finally:
            with self._lock:
                for uid in unique_ids:
                    self._runs.pop(uid, None)
        if status is None:
            found = timed_out(run_id, self.timeout_seconds, unique_ids, invocation)
        else:
            cancelled = run_id in self._cancelled
            found = results_of(self._client, run_id, status, unique_ids, invocation, cancelled)
        return {uid: self._secrets.scrub_result(r) for uid, r in found.items()}

    def _delete_orphans_once(self) -> None:
        with self._lock:
            due, self._orphans_checked = not self._orphans_checked, True
        if due and self.cleanup_orphans:
            self.delete_orphans()

    def delete_orphans(self) -> list[int]:
        """Delete the prefix's jobs that no running build owns (see the class
        docstring), cancelling their runs still in progress; returns their ids."""
        orphans = self._jobs.orphans(self.orphan_after_seconds)
        for job_id, why in orphans.items():
            _LOG.info("deleting the orphaned dbt Cloud job %s (%s)", job_id, why)
            self._jobs.delete_orphan(job_id)
        return sorted(orphans)


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
