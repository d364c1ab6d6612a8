"""Drive the domain's Schedule with Prefect tasks, eagerly.

PER_NODE: a node's task is submitted the moment the schedule releases it,
with the futures of what it waits for as ``wait_for`` (so the UI draws the
DAG); at most ``concurrency`` tasks run at once. PER_WAVE: every batch the
schedule releases runs as one task. In both, an exposure or saved query
ends the moment it is released, with its no-op result and no task run, as a
cache hit does: dbt runs nothing for it. Where the tasks run, and how
their outcomes are read, is ``_runner``.
"""

from __future__ import annotations

import copy
import logging
import queue
import signal
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
from prefect import Task, tags
from prefect.futures import PrefectFuture

from prefect_dbt_orchestrator.adapters.prefect._assets import AssetEvents
from prefect_dbt_orchestrator.adapters.prefect._caching import BuildCache
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect._runner import (
    Runner,
    crashed_result,
    node_outcome,
    pool_broke,
    task_ended,
    wave_outcome,
)
from prefect_dbt_orchestrator.adapters.prefect._stop import INTERRUPTED, BuildStop
from prefect_dbt_orchestrator.adapters.prefect._tasks import (
    RunContext,
    cached_node_task,
    cached_wave_task,
    run_node_task,
    run_wave_task,
    skipped_node_task,
)
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import (
    NodeResult,
    NodeStatus,
    failure_line,
    missing_result,
)
from prefect_dbt_orchestrator.domain.plan import Plan
from prefect_dbt_orchestrator.domain.schedule import Progress, Schedule

# How long a stopping build waits for each running node to end once its
# queries are cancelled; a query that ignores the cancel is left behind.
WIND_DOWN_SECONDS = 30.0


def _status_words(result: NodeResult) -> str:
    """``success``, or ``success (pass)`` when dbt's own word says more."""
    dbt = result.dbt_status.value if result.dbt_status else None
    return (
        result.status.value
        if dbt in (None, result.status.value)
        else f"{result.status.value} ({dbt})"
    )


@attrs.define
class ProgressLog:
    """Logs every end as ``[done/total]``, failures at error level with dbt's
    cause, as they happen; and shows each skipped node as a task run in a
    Skipped state, so the Prefect UI lists every planned node."""

    logger: logging.Logger | logging.LoggerAdapter[Any]
    total: int
    done: int = 0
    skip_runs: list[PrefectFuture[Any]] = attrs.Factory(list)
    cache: BuildCache | None = None
    assets: AssetEvents | None = None  # None: disable_assets=True

    def ended(self, result: NodeResult) -> None:
        self.done += 1
        duration = f" in {result.timing.duration_seconds:.2f}s" if result.timing else ""
        line = f"[{self.done}/{self.total}] {_status_words(result)} {result.unique_id}{duration}"
        if result.status is NodeStatus.ERROR:
            self.logger.error("%s: %s", line, failure_line(result))
        else:
            self.logger.info("%s", line)

    def skipped(self, progress: Progress) -> None:
        for skip in progress.skipped:
            self.done += 1
            upstream = ", ".join(skip.failed_upstream)
            self.logger.warning(
                "[%d/%d] skipped %s (upstream failure: %s)",
                self.done,
                self.total,
                skip.unique_id,
                upstream,
            )
            reason = f"{skip.reason}: {upstream}"
            self.skip_runs.append(skipped_node_task.submit(skip.unique_id, reason))

    def abandoned(self, results: tuple[NodeResult, ...]) -> None:
        """Nodes a stop ended before they finished (no task runs: the build is
        on its way out)."""
        for result in results:
            self.done += 1
            self.logger.warning(
                "[%d/%d] skipped %s (%s)", self.done, self.total, result.unique_id, result.reason
            )

    def served(self, result: NodeResult) -> PrefectFuture[Any]:
        """A node served from the cache: logged, and shown as a Cached task run."""
        self.ended(result)
        cached_at = result.cached_at.isoformat() if result.cached_at else ""
        future = cached_node_task.submit(result.unique_id, result.cache_key or "", cached_at)
        self.skip_runs.append(future)
        return future

    def served_wave(self, results: list[NodeResult], index: int) -> None:
        """Nodes of a wave served from the cache: logged, and shown as one Cached
        task run (a task run per node would cost more than the wave saved)."""
        for result in results:
            self.ended(result)
        task = cached_wave_task.with_options(task_run_name=f"cached-{index}")
        self.skip_runs.append(task.submit([r.unique_id for r in results]))

    def wait(self) -> None:
        """Wait for the Skipped task runs (a flow must not end before its tasks)."""
        for future in self.skip_runs:
            future.wait()


def _notify(ended: queue.Queue[str], unique_id: str) -> Callable[[PrefectFuture[NodeResult]], None]:
    return lambda _future: ended.put(unique_id)


