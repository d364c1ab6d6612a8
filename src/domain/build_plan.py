"""BuildPlan and ``plan_selection``: selection and planning in one pure step.

A BuildPlan is the plan ``run_build()`` executes, plus why each node is in it
(the selector term that matched it, or the indirect-selection rule that
pulled it in), the nodes themselves, what the selection picked, dbt's
selection warnings, the selected nodes that will not run and why, and cache
predictions once caching is configured. ``plan_selection`` is the one place
that composes them: the orchestrator's ``plan()``/``run_build()`` and the
CLI's ``plan`` and ``ls`` all call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import Plan, plan_build
from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionRequest,
    select,
)
from prefect_dbt_orchestrator.domain.waves import Wave


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _texts(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class BuildPlan:
    """What ``run_build()`` with the same arguments will run.

    Attributes:
        plan: the executable plan (waves, prerequisites).
        reasons: for each planned node, why it is in the plan.
        skipped_nodes: selected nodes dropped before running, with the reason
            (source freshness; nodes the selection did not match are not listed).
        cache_predictions: ``hit``/``miss``/``excluded`` per node, when caching is on.
        nodes: the graph member of each planned node, so drivers need no graph.
        selected: every id the selection picked, planned or not (what ``dbt ls`` lists).
        warnings: dbt's selection warnings, one per ``--select``/``--exclude``
            term that matched no enabled node.
        cache_reasons: why each predicted miss (or exclusion) runs.
        manifest: the manifest the plan was made from (what cache keys read).
    """

    plan: Plan
    reasons: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    skipped_nodes: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    cache_predictions: Mapping[str, str] | None = None
    nodes: Mapping[str, Node] = attrs.field(factory=dict, converter=_read_only)
    selected: frozenset[str] = attrs.field(default=frozenset(), converter=_ids)
    warnings: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    cache_reasons: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    manifest: Manifest | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def waves(self) -> tuple[Wave, ...]:
        return self.plan.waves

    @property
    def node_count(self) -> int:
        return self.plan.node_count

    @property
    def estimated_parallelism(self) -> int:
        """Width of the widest wave (PER_NODE's eager start can briefly exceed it)."""
        return self.plan.estimated_parallelism

    def explain(self, unique_id: str) -> str:
        """One line: why ``unique_id`` is in the plan and what it waits for.

        Raises:
            KeyError: the node is not in the plan.
        """
        node = self.plan.nodes[unique_id]
        waits = ", ".join(sorted(node.waits_for)) or "nothing"
        why = self.reasons.get(unique_id, "selected")
        return f"{unique_id}: {why}; waits for {waits}"

    def __str__(self) -> str:
        from prefect_dbt_orchestrator.domain.render import render_build_plan

        return render_build_plan(self)


def build_plan_to_dict(build_plan: BuildPlan) -> dict[str, Any]:
    """The plan as plain JSON data (the ``--json`` form)."""
    plan = build_plan.plan
    return {
        "node_count": plan.node_count,
        "wave_count": len(plan.waves),
        "estimated_parallelism": plan.estimated_parallelism,
        "test_strategy": plan.test_strategy.value,
        "waves": [list(wave.node_ids) for wave in plan.waves],
        "nodes": {
            uid: {
                "resource_type": node.resource_type.value,
                "materialized": node.materialized,
                "wave": next(w.index for w in plan.waves if uid in w.node_ids),
                "why": build_plan.reasons.get(uid, "selected"),
                "waits_for": sorted(node.waits_for),
                **_cache_fields(build_plan, uid),
            }
            for uid, node in sorted(plan.nodes.items())
        },
        "left_out": dict(sorted(plan.left_out.items())),
        "skipped_nodes": dict(sorted(build_plan.skipped_nodes.items())),
    }


def _cache_fields(build_plan: BuildPlan, uid: str) -> dict[str, str]:
    if build_plan.cache_predictions is None:
        return {}
    fields = {"cache": build_plan.cache_predictions.get(uid, "excluded")}
    if uid in build_plan.cache_reasons:
        fields["cache_reason"] = build_plan.cache_reasons[uid]
    return fields


class SelectNodes(Protocol):
    """A selection engine: the ``select`` method of a ``NodeSelector``."""

    def __call__(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection: ...


def plan_selection(
    manifest: Manifest,
    request: SelectionRequest,
    context: SelectionContext | None = None,
    strategy: TestStrategy = TestStrategy.IMMEDIATE,
    *,
    selector: SelectNodes | None = None,
) -> BuildPlan:
    """Select, then plan what a build of the selection runs; the graph is built once.

    Args:
        manifest: the project's manifest.
        request: the selection flags.
        context: data from outside the manifest (files, YAML selectors, artifacts).
        strategy: where tests go in the plan.
        selector: another selection engine (``dbt ls``); None is the pure-Python
            engine, which reuses the graph built here.

    Raises:
        PlanError: bad input: a selection error (``domain.selection.errors``), a
            selected id the manifest lacks, or a dependency cycle.
    """
    context = context if context is not None else SelectionContext()
    graph = build_graph(manifest)
    if selector is None:
        selection = select(manifest, request, context, graph=graph)
    else:
        selection = selector(manifest, request, context)
    plan = plan_build(graph, selection.unique_ids, strategy)
    return BuildPlan(
        plan,
        {uid: selection.reasons.get(uid, "selected") for uid in plan.nodes},
        nodes={uid: graph.members[uid] for uid in plan.nodes},
        selected=selection.unique_ids,
        warnings=selection.warnings,
        manifest=manifest,
    )


def drop_from_plan(
    build_plan: BuildPlan, dropped: Mapping[str, str], strategy: TestStrategy
) -> BuildPlan:
    """The plan without ``dropped`` (unique_id -> why), planned again so that
    what waits for them waits no more; they are listed in ``skipped_nodes``.

    Raises:
        ValueError: the BuildPlan has no manifest to plan again from.
    """
    planned = {uid: why for uid, why in dropped.items() if uid in build_plan.plan.nodes}
    if not planned:
        return build_plan
    if build_plan.manifest is None:
        raise ValueError("drop_from_plan needs the BuildPlan's manifest (plan_selection sets it)")
    graph = build_graph(build_plan.manifest)
    plan = plan_build(graph, build_plan.selected - planned.keys(), strategy)
    return attrs.evolve(
        build_plan,
        plan=plan,
        reasons={uid: why for uid, why in build_plan.reasons.items() if uid in plan.nodes},
        skipped_nodes={**build_plan.skipped_nodes, **planned},
        nodes={uid: graph.members[uid] for uid in plan.nodes},
    )
