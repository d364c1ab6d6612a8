"""Source freshness before a build: which nodes have no new data to process
(``only_fresh_sources``) and each source's ``max_loaded_at`` for cache keys.

dbt's ``source freshness`` runs once, for the checkable sources upstream of
the plan only, before the build opens its dbt session. The previous check is
``<state_path>/sources.json``, read before this check writes the target dir's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.domain.build_plan import BuildPlan, drop_from_plan
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.freshness import (
    SourceLoad,
    SourcesFileError,
    checkable_sources,
    read_source_loads,
    skip_unchanged,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.ports.executor import DbtExecutor


@attrs.frozen
class FreshnessCheck:
    """What a freshness check changed: the plan, the source state for cache
    keys (None when not asked for), and what to tell the user."""

    build_plan: BuildPlan
    source_state: Mapping[str, str] | None = None
    notes: tuple[str, ...] = ()


def require_state(only_fresh_sources: bool, state_path: Path | None) -> None:
    """``only_fresh_sources`` compares with a previous check: it needs ``state_path``.

    Raises:
        OptionsConflictError: no state_path.
    """
    if only_fresh_sources and state_path is None:
        raise OptionsConflictError(
            "only_fresh_sources=True needs the previous run's sources.json to compare with",
            "pass state_path=Path(...) (a folder with the sources.json of the last "
            "`dbt source freshness`; the target dir works for run-to-run comparisons)",
        )


def _previous(state_path: Path) -> tuple[dict[str, SourceLoad] | None, tuple[str, ...]]:
    path = state_path / "sources.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        note = f"no previous sources.json in {state_path}: every source counts as having new data"
        return None, (note,)
    except json.JSONDecodeError as exc:
        raise SourcesFileError(str(path), f"invalid JSON ({exc.msg})") from exc
    return read_source_loads(data, source=str(path)), ()


def check_sources(
    executor: DbtExecutor,
    build_plan: BuildPlan,
    invocation: InvocationOptions,
    strategy: TestStrategy,
    *,
    only_fresh_sources: bool,
    for_keys: bool,
    state_path: Path | None,
    record: bool,
) -> FreshnessCheck:
    """Run the check when asked to, and drop the nodes with nothing new to read;
    ``record`` (a build, not a dry run) keeps the check as the next previous one.

    Raises:
        ExecutorUnavailable: dbt could not run the check.
        SourcesFileError: the previous sources.json cannot be read.
    """
    manifest = build_plan.manifest
    if not (only_fresh_sources or for_keys) or manifest is None or not build_plan.plan.nodes:
        return FreshnessCheck(build_plan)
    previous: dict[str, SourceLoad] | None = None
    notes: tuple[str, ...] = ()
    if only_fresh_sources and state_path is not None:
        previous, notes = _previous(state_path)
    checkable, _ = checkable_sources(manifest, build_plan.plan.nodes)
    sources = [manifest.sources[uid] for uid in sorted(checkable) if uid in manifest.sources]
    current = executor.source_freshness(sources, options=invocation, record=record)
    state = {uid: _loaded(load) for uid, load in current.items()} if for_keys else None
    if not only_fresh_sources:
        return FreshnessCheck(build_plan, state, notes)
    skips = skip_unchanged(manifest, build_plan.plan.nodes, current, previous)
    notes += tuple(
        f"source {uid} counts as having new data: {why}"
        for uid, why in sorted(skips.always_fresh.items())
    )
    return FreshnessCheck(drop_from_plan(build_plan, skips.skipped, strategy), state, notes)


def _loaded(load: SourceLoad) -> str:
    return load.max_loaded_at.isoformat() if load.max_loaded_at else f"<{load.status}>"