@attrs.frozen
class NodeTasks:
    """The node task in its two retry settings, made once per build: Prefect's
    ``with_options`` costs tens of milliseconds, far too much per node."""

    retrying: Task[..., NodeResult]
    once: Task[..., NodeResult]
    runner: Runner
    tagged: bool = True

    @classmethod
    def for_options(cls, options: RunOptions, runner: Runner) -> NodeTasks:
        retrying = run_node_task.with_options(
            retries=options.retries, retry_delay_seconds=options.retry_delay_seconds
        )
        once = retrying if options.retry_tests else run_node_task
        return cls(retrying, once, runner, options.task_tags)

    def submit(
        self, context: RunContext, node: Node, run_key: str, upstream: list[PrefectFuture[Any]]
    ) -> PrefectFuture[NodeResult]:
        """Submit ``node``'s task, tagged with its resource type, materialization and tags."""
        is_test = node.resource_type.value in ("test", "unit_test")
        chosen = self.once if is_test else self.retrying
        labels = {node.resource_type.value, *(t for t in (node.materialized,) if t), *node.tags}
        parameters = {"run_key": run_key, "unique_id": node.unique_id}
        parameters |= self.runner.parameters(context, [node.unique_id])
        # Every task-run tag costs an API call for tag concurrency limits
        # (tens of ms per node on a SQLite-backed server): tagging is optional.
        if self.tagged and self.runner.remote is not None:
            # a process pool sends its tasks the context of its first submit
            # only: the tags go on (a shallow copy of) the task itself
            chosen = copy.copy(chosen)
            chosen.tags = set(chosen.tags) | labels
        with tags(*(sorted(labels) if self.tagged and self.runner.remote is None else ())):
            future: PrefectFuture[NodeResult] = self.runner.task_runner.submit(
                chosen, parameters, wait_for=upstream
            )
            return future


def run_per_node(
    plan: Plan,
    context: RunContext,
    run_key: str,
    options: RunOptions,
    log: ProgressLog,
    runner: Runner,
) -> dict[str, NodeResult]:
    """Run every planned node as its own task; returns one result per node.

    When ``context.stop`` is requested no node starts; the running ones end
    (their queries cancelled) and every node that did not finish is skipped.
    """
    schedule = Schedule.start(plan)
    ended: queue.Queue[str] = queue.Queue()
    futures: dict[str, PrefectFuture[NodeResult]] = {}
    waiting = deque(_to_start(schedule, log, schedule.ready()))
    limit = options.concurrency or len(plan.nodes) or 1
    node_tasks = NodeTasks.for_options(options, runner)
    running: set[str] = set()
    try:
        while (waiting or running) and not context.stop.requested:
            while waiting and len(running) < limit:
                uid = waiting.popleft()
                hit = log.cache.hit(uid) if log.cache else None
                if hit is not None:  # nothing to run: released at once
                    futures[uid] = log.served(hit)
                    waiting.extend(_complete(schedule, log, hit))
                    continue
                upstream = [futures[p] for p in plan.nodes[uid].waits_for if p in futures]
                futures[uid] = node_tasks.submit(context, context.nodes[uid], run_key, upstream)
                futures[uid].add_done_callback(_notify(ended, uid))
                running.add(uid)
            done = _next_end(ended)
            if done is None and not context.stop.requested:
                for result in runner.died(sorted(running)).values():
                    running.discard(result.unique_id)
                    pool_broke(result, context.stop)
                    waiting.extend(
                        _record(schedule, log, result, futures[result.unique_id].task_run_id)
                    )
            if done is None or context.stop.requested:
                continue  # after a stop, _wind_down reads what ended (a cancel, or not)
            running.discard(done)
            result = node_outcome(done, futures[done])
            pool_broke(result, context.stop)
            waiting.extend(_record(schedule, log, result, futures[done].task_run_id))
    except KeyboardInterrupt:  # SIGINT with no handler of ours (not the main thread)
        context.stop.request(f"{INTERRUPTED} (SIGINT)", signal.SIGINT)
    if context.stop.requested:
        _wind_down(schedule, log, {uid: futures[uid] for uid in running}, context.stop)
    log.wait()
    return dict(schedule.results)


def _next_end(ended: queue.Queue[str]) -> str | None:
    """The next node that ended, or None after a short wait (to see a stop)."""
    try:
        return ended.get(timeout=0.2)
    except queue.Empty:
        return None


def _record(
    schedule: Schedule, log: ProgressLog, result: NodeResult, task_run_id: UUID | None
) -> tuple[str, ...]:
    """A node that ran ended: cache its success, log it, send its asset events
    (``task_run_id`` is its task run's, or its wave's), release what follows."""
    if log.cache is not None:
        result = log.cache.record(result)
    log.ended(result)
    if log.assets is not None:
        log.assets.materialized(result, task_run_id)
    return _complete(schedule, log, result)


