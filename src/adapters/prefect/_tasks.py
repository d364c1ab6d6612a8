"""The Prefect tasks: one per node (PER_NODE) or one per wave (PER_WAVE).

On the thread pool, task parameters are plain strings (a run key and
unique_ids), so Prefect hashes and records nothing heavy; the run's objects
are looked up in a registry that lives as long as the run. In another
process (a process pool, a Dask worker) the registry is not there: the task
is also given a ``WorkerNodes``, plain values from which the worker opens its
own dbt session once per build (``_workers``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
from prefect import State, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import task_run
from prefect.states import Completed

from prefect_dbt_orchestrator.adapters.prefect._guards import (
    SlotTimeout,
    Watchdog,
    holding_slot,
)
from prefect_dbt_orchestrator.adapters.prefect._stop import BuildStop
from prefect_dbt_orchestrator.adapters.prefect._workers import (
    SESSIONS,
    WorkerNodes,
    running_here,
)
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.graph import TEST_TYPES
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus, failure_line
from prefect_dbt_orchestrator.domain.plan import PlannedNode
from prefect_dbt_orchestrator.domain.schedule import blocks_dependents
from prefect_dbt_orchestrator.domain.transience import is_retryable
from prefect_dbt_orchestrator.ports.executor import DbtExecutor, ExecutorUnavailable


@attrs.frozen
class RunContext:
    """What the tasks of one build share."""

    executor: DbtExecutor
    nodes: Mapping[str, Node]
    planned: Mapping[str, PlannedNode]
    invocation: InvocationOptions
    concurrency_limit: str | None = None
    concurrency_timeout: float | None = None
    timeouts: Mapping[str, float | None] = attrs.Factory(dict)
    stop: BuildStop = attrs.Factory(BuildStop)


_RUNS: dict[str, RunContext] = {}
_RUNS_LOCK = threading.Lock()


@contextlib.contextmanager
def registered(context: RunContext) -> Iterator[str]:
    """Register ``context`` for the tasks of one build; yields its key."""
    key = uuid.uuid4().hex
    with _RUNS_LOCK:
        _RUNS[key] = context
    try:
        yield key
    finally:
        with _RUNS_LOCK:
            del _RUNS[key]


@contextlib.contextmanager
def build_context(run_key: str, remote: WorkerNodes | None) -> Iterator[RunContext]:
    """The build's context: from the registry in the build's own process, else
    this worker's dbt session for the build (opened by its first node here).

    Raises:
        ExecutorUnavailable: neither is there (a task runner in another process
            was not announced to the orchestrator), or the session cannot open.
    """
    context = _RUNS.get(run_key)
    if context is not None:
        yield context
        return
    if remote is None:
        raise ExecutorUnavailable(
            "prefect",
            f"this node task runs in another process (pid {os.getpid()}) than its build, "
            "and was given nothing to open a dbt session with",
            "pass the task runner to the orchestrator: PrefectDbtOrchestrator(task_runner=...)",
        )
    build = remote.build
    with running_here(build, remote.nodes), SESSIONS.using(build) as session:
        if not session.announced:
            session.announced = True
            get_run_logger().info(
                "worker pid %d opened its dbt session for this build in %.2f s",
                os.getpid(),
                session.opened_in,
            )
        yield RunContext(
            session.executor,
            remote.nodes,
            remote.planned,
            build.invocation,
            build.concurrency_limit,
            build.concurrency_timeout,
            remote.timeouts,
            session.stop,
        )


@attrs.frozen(repr=False)
class NodeFailed(Exception):
    """Raised by a node task so Prefect marks it failed (and retries it).

    Its repr is its one-line message: Prefect writes the repr into its log
    lines and state messages, where a dataclass dump would be noise.
    """

    result: NodeResult

    def __str__(self) -> str:
        result = self.result
        status = result.dbt_status.value if result.dbt_status else result.status.value
        return f"{result.unique_id} {status}: {failure_line(result)}"

    __repr__ = __str__

    def __reduce__(self) -> tuple[Any, ...]:  # see OrchestrationError.__reduce__
        return (type(self), (self.result,))


@attrs.frozen(repr=False)
class WaveFailed(Exception):
    """Raised by a wave task holding a failed node, so Prefect marks the wave
    Failed; it carries every result of the wave."""

    results: Mapping[str, NodeResult]

    def __str__(self) -> str:
        failed = [str(NodeFailed(r)) for _, r in sorted(self.results.items()) if r.is_failure]
        return f"{len(failed)} node(s) of the wave failed: " + "; ".join(failed)

    __repr__ = __str__

    def __reduce__(self) -> tuple[Any, ...]:  # see OrchestrationError.__reduce__
        return (type(self), (dict(self.results),))


def worth_retrying(_task: object, _task_run: object, state: State[Any]) -> bool:
    """Prefect's retry condition for a node task: a node whose error is
    deterministic (a SQL or compilation error, a timeout) is not retried; a
    dropped connection, a deadlock or an error we cannot tell is."""
    failure = state.result(raise_on_failure=False)
    if isinstance(failure, NodeFailed):
        return is_retryable(failure.result)
    return True  # the task itself failed (a lost API call, a dead worker session)


@task(
    name="dbt-node",
    task_run_name="{unique_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
    retry_condition_fn=worth_retrying,
)
def run_node_task(run_key: str, unique_id: str, remote: WorkerNodes | None = None) -> NodeResult:
    """Run one node; raise NodeFailed when its failure blocks its dependents.

    A node cancelled because the build is stopping returns (is not retried);
    the driver ends it as interrupted.
    """
    with build_context(run_key, remote) as context:
        return _run_node(context, unique_id)


def _run_node(context: RunContext, unique_id: str) -> NodeResult:
    try:
        with (
            holding_slot(
                context.concurrency_limit, context.concurrency_timeout, unique_id, get_run_logger()
            ),
            Watchdog(context.executor, unique_id, context.timeouts.get(unique_id)) as watchdog,
        ):
            result = context.executor.run_node(context.nodes[unique_id], options=context.invocation)
        result = watchdog.judge(result)
    except SlotTimeout as waited:
        result = waited.result_for(unique_id)
    result = attrs.evolve(result, attempts=int(task_run.run_count or 1))
    if context.stop.requested:
        return result
    if blocks_dependents(context.planned[unique_id], result):
        raise NodeFailed(result)
    return result


@task(
    name="dbt-skipped",
    task_run_name="{unique_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def skipped_node_task(unique_id: str, reason: str) -> State[None]:
    """A task run that shows a node dbt would skip, in a state named Skipped."""
    return Completed(name="Skipped", message=f"{unique_id} skipped: {reason}")


@task(
    name="dbt-cached",
    task_run_name="{unique_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def cached_node_task(unique_id: str, cache_key: str, cached_at: str) -> State[None]:
    """A task run that shows a node served from the cache, in a state named Cached."""
    return Completed(
        name="Cached", message=f"{unique_id} served from cache {cache_key} ({cached_at})"
    )


@task(name="dbt-cached-wave", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def cached_wave_task(unique_ids: Sequence[str]) -> State[None]:
    """One task run for the nodes of a wave served from the cache (PER_WAVE)."""
    return Completed(name="Cached", message=f"{len(unique_ids)} node(s) served from cache")


def _retryable(result: NodeResult, planned: PlannedNode, retry_tests: bool) -> bool:
    if result.status is not NodeStatus.ERROR or not is_retryable(result):
        return False
    return retry_tests or planned.resource_type not in TEST_TYPES


def _run_wave_once(context: RunContext, todo: Sequence[str]) -> dict[str, NodeResult]:
    """One dbt invocation for ``todo``; each node's timeout is watched from its
    own start to its own end."""
    limit, logger = context.concurrency_limit, get_run_logger()
    label = f"a wave of {len(todo)} node(s)"
    dogs: dict[str, Watchdog] = {}

    def watched(unique_id: str) -> Watchdog:
        dogs[unique_id] = Watchdog(context.executor, unique_id, context.timeouts.get(unique_id))
        return dogs[unique_id]

    try:
        with holding_slot(limit, context.concurrency_timeout, label, logger):
            batch = context.executor.run_wave(
                [context.nodes[uid] for uid in todo],
                options=context.invocation,
                around_node=watched,
            )
    except SlotTimeout as waited:
        return {uid: waited.result_for(uid) for uid in todo}
    wanted = set(todo)
    return {
        uid: dogs[uid].judge(result) if uid in dogs else result
        for uid, result in batch.items()
        if uid in wanted
    }


@task(name="dbt-wave", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def run_wave_task(
    run_key: str,
    unique_ids: Sequence[str],
    retries: int,
    retry_delay: float,
    retry_tests: bool,
    remote: WorkerNodes | None = None,
) -> dict[str, NodeResult]:
    """Run one wave in one dbt invocation; re-run only its failed nodes on retry."""
    with build_context(run_key, remote) as context:
        return _run_wave(context, unique_ids, retries, retry_delay, retry_tests)


def _run_wave(
    context: RunContext,
    unique_ids: Sequence[str],
    retries: int,
    retry_delay: float,
    retry_tests: bool,
) -> dict[str, NodeResult]:
    results: dict[str, NodeResult] = {}
    todo = list(unique_ids)
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(retry_delay)
        batch = _run_wave_once(context, todo)
        for uid in todo:
            if uid in batch:
                results[uid] = attrs.evolve(batch[uid], attempts=attempt)
        if context.stop.requested:
            return results
        todo = [
            uid
            for uid in todo
            if uid in results and _retryable(results[uid], context.planned[uid], retry_tests)
        ]
        if not todo:
            break
    if any(blocks_dependents(context.planned[uid], r) for uid, r in results.items()):
        raise WaveFailed(results)
    return results
