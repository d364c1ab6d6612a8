"""In-memory fakes of every port: they behave for real and expose their state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta

import attrs

from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment
from prefect_dbt_orchestrator.domain.commands import InvocationOptions, command_for
from prefect_dbt_orchestrator.domain.freshness import SourceLoad
from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    Invocation,
    NodeResult,
    Timing,
    contract_status,
)
from prefect_dbt_orchestrator.ports.artifact_sink import ArtifactSink
from prefect_dbt_orchestrator.ports.cache_store import CacheEntry, CacheStore
from prefect_dbt_orchestrator.ports.clock import Clock
from prefect_dbt_orchestrator.ports.executor import CacheInputs, DbtExecutor, ExecutorUnavailable


@attrs.define
class FakeClock(Clock):
    """A clock that moves only when told to (``advance``) or ticks per call."""

    current: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    tick: timedelta = timedelta(0)

    def now(self) -> datetime:
        moment = self.current
        self.current += self.tick
        return moment

    def monotonic(self) -> float:
        return self.current.timestamp()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@attrs.define
class FakeExecutor(DbtExecutor):
    """Runs nothing; every node succeeds except those given a status in ``outcomes``.

    ``flaky`` maps a unique_id to how many times it fails before succeeding.
    ``unavailable`` makes every call raise ExecutorUnavailable. ``environment``
    is what cache keys see; ``missing_relations`` are nodes whose relation is gone.
    """

    manifest: Manifest | None = None
    outcomes: Mapping[str, DbtStatus] = attrs.Factory(dict)
    flaky: dict[str, int] = attrs.Factory(dict)
    unavailable: bool = False
    ran: list[str] = attrs.Factory(list)
    waves: list[tuple[str, ...]] = attrs.Factory(list)
    running: int = 0
    peak_running: int = 0
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    started: list[tuple[str, ...]] = attrs.Factory(list)
    finished: int = 0
    cancelled: list[tuple[str, ...] | None] = attrs.Factory(list)
    environment: KeyEnvironment = KeyEnvironment(
        target_name="dev", adapter_type="fake", dbt_version="1.11", adapter_version="0"
    )
    missing_relations: set[str] = attrs.Factory(set)

    loads: dict[str, SourceLoad] = attrs.Factory(dict)  # what source_freshness reports
    freshness_checks: list[tuple[str, ...]] = attrs.Factory(list)

    def source_freshness(
        self, sources: Sequence[Node], *, options: InvocationOptions, record: bool
    ) -> Mapping[str, SourceLoad]:
        ids = tuple(sorted(n.unique_id for n in sources))
        self.freshness_checks.append(ids)
        return {uid: self.loads[uid] for uid in ids if uid in self.loads}

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        if self.unavailable:
            raise ExecutorUnavailable("fake dbt", "told to be unavailable")
        environment = attrs.evolve(self.environment, full_refresh=options.full_refresh)
        existing = {n.unique_id for n in nodes if n.unique_id not in self.missing_relations}
        return CacheInputs(environment, frozenset(existing))

    def load_manifest(
        self, *, target: str | None = None, extra_args: Sequence[str] = (), fresh: bool = False
    ) -> Manifest:
        if self.manifest is None:
            raise ExecutorUnavailable("fake dbt", "no manifest was given to the fake")
        return self.manifest

    def start_run(self, nodes: Sequence[Node], *, options: InvocationOptions) -> None:
        if self.unavailable:
            raise ExecutorUnavailable("fake dbt", "told to be unavailable")
        _refuse_no_ops(nodes)
        self.started.append(tuple(n.unique_id for n in nodes))

    def finish_run(self) -> None:
        self.finished += 1

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        with self._lock:
            self.cancelled.append(None if unique_ids is None else tuple(sorted(unique_ids)))

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        _refuse_no_ops([node])
        self._enter(node.unique_id)
        try:
            return self._result(node, command_for(node.resource_type).value)
        finally:
            with self._lock:
                self.running -= 1

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        _refuse_no_ops(nodes)
        self.waves.append(tuple(n.unique_id for n in nodes))
        for node in nodes:
            with around_node(node.unique_id) if around_node else nullcontext():
                self._enter(node.unique_id)
        with self._lock:
            self.running -= len(nodes)
        return {n.unique_id: self._result(n, "build") for n in nodes}

    def _enter(self, unique_id: str) -> None:
        if self.unavailable:
            raise ExecutorUnavailable("fake dbt", "told to be unavailable")
        with self._lock:
            self.ran.append(unique_id)
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)

    def _result(self, node: Node, command: str) -> NodeResult:
        uid = node.unique_id
        status = self.outcomes.get(uid, DbtStatus.SUCCESS)
        with self._lock:
            if self.flaky.get(uid, 0) > 0:
                self.flaky[uid] -= 1
                status = DbtStatus.ERROR
        error = (
            ErrorInfo(f"{uid} failed (fake)", "FakeError")
            if status.value in ("error", "fail", "runtime error")
            else None
        )
        moment = datetime(2026, 1, 1, tzinfo=UTC)
        return NodeResult(
            uid,
            contract_status(status),
            status,
            message=error.message if error else None,
            timing=Timing(moment, moment),
            invocation=Invocation(command, ("--select", uid)),
            error=error,
        )


def _refuse_no_ops(nodes: Sequence[Node]) -> None:
    """Drivers end exposures and saved queries themselves: dbt runs nothing for them."""
    given = [n.unique_id for n in nodes if is_no_op(n)]
    if given:
        raise AssertionError(f"no-op nodes reached the executor: {', '.join(given)}")


@attrs.define
class FakeCacheStore(CacheStore):
    """A dict of each node's latest entry; ``corrupt`` nodes read as misses, as a
    broken file would; every call is counted."""

    entries: dict[str, CacheEntry] = attrs.Factory(dict)
    corrupt: set[str] = attrs.Factory(set)
    reads: int = 0
    writes: int = 0
    forgotten: list[str] = attrs.Factory(list)

    def latest(self, unique_id: str) -> CacheEntry | None:
        self.reads += 1
        if unique_id in self.corrupt:
            return None
        return self.entries.get(unique_id)

    def put(self, entry: CacheEntry) -> None:
        self.writes += 1
        self.entries[entry.unique_id] = entry
        self.corrupt.discard(entry.unique_id)

    def forget(self, unique_id: str) -> None:
        self.forgotten.append(unique_id)
        self.entries.pop(unique_id, None)


@attrs.define
class FakeArtifactSink(ArtifactSink):
    """Keeps every summary and materialization it was given."""

    summaries: list[str] = attrs.Factory(list)
    materialized: list[tuple[str, tuple[str, ...]]] = attrs.Factory(list)

    def publish_summary(self, *, markdown: str, results: Mapping[str, NodeResult]) -> None:
        self.summaries.append(markdown)

    def record_materialization(
        self, node: Node, result: NodeResult, *, upstream: tuple[Node, ...]
    ) -> None:
        self.materialized.append((node.unique_id, tuple(n.unique_id for n in upstream)))
