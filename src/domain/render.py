"""Human-readable renderings of plans; pure functions of the data.

The run summary lives in ``domain.summary``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prefect_dbt_orchestrator.domain.plan import Plan

if TYPE_CHECKING:
    from prefect_dbt_orchestrator.domain.build_plan import BuildPlan


def render_build_plan(build_plan: BuildPlan) -> str:
    """The BuildPlan as text, with cache predictions when caching is on."""
    return render_plan(
        build_plan.plan,
        build_plan.cache_predictions,
        build_plan.skipped_nodes,
        build_plan.cache_reasons,
    )


def render_plan(
    plan: Plan,
    cache: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    cache_reasons: Mapping[str, str] | None = None,
) -> str:
    """The plan as text: a header line, then each wave with its nodes."""
    lines = [
        f"BuildPlan: {plan.node_count} node(s) in {len(plan.waves)} wave(s)  |  "
        f"max parallelism = {plan.estimated_parallelism}",
        "",
    ]
    for wave in plan.waves:
        lines.append(f"  Wave {wave.index} ({len(wave.node_ids)} node(s)):")
        for uid in wave.node_ids:
            node = plan.nodes[uid]
            extra = node.materialized if node.materialized != node.resource_type.value else None
            kind = ", ".join(filter(None, (node.resource_type.value, extra)))
            suffix = _cache_suffix(uid, cache, cache_reasons or {})
            lines.append(f"    - {uid} [{kind}]{suffix}")
    predicted = None if cache is None else [cache.get(uid, "excluded") for uid in plan.nodes]
    lines += _plan_footer(predicted, skipped or {})
    return "\n".join(lines) + "\n"


def _cache_suffix(uid: str, cache: Mapping[str, str] | None, reasons: Mapping[str, str]) -> str:
    if cache is None:
        return ""
    why = f", {reasons[uid]}" if uid in reasons else ""
    return f" (cache: {cache.get(uid, 'excluded')}{why})"


def _plan_footer(predicted: list[str] | None, skipped: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    if predicted is not None:
        values = predicted
        lines += [
            "",
            f"  Cache: {values.count('hit')} hit(s), {values.count('miss')} miss(es), "
            f"{values.count('excluded')} excluded",
        ]
    if skipped:
        lines += ["", f"  Skipped before running ({len(skipped)}):"]
        lines += [f"    - {uid}: {why}" for uid, why in sorted(skipped.items())]
    return lines
