"""Run a plan under Prefect: the build's shared context, its guards, its driver.

The orchestrator plans; this module runs the plan it gets: it checks a named
concurrency limit, opens the executor's session, installs what stops a build
(signals, the build timeout) and hands the plan to the per-node or per-wave
driver. Every planned node comes back with exactly one result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from prefect.context import FlowRunContext
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from prefect_dbt_orchestrator.adapters.prefect._caching import BuildCache
from prefect_dbt_orchestrator.adapters.prefect._driver import (
    ProgressLog,
    run_per_node,
    run_per_wave,
)
from prefect_dbt_orchestrator.adapters.prefect._guards import check_limit
from prefect_dbt_orchestrator.adapters.prefect._logs import engine_lines_quieted
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect._runner import Runner
from prefect_dbt_orchestrator.adapters.prefect._stop import BuildStop, stop_after, stop_on_signals
from prefect_dbt_orchestrator.adapters.prefect._tasks import RunContext, registered
from prefect_dbt_orchestrator.adapters.prefect._workers import WorkerBuild, worker_build
from prefect_dbt_orchestrator.domain.caching import Prediction, count_predictions
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.plan import Plan
from prefect_dbt_orchestrator.domain.timeouts import node_timeout
from prefect_dbt_orchestrator.ports.executor import DbtExecutor

# After a stop, the running queries are cancelled again this often until the
# build ends, so that one started just after the first cancel is not missed.
CANCEL_REPEAT_SECONDS = 1.0


@attrs.frozen
class PlanRun:
    """One build's plan with what running it needs."""

    plan: Plan
    nodes: Mapping[str, Node]
    invocation: InvocationOptions
    options: RunOptions
    prepare_cache: Callable[[], BuildCache] | None = None  # after start_run: it reads relations
    stop: BuildStop = attrs.Factory(BuildStop)
    task_runner: TaskRunner[Any] | None = None  # None: the flow's own
    work_dir: Path | None = None  # where a build for other processes keeps its folder
    adapter_type: str | None = None  # the manifest's


def run_plan(executor: DbtExecutor, run: PlanRun, log: ProgressLog) -> dict[str, NodeResult]:
    """Run ``run.plan`` with ``executor``; ``run.stop`` stops it.

    Raises:
        ConcurrencyLimitError: the named limit cannot give a slot (before anything runs).
        ExecutorUnavailable: dbt cannot start.
    """
    if not run.plan.nodes:
        return {}
    options = run.options
    if options.concurrency_limit is not None:
        check_limit(options.concurrency_limit)
    with _task_runner(run.task_runner) as task_runner:
        in_process = isinstance(task_runner, ThreadPoolTaskRunner)
        if not in_process:
            _refuse_single_writer(run.adapter_type, task_runner)
        context = _context(executor, run)
        runnable = [uid for uid in sorted(run.plan.nodes) if not run.plan.nodes[uid].is_no_op]
        executor.start_run([run.nodes[uid] for uid in runnable], options=run.invocation)
        try:
            if run.prepare_cache is not None:
                log.cache = run.prepare_cache()
                _log_cache(log)
            with (
                _for_workers(executor, context, run, not in_process) as remote,
                registered(context) as key,
                engine_lines_quieted(),
                stop_on_signals(run.stop),
                stop_after(run.stop, options.timeout_seconds),
            ):
                watch = isinstance(task_runner, ProcessPoolTaskRunner)
                runner = Runner(task_runner, remote, watch_pids=watch)
                drive = run_per_node
                if options.execution_mode is ExecutionMode.PER_WAVE:
                    drive = run_per_wave
                return drive(run.plan, context, key, options, log, runner)
        finally:
            run.stop.end()
            executor.finish_run()


@contextlib.contextmanager
def _task_runner(given: TaskRunner[Any] | None) -> Iterator[TaskRunner[Any]]:
    """The orchestrator's task runner, started for this build, else the flow's."""
    if given is not None:
        with given.duplicate() as started:
            yield started
        return
    context = FlowRunContext.get()
    if context is None or context.task_runner is None:  # never in a flow run
        with ThreadPoolTaskRunner[Any]() as default:
            yield default
        return
    yield context.task_runner


def _refuse_single_writer(adapter_type: str | None, task_runner: TaskRunner[Any]) -> None:
    if adapter_type == "duckdb":
        raise OptionsConflictError(
            f"the warehouse is a DuckDB file, which one process at a time may write: node "
            f"tasks cannot run on {type(task_runner).__name__}, in other processes",
            "use the default thread pool task runner (task_runner=None), or a warehouse that "
            "takes writes from many processes (PostgreSQL, Snowflake, ...)",
        )


@contextlib.contextmanager
def _for_workers(
    executor: DbtExecutor, context: RunContext, run: PlanRun, needed: bool
) -> Iterator[WorkerBuild | None]:
    if not needed:
        yield None
        return
    with worker_build(
        executor,
        run.work_dir or Path.cwd(),
        context.invocation,
        run.stop,
        context.concurrency_limit,
        context.concurrency_timeout,
    ) as build:
        yield build


def _log_cache(log: ProgressLog) -> None:
    if log.cache is not None:
        counts = count_predictions(log.cache.decisions.values())
        log.logger.info(
            "dbt cache: %d hit(s), %d miss(es), %d excluded",
            counts[Prediction.HIT],
            counts[Prediction.MISS],
            counts[Prediction.EXCLUDED],
        )


def _context(executor: DbtExecutor, run: PlanRun) -> RunContext:
    """What the build's tasks share; a stop cancels every running query."""
    options, invocation = run.options, run.invocation
    count = options.concurrency
    if options.execution_mode is ExecutionMode.PER_WAVE and count is not None:
        # A wave is one dbt invocation: at most `concurrency` of its nodes at
        # once is dbt's own --threads for that invocation.
        invocation = attrs.evolve(invocation, threads=min(invocation.threads or count, count))
    run.stop.when_requested(executor.cancel, repeat_every=CANCEL_REPEAT_SECONDS)
    timeouts = {
        uid: node_timeout(run.nodes[uid], options.node_timeout_seconds) for uid in run.plan.nodes
    }
    return RunContext(
        executor,
        run.nodes,
        run.plan.nodes,
        invocation,
        options.concurrency_limit,
        options.concurrency_timeout_seconds,
        timeouts,
        run.stop,
    )
