"""Where the build's tasks run, and what their futures give back.

``Runner`` is the build's Prefect task runner, with what tasks running in
other processes are given and how their workers are watched. The rest reads
a task's outcome as node results, whatever ended it: its result, its
``NodeFailed`` or ``WaveFailed``, or an exception of the runner itself (a
process-pool worker that died).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import BrokenExecutor
from typing import Any

import attrs
from prefect import State
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from prefect_dbt_orchestrator.adapters.prefect._stop import BuildStop
from prefect_dbt_orchestrator.adapters.prefect._tasks import NodeFailed, RunContext, WaveFailed
from prefect_dbt_orchestrator.adapters.prefect._workers import (
    WorkerBuild,
    WorkerNodes,
    dead_workers,
)
from prefect_dbt_orchestrator.domain.outcomes import (
    ErrorInfo,
    NodeResult,
    NodeStatus,
    missing_result,
)

WORKER_DIED = "WorkerDied"  # the error type of a node whose worker process died
_BROKEN_POOL = frozenset({"BrokenProcessPool", "BrokenExecutor", WORKER_DIED})

# How often a wave's task is looked at while it runs (its worker may have died).
DEATH_WATCH_SECONDS = 0.5


@attrs.frozen
class Runner:
    """Where the build's node and wave tasks run: a Prefect task runner, and,
    when its tasks run in other processes, what they are given there."""

    task_runner: TaskRunner[Any]
    remote: WorkerBuild | None = None
    watch_pids: bool = False  # a process pool: its workers are this machine's processes

    def died(self, unique_ids: Iterable[str]) -> dict[str, NodeResult]:
        """The error results of the nodes among ``unique_ids`` whose worker
        process died (watched on a process pool only)."""
        if self.remote is None or not self.watch_pids:
            return {}
        return {
            uid: NodeResult(
                uid,
                NodeStatus.ERROR,
                message=f"the worker process running it died (pid {pid})",
                error=ErrorInfo(f"the worker process running it died (pid {pid})", WORKER_DIED),
            )
            for uid, pid in dead_workers(self.remote, unique_ids).items()
        }

    def parameters(self, context: RunContext, unique_ids: Iterable[str]) -> dict[str, Any]:
        """The ``remote`` parameter for a task of ``unique_ids`` (none in this process)."""
        if self.remote is None:
            return {}
        ids = list(unique_ids)
        nodes = WorkerNodes(
            self.remote,
            {uid: context.nodes[uid] for uid in ids},
            {uid: context.planned[uid] for uid in ids},
            {uid: context.timeouts.get(uid) for uid in ids},
        )
        return {"remote": nodes}


def node_outcome(unique_id: str, future: PrefectFuture[NodeResult]) -> NodeResult:
    """The node's result whether its task returned it, raised NodeFailed, or
    raised something unexpected (that is the node's error, not the build's end)."""
    try:
        outcome: object = future.result(raise_on_failure=False)
    except Exception as exc:  # the runner itself failed: a process pool whose worker died
        outcome = exc
    if isinstance(outcome, NodeResult):
        return outcome
    if isinstance(outcome, NodeFailed):
        return outcome.result
    if isinstance(outcome, Exception):
        return crashed_result(unique_id, outcome)
    if isinstance(outcome, BaseException):
        raise outcome
    return missing_result(unique_id)


def crashed_result(unique_id: str, exc: Exception) -> NodeResult:
    """The error result of a node whose task raised ``exc`` (a bug, an API error,
    or the death of the worker process it ran in)."""
    kind = type(exc).__name__
    message = f"the node's task raised {kind}: {exc}".rstrip(": ")
    if isinstance(exc, BrokenExecutor):
        message = f"the worker process running it died ({kind}: {exc})"
    return NodeResult(unique_id, NodeStatus.ERROR, message=message, error=ErrorInfo(message, kind))


def pool_broke(result: NodeResult, stop: BuildStop) -> None:
    """After a worker process died, a process pool runs nothing more: stop the
    build (every node not finished ends skipped, with this reason)."""
    if result.error is not None and result.error.type in _BROKEN_POOL and not stop.requested:
        stop.request(
            f"a worker process of the task runner died while running {result.unique_id}; "
            "its process pool cannot run the other nodes (the next build starts a new one)"
        )


def task_ended(future: PrefectFuture[Any], runner: Runner) -> bool:
    """Whether ``future`` ended: after a moment when its worker is watched,
    else once it has."""
    done = getattr(getattr(future, "wrapped_future", None), "done", None)
    if not runner.watch_pids or not callable(done):
        future.wait()
        return True
    future.wait(timeout=DEATH_WATCH_SECONDS)
    return bool(done())


def wave_outcome(state: State[dict[str, NodeResult]], batch: list[str]) -> Mapping[str, NodeResult]:
    """A wave task's results, whether it completed, failed with WaveFailed, or
    raised something unexpected (then each of its nodes ends with that error)."""
    value: object = state.result(raise_on_failure=False)
    if isinstance(value, WaveFailed):
        return value.results
    if isinstance(value, Exception):
        return {uid: crashed_result(uid, value) for uid in batch}
    if isinstance(value, BaseException):
        raise value
    if isinstance(value, dict):
        return {uid: r for uid, r in value.items() if isinstance(r, NodeResult)}
    return {}
