"""The steps between a plan and its run that caching and freshness add.

``plan()`` and ``run_build()`` share them, so a dry run predicts exactly what
the build then does: the freshness check (and the nodes it drops), then each
node's cache decision, made before the build (``plan()``) or right after it
opened its dbt session (the build: the relations are then loaded anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.adapters.prefect._cache_policy import needs_source_freshness
from prefect_dbt_orchestrator.adapters.prefect._caching import (
    BuildCache,
    CacheSetup,
    predictions,
    prepare_cache,
)
from prefect_dbt_orchestrator.adapters.prefect._freshness import FreshnessCheck, check_sources
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.retry import PreviousRun
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from prefect_dbt_orchestrator.ports.executor import DbtExecutor


@attrs.frozen
class BuildCall:
    """One ``run_build``/``run_seed``/... call, its options checked."""

    request: SelectionRequest
    strategy: TestStrategy
    invocation: InvocationOptions
    warnings: tuple[str, ...] = ()
    only_fresh_sources: bool = False
    command: str = "build"  # dbt's: what run_results.json records as `which`
    retry: PreviousRun | None = None  # retry_failed=True: the run whose failures run again


@attrs.frozen
class BuildSteps:
    """What the steps need from the orchestrator."""

    executor: DbtExecutor
    project_dir: Path
    state_path: Path | None
    cache: CacheSetup | None = None

    def check_freshness(
        self,
        build_plan: BuildPlan,
        invocation: InvocationOptions,
        strategy: TestStrategy,
        only_fresh_sources: bool,
        *,
        record: bool,
    ) -> FreshnessCheck:
        """Run ``dbt source freshness`` when the build needs it, and drop the
        nodes whose sources have nothing new (``only_fresh_sources``)."""
        for_keys = self.cache is not None and needs_source_freshness(self.cache.policy_factory)
        return check_sources(
            self.executor,
            build_plan,
            invocation,
            strategy,
            only_fresh_sources=only_fresh_sources,
            for_keys=for_keys,
            state_path=self.state_path,
            record=record,
        )

    def predicted(self, check: FreshnessCheck, invocation: InvocationOptions) -> BuildPlan:
        """The checked plan with each node's cache prediction (``plan()``)."""
        build_plan = check.build_plan
        preparer = self.cache_preparer(check, invocation)
        if preparer is None:
            return build_plan
        kinds, reasons = predictions(preparer())
        return attrs.evolve(build_plan, cache_predictions=kinds, cache_reasons=reasons)

    def cache_preparer(
        self, check: FreshnessCheck, invocation: InvocationOptions
    ) -> Callable[[], BuildCache] | None:
        """What decides the build's cache once its session is open; None without caching."""
        if self.cache is None or not check.build_plan.plan.nodes:
            return None
        return functools.partial(
            prepare_cache,
            self.cache,
            self.executor,
            check.build_plan,
            invocation,
            self.project_dir,
            check.source_state,
        )


def with_dropped(results: Mapping[str, NodeResult], build_plan: BuildPlan) -> dict[str, NodeResult]:
    """The build's results plus one ``skipped`` result per node the freshness
    check dropped, with its reason: every selected node is accounted for."""
    merged = dict(results)
    for uid, why in build_plan.skipped_nodes.items():
        merged.setdefault(uid, NodeResult(uid, NodeStatus.SKIPPED, DbtStatus.SKIPPED, reason=why))
    return merged
