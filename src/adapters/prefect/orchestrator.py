"""PrefectDbtOrchestrator: the public entry point, and the composition root.

It reads the manifest through the executor, selects and plans in pure
Python (no ``dbt ls``), runs the plan with Prefect tasks, and returns the
result contract's dict. Nothing runs before every option is checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import State, flow
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.settings import Settings
from prefect.states import Cancelled, Failed
from prefect.task_runners import TaskRunner

from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor
from prefect_dbt_orchestrator.adapters.local.build_lock import build_lock
from prefect_dbt_orchestrator.adapters.prefect._api import (
    api_lost,
    check_prefect_api,
    own_client_settings,
    stop_retrying,
)
from prefect_dbt_orchestrator.adapters.prefect._artifacts import API_CHECK_SECONDS, report_build
from prefect_dbt_orchestrator.adapters.prefect._assets import AssetEvents
from prefect_dbt_orchestrator.adapters.prefect._build import BuildCall, BuildSteps, with_dropped
from prefect_dbt_orchestrator.adapters.prefect._cache_policy import CachePolicyFactory
from prefect_dbt_orchestrator.adapters.prefect._caching import (
    _UNSET,
    CacheConfig,
    CacheSetup,
    Storage,
    fold_cache_options,
)
from prefect_dbt_orchestrator.adapters.prefect._composition import (
    build_outcome,
    refuse_local_only,
    returned_by_own_flow,
    selector_for,
)
from prefect_dbt_orchestrator.adapters.prefect._driver import (
    ProgressLog,
)
from prefect_dbt_orchestrator.adapters.prefect._freshness import FreshnessCheck, require_state
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions, fold_run_options
from prefect_dbt_orchestrator.adapters.prefect._planning import BuildPlanner
from prefect_dbt_orchestrator.adapters.prefect._retry import (
    previous_run,
    with_carried_over,
)
from prefect_dbt_orchestrator.adapters.prefect._run import PlanRun, run_plan
from prefect_dbt_orchestrator.adapters.prefect._stop import (
    BuildStop,
)
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.cli_args import check_extra_args
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    OrchestrationError,
)
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.result_codec import results_to_dict
from prefect_dbt_orchestrator.domain.retry import PreviousRun
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from prefect_dbt_orchestrator.ports.executor import DbtExecutor
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector

_LOG = logging.getLogger("prefect_dbt_orchestrator")


def _logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    return get_run_logger() if FlowRunContext.get() else _LOG


class PrefectDbtOrchestrator:
    """Runs a dbt project's DAG under Prefect, node by node or wave by wave.

    See the README for every parameter. ``concurrency`` is an int (how many
    nodes run at once) or the name of a Prefect global concurrency limit held
    around each dbt call (``concurrency_limit_name`` is the older spelling).
    ``task_tags=True`` tags each node's task run with its resource type,
    materialization and dbt tags; it is off by default because Prefect checks
    tag concurrency limits for every tagged task run (one API call and a
    database lock each: 3-4x slower PER_NODE builds on a SQLite-backed server).
    ``task_runner`` is where node (or wave) tasks run: any Prefect task runner,
    started for each build. None (the default) is the flow's own, Prefect's
    thread pool: one dbt session in this process. On a process pool or a Dask
    cluster each worker process opens its own session once per build
    (the warehouse must take writes from many processes: not a DuckDB file).

    Raises:
        OptionsConflictError: a bad value, or options that cannot go together
            (a ``ValueError``), before anything runs.
    """

    def __init__(
        self,
        *,
        settings: PrefectDbtSettings | None = None,
        manifest_path: Path | str | None = None,
        executor: DbtExecutor | None = None,
        execution_mode: ExecutionMode | str = ExecutionMode.PER_WAVE,
        test_strategy: TestStrategy | str = TestStrategy.IMMEDIATE,
        threads: int | None = None,
        concurrency: int | str | None = None,
        concurrency_limit_name: str | None = None,
        retries: int = 0,
        retry_delay_seconds: float = 0,
        retry_tests: bool = False,
        raise_on_failure: bool = True,
        state_path: Path | str | None = None,
        defer: bool = False,
        defer_state_path: Path | str | None = None,
        favor_state: bool = False,
        create_summary_artifact: bool = True,
        task_tags: bool = False,
        selection_engine: str | NodeSelector = "python",
        node_timeout_seconds: float | None = None,
        timeout_seconds: float | None = None,
        concurrency_timeout_seconds: float | None = None,
        write_run_results: bool = False,
        disable_assets: bool = False,
        include_compiled_code: bool = False,
        cache: CacheConfig | None = None,
        enable_caching: bool | None = None,
        cache_expiration: timedelta | None = _UNSET,
        result_storage: Storage = None,
        cache_key_storage: Storage = None,
        use_source_freshness_expiration: bool = False,
        cache_policy_factory: CachePolicyFactory | None = None,
        task_runner: TaskRunner[Any] | None = None,
    ) -> None:
        self.options: RunOptions = fold_run_options(
            execution_mode=execution_mode,
            test_strategy=test_strategy,
            concurrency=concurrency,
            concurrency_limit_name=concurrency_limit_name,
            threads=threads,
            retries=retries,
            retry_delay_seconds=retry_delay_seconds,
            retry_tests=retry_tests,
            raise_on_failure=raise_on_failure,
            state_path=state_path,
            defer=defer,
            defer_state_path=defer_state_path,
            favor_state=favor_state,
            create_summary_artifact=create_summary_artifact,
            task_tags=task_tags,
            node_timeout_seconds=node_timeout_seconds,
            timeout_seconds=timeout_seconds,
            concurrency_timeout_seconds=concurrency_timeout_seconds,
            write_run_results=write_run_results,
            disable_assets=disable_assets,
            include_compiled_code=include_compiled_code,
        )
        self.cache_setup: CacheSetup | None = fold_cache_options(
            cache=cache,
            enable_caching=enable_caching,
            cache_expiration=cache_expiration,
            result_storage=result_storage,
            cache_key_storage=cache_key_storage,
            use_source_freshness_expiration=use_source_freshness_expiration,
            cache_policy_factory=cache_policy_factory,
        )
        self.task_runner = task_runner
        self.settings = settings or PrefectDbtSettings()
        self.manifest_path = Path(manifest_path).resolve() if manifest_path is not None else None
        self.executor: DbtExecutor = executor or DbtCoreExecutor(
            self.settings, manifest_path=self.manifest_path
        )
        refuse_local_only(self.executor, self.options, selection_engine, manifest_path)
        self.selector: NodeSelector = selector_for(selection_engine, self.settings)
        self._steps = BuildSteps(
            self.executor, self.settings.project_dir, self.options.state_path, self.cache_setup
        )
        self._stop: BuildStop | None = None  # the running build's
        self._last_stop: BuildStop | None = None  # the last build's, read after it ends
        self._last_payload: dict[str, dict[str, Any]] | None = None  # its results, likewise
        self._own_settings: Settings | None = None  # Prefect's, for a flow run of our own

    def run_build(
        self,
        select: str | None = None,
        exclude: str | None = None,
        full_refresh: bool = False,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
        selector: str | None = None,
        *,
        resource_types: Sequence[str] = (),
        exclude_resource_types: Sequence[str] = (),
        indirect_selection: str = "eager",
        only_fresh_sources: bool = False,
        retry_failed: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Build the selected nodes (models, seeds, snapshots, tests) like ``dbt build``.

        ``resource_types``, ``exclude_resource_types`` and ``indirect_selection``
        are dbt's ``--resource-type``, ``--exclude-resource-type`` and
        ``--indirect-selection`` (eager, cautious, buildable, empty).
        ``retry_failed=True`` runs only the nodes that errored or were skipped
        in the previous run (the target dir's ``run_results.json``, as ``dbt
        retry`` does), with its flags; the other results are carried over.
        Returns the result dict keyed by unique_id (see the README).

        Raises:
            DbtBuildFailed: some node errored and ``raise_on_failure`` is on
                (raised after everything else ran; it carries the results).
            PlanError: bad input (selector, flags, manifest, no previous run to
                retry), before anything runs.
        """
        request = SelectionRequest(
            select=select,
            exclude=exclude,
            selector=selector,
            resource_types=tuple(resource_types),
            exclude_resource_types=tuple(exclude_resource_types),
            indirect_selection=indirect_selection,
        )
        require_state(only_fresh_sources, self.options.state_path)
        strategy = self.options.test_strategy
        if retry_failed:
            previous = previous_run(self.settings.target_dir, request, only_fresh_sources)
            return self._run(
                previous.selection(),
                strategy,
                full_refresh or previous.full_refresh,
                target or previous.target,
                previous.replayed_extra_args(extra_cli_args or ()),
                retry=previous,
            )
        return self._run(
            request, strategy, full_refresh, target, extra_cli_args, only_fresh=only_fresh_sources
        )

    def run_seed(
        self,
        select: str | None = None,
        exclude: str | None = None,
        full_refresh: bool = False,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Load the selected seeds only, like ``dbt seed``."""
        request = SelectionRequest(select=select, exclude=exclude, resource_types=("seed",))
        return self._run(request, TestStrategy.SKIP, full_refresh, target, extra_cli_args, "seed")

    def run_snapshot(
        self,
        select: str | None = None,
        exclude: str | None = None,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the selected snapshots only, like ``dbt snapshot``."""
        request = SelectionRequest(select=select, exclude=exclude, resource_types=("snapshot",))
        return self._run(request, TestStrategy.SKIP, False, target, extra_cli_args, "snapshot")

    def run_test(
        self,
        select: str | None = None,
        exclude: str | None = None,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the data and unit tests of the selection, like ``dbt test``."""
        request = SelectionRequest(
            select=select, exclude=exclude, resource_types=("test", "unit_test")
        )
        return self._run(request, TestStrategy.IMMEDIATE, False, target, extra_cli_args, "test")

    def _run(
        self,
        request: SelectionRequest,
        strategy: TestStrategy,
        full_refresh: bool,
        target: str | None,
        extra_cli_args: Sequence[str] | None,
        command: str = "build",
        only_fresh: bool = False,
        retry: PreviousRun | None = None,
    ) -> dict[str, dict[str, Any]]:
        extra = tuple(extra_cli_args or ())
        warnings = check_extra_args(extra)
        invocation = self.options.invocation(full_refresh, target, extra)
        call = BuildCall(request, strategy, invocation, warnings, only_fresh, command, retry)
        if FlowRunContext.get() is not None:
            return self._execute(call)
        # Called outside a flow: run in a flow of our own, which ends Failed
        # when a node errored, whatever raise_on_failure says for the caller;
        # first make sure the Prefect API answers (in seconds, not 25 s of retries).
        check_prefect_api()
        self._last_payload = None
        adhoc = flow(name="dbt-orchestrator", log_prints=False)(self._execute_in_own_flow)
        try:
            with own_client_settings() as self._own_settings:
                state = adhoc(call, return_state=True)
            outcome: object = state.result(raise_on_failure=False)
        except Exception as exc:  # Prefect itself failed, e.g. its API went away
            outcome = exc
        finally:
            self._own_settings = None
        return returned_by_own_flow(outcome, self._built(), self.options.raise_on_failure)

    def _built(self) -> dict[str, dict[str, Any]] | None:
        """The results of the build that ran last (set by ``_execute``)."""
        return self._last_payload

    def _execute_in_own_flow(self, call: BuildCall) -> dict[str, dict[str, Any]] | State[Any]:
        """The build as a flow of its own: Failed (with the results) when a node
        errored, returned as a state so that Prefect logs no traceback for it."""
        try:
            return self._execute(call, raise_errors=True)
        except BuildInterrupted as stopped:  # the flow run ends Cancelled
            return Cancelled(message=str(stopped), data=stopped)
        except OrchestrationError as failed:  # a node error, or the build could not run:
            return Failed(message=str(failed), data=failed)  # a state, so no traceback

    def plan(
        self,
        select: str | None = None,
        exclude: str | None = None,
        full_refresh: bool = False,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
        selector: str | None = None,
        only_fresh_sources: bool = False,
    ) -> BuildPlan:
        """What ``run_build()`` with the same arguments would run, without running it.

        Starts no dbt process unless the manifest must be parsed first, the
        sources' freshness is checked (``only_fresh_sources``, a freshness-aware
        cache policy), or caching looks at which relations exist.

        Raises:
            PlanError: bad input (selector, flags, manifest).
        """
        check_extra_args(tuple(extra_cli_args or ()))
        require_state(only_fresh_sources, self.options.state_path)
        request = SelectionRequest(select=select, exclude=exclude, selector=selector)
        invocation = self.options.invocation(full_refresh, target, tuple(extra_cli_args or ()))
        return self._planner().dry_run(request, invocation, only_fresh_sources)

    def plan_request(
        self,
        request: SelectionRequest,
        *,
        full_refresh: bool = False,
        target: str | None = None,
        extra_cli_args: Sequence[str] | None = None,
        retry_failed: bool = False,
    ) -> BuildPlan:
        """The plan ``run_build()`` makes for ``request``, made as it makes it (the
        manifest parsed afresh), without running anything. Call it before
        starting a flow run, so that bad input fails with no flow run at all.

        Raises:
            PlanError: bad input (selector, flags, manifest, profile, no
                previous run to retry).
            ExecutorUnavailable: dbt could not parse the project.
        """
        extra = tuple(extra_cli_args or ())
        return self._planner().for_request(request, full_refresh, target, extra, retry_failed)

    def _planner(self) -> BuildPlanner:
        """Made per call: ``executor`` and ``selector`` are public, and may be replaced."""
        return BuildPlanner(
            self.executor, self.selector, self.settings, self.manifest_path, self.options,
            self._steps,
        )  # fmt: skip

    def _execute(
        self, call: BuildCall, raise_errors: bool | None = None
    ) -> dict[str, dict[str, Any]]:
        logger = _logger()
        # One build per target dir, refused before _plan parses or writes target/.
        with build_lock(self.settings.target_dir):
            started = time.perf_counter()
            check = self._planner().checked(call, logger)
            plan = check.build_plan.plan
            logger.info("dbt plan: %d node(s) in %d wave(s)", plan.node_count, len(plan.waves))
            log = ProgressLog(logger, plan.node_count)
            results = self._run_plan(check, call.invocation, log)
            results = with_carried_over(with_dropped(results, check.build_plan), call.retry)
            elapsed = time.perf_counter() - started
            report_build(call, results, check.build_plan, elapsed, self.settings, self.options)
            own = self._own_settings
            if own is not None and api_lost(API_CHECK_SECONDS):  # our flow's end would
                stop_retrying(own)  # retry a dead API for minutes before returning
        self._last_payload = results_to_dict(results)
        raising = self.options.raise_on_failure if raise_errors is None else raise_errors
        return build_outcome(self._last_payload, self._last_stop, raising)

    def _run_plan(
        self, check: FreshnessCheck, invocation: InvocationOptions, log: ProgressLog
    ) -> dict[str, NodeResult]:
        caching = self._steps.cache_preparer(check, invocation)
        build_plan = check.build_plan
        if not self.options.disable_assets and build_plan.manifest is not None:
            log.assets = AssetEvents.for_manifest(
                build_plan.manifest, self.options.include_compiled_code
            )
        manifest = build_plan.manifest
        run = PlanRun(
            build_plan.plan,
            build_plan.nodes,
            invocation,
            self.options,
            caching,
            task_runner=self.task_runner,
            work_dir=self.settings.target_dir,
            adapter_type=manifest.metadata.adapter_type if manifest is not None else None,
        )
        self._stop = self._last_stop = run.stop
        try:
            return run_plan(self.executor, run, log)
        finally:
            self._stop = None

    def stop(self, reason: str = "build stopped by stop()") -> None:
        """Stop the build this orchestrator is running (from another thread): no
        node starts, running queries are cancelled, every node that did not
        finish ends skipped, and ``run_build`` raises ``BuildInterrupted``
        after writing the summary. Does nothing when no build runs."""
        stop = self._stop
        if stop is not None:
            stop.request(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        """A process pool or a Dask cluster sends the flow run's flow to every
        worker, and with it what the flow's code refers to (often this
        orchestrator): it arrives there as a stand-in that cannot build."""
        return (OrchestratorElsewhere, (self.settings.project_dir,))


class OrchestratorElsewhere:
    """A ``PrefectDbtOrchestrator`` unpickled in another process (a task runner's
    worker). Builds run in the flow's own process; here any use is an error."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # what copy, pickle and inspect look for
            raise AttributeError(name)
        raise RuntimeError(
            f"this PrefectDbtOrchestrator (project {self.__dict__.get('project_dir')}) was "
            f"sent to another process by a task runner; use {name} in the flow itself, "
            "not in a task"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (OrchestratorElsewhere, (self.__dict__.get("project_dir"),))