def _complete(schedule: Schedule, log: ProgressLog, result: NodeResult) -> tuple[str, ...]:
    progress = schedule.complete(result.unique_id, result)
    log.skipped(progress)
    return _to_start(schedule, log, progress.ready)


def _to_start(schedule: Schedule, log: ProgressLog, released: Iterable[str]) -> tuple[str, ...]:
    """The released nodes to start; the no-op ones (exposures, saved queries)
    end at once and are logged, never sent to dbt."""
    progress = schedule.end_no_ops(released, datetime.now(UTC))
    for result in progress.no_ops:
        log.ended(result)
    return progress.ready


def _wind_down(
    schedule: Schedule,
    log: ProgressLog,
    running: Mapping[str, PrefectFuture[NodeResult]],
    stop: BuildStop,
) -> None:
    """After a stop: keep the successes of the nodes still running (their
    queries are being cancelled), and skip every node that did not finish."""
    for uid, future in sorted(running.items()):
        try:
            future.wait(timeout=WIND_DOWN_SECONDS)
            ended = future.state.is_final()
        except Exception:  # the runner failed (a dead pool worker): the node did not finish
            continue
        if ended:
            result = node_outcome(uid, future)
            if result.status is NodeStatus.SUCCESS:
                _record(schedule, log, result, future.task_run_id)
    log.abandoned(schedule.abandon(stop.reason or INTERRUPTED))


def run_per_wave(
    plan: Plan,
    context: RunContext,
    run_key: str,
    options: RunOptions,
    log: ProgressLog,
    runner: Runner,
) -> dict[str, NodeResult]:
    """Run each batch of ready nodes as one task (one dbt invocation)."""
    stop = context.stop
    schedule = Schedule.start(plan)
    batch = list(_to_start(schedule, log, schedule.ready()))
    index = 0
    try:
        while batch and not stop.requested:
            batch, upcoming = _serve_hits(schedule, log, batch, index)
            if batch:
                results, task_run_id = _run_wave(context, run_key, batch, index, options, runner)
                index += 1
                for uid in batch:
                    result = results.get(uid) or missing_result(uid)
                    if _finished(result, stop):
                        upcoming.extend(_record(schedule, log, result, task_run_id))
                for result in results.values():
                    pool_broke(result, stop)
            batch = [uid for uid in dict.fromkeys(upcoming) if uid not in schedule.results]
    except KeyboardInterrupt:
        stop.request(f"{INTERRUPTED} (SIGINT)", signal.SIGINT)
    if stop.requested:
        log.abandoned(schedule.abandon(stop.reason or INTERRUPTED))
    log.wait()
    return dict(schedule.results)


def _serve_hits(
    schedule: Schedule, log: ProgressLog, batch: list[str], index: int
) -> tuple[list[str], list[str]]:
    """Take the cache hits out of a wave before dbt runs it: the nodes left to
    run, and the nodes the hits released."""
    cache = log.cache
    if cache is None:
        return batch, []
    hits = {uid: hit for uid in batch if (hit := cache.hit(uid)) is not None}
    if not hits:
        return batch, []
    log.served_wave(list(hits.values()), index)
    released: list[str] = []
    for hit in hits.values():
        released.extend(_complete(schedule, log, hit))
    return [uid for uid in batch if uid not in hits], released


def _finished(result: NodeResult, stop: BuildStop) -> bool:
    """Whether ``result`` counts: once a stop is requested, only successes do
    (an error then is most likely the cancel itself)."""
    return result.status is NodeStatus.SUCCESS or not stop.requested


def _run_wave(
    context: RunContext,
    run_key: str,
    batch: list[str],
    index: int,
    options: RunOptions,
    runner: Runner,
) -> tuple[Mapping[str, NodeResult], UUID | None]:
    task = run_wave_task.with_options(task_run_name=f"wave-{index}")
    arguments = (run_key, batch, options.retries, options.retry_delay_seconds, options.retry_tests)
    if runner.remote is None:  # in this thread, as it always ran
        state = task(*arguments, return_state=True)
        return wave_outcome(state, batch), state.state_details.task_run_id
    names = ("run_key", "unique_ids", "retries", "retry_delay", "retry_tests")
    parameters = dict(zip(names, arguments, strict=True))
    parameters |= runner.parameters(context, batch)
    future = runner.task_runner.submit(task, parameters)
    try:
        while not task_ended(future, runner):
            if died := runner.died(batch):
                return died, future.task_run_id  # its worker ran the whole wave
        state = future.state
    except Exception as exc:  # the runner itself failed: a process pool whose worker died
        return {uid: crashed_result(uid, exc) for uid in batch}, future.task_run_id
    return wave_outcome(state, batch), future.task_run_id
