"""BuildPlan: the dry-run answer of ``plan()``; pure.

It is the plan ``run_build()`` executes, plus why each node is in it (the
selector term that matched it, or the indirect-selection rule that pulled it
in), the selected nodes that will not run and why, and cache predictions once
caching is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.plan import Plan
from prefect_dbt_orchestrator.domain.waves import Wave


def _read_only(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class BuildPlan:
    """What ``run_build()`` with the same arguments will run.

    Attributes:
        plan: the executable plan (waves, prerequisites).
        reasons: for each planned node, why it is in the plan.
        skipped_nodes: selected nodes dropped before running, with the reason
            (source freshness; nodes the selection did not match are not listed).
        cache_predictions: ``hit``/``miss``/``excluded`` per node, when caching is on.
    """

    plan: Plan
    reasons: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    skipped_nodes: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    cache_predictions: Mapping[str, str] | None = None

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
                **(
                    {"cache": build_plan.cache_predictions.get(uid, "excluded")}
                    if build_plan.cache_predictions is not None
                    else {}
                ),
            }
            for uid, node in sorted(plan.nodes.items())
        },
        "left_out": dict(sorted(plan.left_out.items())),
        "skipped_nodes": dict(sorted(build_plan.skipped_nodes.items())),
    }
