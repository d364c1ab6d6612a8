"""Human-readable renderings of plans and results; pure functions of the data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus, failure_line
from prefect_dbt_orchestrator.domain.plan import Plan

if TYPE_CHECKING:
    from prefect_dbt_orchestrator.domain.build_plan import BuildPlan

_ORDER = (NodeStatus.SUCCESS, NodeStatus.CACHED, NodeStatus.ERROR, NodeStatus.SKIPPED)


def count_by_status(results: Mapping[str, NodeResult]) -> dict[str, int]:
    """How many results have each contract status, in a fixed order, zeros left out."""
    counts = {status.value: 0 for status in _ORDER}
    for result in results.values():
        counts[result.status.value] += 1
    return {status: n for status, n in counts.items() if n}


def slowest(results: Mapping[str, NodeResult], limit: int = 5) -> list[tuple[str, float]]:
    """The ``limit`` longest-running nodes with their durations in seconds."""
    timed = [(uid, r.timing.duration_seconds) for uid, r in results.items() if r.timing]
    return sorted(timed, key=lambda item: (-item[1], item[0]))[:limit]


def summary_lines(results: Mapping[str, NodeResult], elapsed: float) -> list[str]:
    """The closing summary: counts by status, failures, slowest nodes."""
    counts = ", ".join(f"{n} {status}" for status, n in count_by_status(results).items())
    lines = [f"dbt build finished in {elapsed:.2f}s: {len(results)} nodes ({counts or 'none'})"]
    for uid in sorted(results):
        result = results[uid]
        if result.status is NodeStatus.ERROR:
            lines.append(f"  error    {_located(uid, result)}: {failure_line(result)}")
    skipped = [uid for uid, r in results.items() if r.status is NodeStatus.SKIPPED]
    if skipped:
        lines.append(f"  skipped  {len(skipped)} node(s) downstream of a failure")
    if slow := slowest(results):
        lines.append("  slowest: " + ", ".join(f"{uid} {secs:.2f}s" for uid, secs in slow))
    return lines


def _located(unique_id: str, result: NodeResult) -> str:
    path = result.error.path if result.error else None
    return f"{unique_id} ({path})" if path else unique_id


def _failure_rows(unique_id: str, result: NodeResult) -> list[str]:
    """A failed node: its cause on the bullet, dbt's whole message below it."""
    rows = [f"- `{_located(unique_id, result)}`: {failure_line(result)}"]
    if result.error is not None and result.error.message.strip() != failure_line(result):
        body = result.error.message.replace("```", "'''").rstrip()
        rows += ["", "  ```text", *(f"  {line}" for line in body.splitlines()), "  ```", ""]
    return rows


def summary_markdown(results: Mapping[str, NodeResult]) -> str:
    """The run summary as markdown (the Prefect artifact's body)."""
    counts = count_by_status(results)
    rows = ["## dbt build summary", "", "| status | nodes |", "|---|---|"]
    rows += [f"| {status} | {n} |" for status, n in counts.items()]
    failed = [uid for uid in sorted(results) if results[uid].status is NodeStatus.ERROR]
    if failed:
        rows += ["", "### Unsuccessful nodes", ""]
        for uid in failed:
            rows += _failure_rows(uid, results[uid])
    skipped = [uid for uid in sorted(results) if results[uid].status is NodeStatus.SKIPPED]
    if skipped:
        rows += ["", "### Skipped nodes", ""]
        rows += [
            f"- `{uid}` (upstream: {', '.join(results[uid].failed_upstream)})" for uid in skipped
        ]
    return "\n".join(rows) + "\n"


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
