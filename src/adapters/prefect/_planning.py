"""How the orchestrator makes a build's plan: manifest, selection, retry and
freshness, the same way for ``plan()``, ``plan_request()`` and ``run_build()``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.adapters.local.python_selector import PythonSelector
from prefect_dbt_orchestrator.adapters.prefect._build import BuildCall, BuildSteps
from prefect_dbt_orchestrator.adapters.prefect._freshness import FreshnessCheck
from prefect_dbt_orchestrator.adapters.prefect._options import RunOptions
from prefect_dbt_orchestrator.adapters.prefect._retry import previous_run
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan, plan_selection
from prefect_dbt_orchestrator.domain.cli_args import check_extra_args
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.retry import PreviousRun, plan_retry
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from prefect_dbt_orchestrator.ports.executor import DbtExecutor
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector

Logger = logging.Logger | logging.LoggerAdapter[Any]


@attrs.frozen
class BuildPlanner:
    """What planning needs from the orchestrator."""

    executor: DbtExecutor
    selector: NodeSelector
    settings: PrefectDbtSettings
    manifest_path: Path | None
    options: RunOptions
    steps: BuildSteps

    def plan(
        self,
        request: SelectionRequest,
        strategy: TestStrategy,
        invocation: InvocationOptions,
        *,
        fresh: bool,
        retry: PreviousRun | None = None,
    ) -> BuildPlan:
        """The plan, through ``plan_selection`` (the CLI's ``plan`` and ``ls`` use it too);
        it carries the planned nodes (``.nodes``) and dbt's selection ``.warnings``.
        A retry plans the previous run's failed and skipped nodes instead."""
        manifest = self.executor.load_manifest(
            target=invocation.target, extra_args=invocation.extra_args, fresh=fresh
        )
        if retry is not None:
            return plan_retry(manifest, retry, strategy)
        context = selection_context(
            self.settings.project_dir,
            target_dir=self.settings.target_dir,
            state_path=self.options.state_path,
            manifest_path=self.manifest_path,
        )
        engine = None if isinstance(self.selector, PythonSelector) else self.selector.select
        return plan_selection(manifest, request, context, strategy, selector=engine)

    def dry_run(
        self, request: SelectionRequest, invocation: InvocationOptions, only_fresh: bool
    ) -> BuildPlan:
        """``plan()``: the plan from the manifest as it is, freshness checked
        (nothing recorded), with each node's cache prediction."""
        strategy = self.options.test_strategy
        build_plan = self.plan(request, strategy, invocation, fresh=False)
        check = self.steps.check_freshness(
            build_plan, invocation, strategy, only_fresh, record=False
        )
        for note in check.notes:
            logging.getLogger("prefect_dbt_orchestrator").warning("%s", note)
        return self.steps.predicted(check, invocation)

    def for_request(
        self,
        request: SelectionRequest,
        full_refresh: bool,
        target: str | None,
        extra: tuple[str, ...],
        retry_failed: bool,
    ) -> BuildPlan:
        """``plan_request()``: the plan a build makes, the manifest parsed afresh."""
        previous = None
        if retry_failed:
            previous = previous_run(self.settings.target_dir, request, False)
            request, extra = previous.selection(), previous.replayed_extra_args(extra)
            full_refresh, target = full_refresh or previous.full_refresh, target or previous.target
        check_extra_args(extra)
        invocation = self.options.invocation(full_refresh, target, extra)
        strategy = self.options.test_strategy
        return self.plan(request, strategy, invocation, fresh=True, retry=previous)

    def checked(self, call: BuildCall, logger: Logger) -> FreshnessCheck:
        """The build's plan, freshly parsed, after the freshness check; with
        every warning logged."""
        for warning in call.warnings:
            logger.warning("%s", warning)
        build_plan = self.plan(
            call.request, call.strategy, call.invocation, fresh=True, retry=call.retry
        )
        for warning in build_plan.warnings:  # a selector term that matched nothing
            logger.warning("%s", warning)
        check = self.steps.check_freshness(
            build_plan, call.invocation, call.strategy, call.only_fresh_sources, record=True
        )
        for note in check.notes:
            logger.warning("%s", note)
        return check
