"""The run summary: what a build did, read once from its results; pure.

``summarize`` folds the results into a frozen ``RunSummary``; ``summary_markdown``
renders it for the Prefect artifact, ``summary_lines`` for the closing log
lines, and ``node_table`` gives one JSON-safe row per node for a table artifact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus, failure_line

SLOWEST_LIMIT = 10  # nodes in the artifact's slowest table
LINES_SLOWEST_LIMIT = 5  # the closing lines name fewer
SKIP_LIST_LIMIT = 50  # skipped nodes listed under one cause before "... and N more"
NO_REASON = "no reason given"
TITLE = "## dbt build summary"


@attrs.frozen
class StatusCounts:
    """How many nodes ended with each contract status, and with dbt's finer ones."""

    total: int = 0
    success: int = 0
    cached: int = 0
    error: int = 0
    skipped: int = 0
    warn: int = 0
    fail: int = 0
    no_op: int = 0
    carried_over: int = 0  # a retry's results recorded by the previous run


@attrs.frozen
class Failure:
    """A node that ended in error: dbt's whole message, and the line that says why."""

    unique_id: str
    resource_type: str | None  # None: the node is not in the manifest given
    cause: str
    message: str
    path: str | None
    dbt_status: str | None


@attrs.frozen
class SkipGroup:
    """Skipped nodes with one root cause: the failed node at the top of their
    skip chain (``failed``), or, when no node failed upstream (an interrupt,
    a stale source), the ``reason`` they were skipped for. One is None."""

    failed: str | None
    reason: str | None
    node_ids: tuple[str, ...]


@attrs.frozen
class TimedNode:
    """A node and how long dbt ran it."""

    unique_id: str
    resource_type: str | None
    status: str
    seconds: float


@attrs.frozen
class RetriedNode:
    """A node that ran more than once, with its final status."""

    unique_id: str
    attempts: int
    status: str


@attrs.frozen
class RunSummary:
    """What a build did: counts, failures, skips by cause, slow and retried nodes."""

    counts: StatusCounts
    failures: tuple[Failure, ...]
    skips: tuple[SkipGroup, ...]
    slowest: tuple[TimedNode, ...]
    retried: tuple[RetriedNode, ...]
    elapsed_seconds: float
    node_seconds: float  # the nodes' durations, summed

    @property
    def parallelism(self) -> float | None:
        """Node time per second of wall time; None when no wall time was measured."""
        return self.node_seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else None


def summarize(
    results: Mapping[str, NodeResult], nodes: Mapping[str, Node], elapsed_seconds: float
) -> RunSummary:
    """Fold a build's results into its summary; ``nodes`` may lack some of them."""
    ordered = [(uid, results[uid]) for uid in sorted(results)]
    timed = sorted(
        (
            TimedNode(uid, _type_of(nodes.get(uid)), r.status.value, r.timing.duration_seconds)
            for uid, r in ordered
            if r.timing is not None and not r.carried_over  # a retry times what it ran
        ),
        key=lambda t: (-t.seconds, t.unique_id),
    )
    return RunSummary(
        counts=count_statuses(r for _, r in ordered),
        failures=tuple(
            _failure(uid, r, nodes.get(uid)) for uid, r in ordered if r.status is NodeStatus.ERROR
        ),
        skips=group_skips(results),
        slowest=tuple(timed[:SLOWEST_LIMIT]),
        retried=tuple(
            RetriedNode(uid, r.attempts, r.status.value)
            for uid, r in ordered
            if r.attempts > 1 and not r.carried_over
        ),
        elapsed_seconds=elapsed_seconds,
        node_seconds=math.fsum(t.seconds for t in timed),
    )


def count_statuses(results: Iterable[NodeResult]) -> StatusCounts:
    """How many ``results`` have each status (dbt's warn, fail and no-op too)."""
    by_status = {status: 0 for status in NodeStatus}
    by_dbt = {status: 0 for status in DbtStatus}
    carried = 0
    for result in results:
        by_status[result.status] += 1
        carried += result.carried_over
        if result.dbt_status is not None:
            by_dbt[result.dbt_status] += 1
    return StatusCounts(
        total=sum(by_status.values()),
        success=by_status[NodeStatus.SUCCESS],
        cached=by_status[NodeStatus.CACHED],
        error=by_status[NodeStatus.ERROR],
        skipped=by_status[NodeStatus.SKIPPED],
        warn=by_dbt[DbtStatus.WARN],
        fail=by_dbt[DbtStatus.FAIL],
        no_op=by_dbt[DbtStatus.NO_OP],
        carried_over=carried,
    )


def group_skips(results: Mapping[str, NodeResult]) -> tuple[SkipGroup, ...]:
    """The skipped results grouped by root cause: failures first (by unique_id),
    then reasons (alphabetically); the nodes of each group sorted."""
    groups: dict[tuple[str | None, str | None], list[str]] = {}
    for uid in sorted(results):
        if results[uid].status is NodeStatus.SKIPPED:
            groups.setdefault(_skip_cause(uid, results), []).append(uid)
    order = sorted(groups, key=lambda key: (key[0] is None, key[0] or "", key[1] or ""))
    return tuple(
        SkipGroup(failed, reason, tuple(groups[failed, reason])) for failed, reason in order
    )


def _skip_cause(uid: str, results: Mapping[str, NodeResult]) -> tuple[str | None, str | None]:
    """(root failure, None), or (None, reason) when no failed node is upstream.

    ``failed_upstream`` may name a node that was itself skipped (dbt names the
    direct parent); the chain is followed up to what did not skip. A node
    below two failures is grouped under the first by unique_id."""
    roots: set[str] = set()
    reasons: set[str] = set()
    seen, stack = {uid}, [uid]
    while stack:
        result = results[stack.pop()]
        if not result.failed_upstream:
            reasons.add(result.reason or NO_REASON)
        for upstream in result.failed_upstream:
            if upstream not in seen:
                seen.add(upstream)
                above = results.get(upstream)
                if above is not None and above.status is NodeStatus.SKIPPED:
                    stack.append(upstream)
                else:  # an error, or a node without a result: as far up as we see
                    roots.add(upstream)
    if roots:
        return min(roots), None
    return None, min(reasons, default=results[uid].reason or NO_REASON)


def _failure(uid: str, result: NodeResult, node: Node | None) -> Failure:
    error = result.error
    cause = _first_line(failure_line(result))
    message = error.message if error is not None else (result.message or cause)
    path = (error.path if error is not None else None) or (node.original_file_path if node else "")
    status = result.dbt_status.value if result.dbt_status else None
    return Failure(uid, _type_of(node), cause, message, path or None, status)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def _type_of(node: Node | None) -> str | None:
    return node.resource_type.value if node is not None else None


def summary_markdown(summary: RunSummary) -> str:
    """The summary as markdown (the Prefect artifact's body); empty sections left out."""
    rows = [TITLE, "", *_counts_table(summary.counts)]
    for section in (
        _failures_md(summary.failures),
        _skips_md(summary.skips),
        _slowest_md(summary.slowest),
        _retried_md(summary.retried),
        _timing_md(summary),
    ):
        if section:
            rows += ["", *section]
    return "\n".join(rows) + "\n"


def _counts_table(counts: StatusCounts) -> list[str]:
    names: tuple[str, ...] = (
        *("total", "success", "cached", "error", "skipped", "warn", "fail", "no-op"),
    )
    names += ("carried over",) if counts.carried_over else ()
    values = attrs.astuple(counts)[: len(names)]
    return [
        "| " + " | ".join(names) + " |",
        "|" + "---:|" * len(names),
        "| " + " | ".join(str(n) for n in values) + " |",
    ]


def _located(unique_id: str, path: str | None) -> str:
    return f"{unique_id} ({path})" if path else unique_id


def _failures_md(failures: tuple[Failure, ...]) -> list[str]:
    rows = [f"### Failures ({len(failures)})"] if failures else []
    for failure in failures:
        kind = failure.resource_type or "unknown (not in the manifest)"
        meta = f"Type: {kind}" + (
            f" · dbt status: {failure.dbt_status}" if failure.dbt_status else ""
        )
        rows += [
            "",
            f"- `{_located(failure.unique_id, failure.path)}`: {failure.cause}",
            "",
            f"  {meta}",
        ]
        if failure.message.strip() != failure.cause:
            rows += ["", *(f"  {line}".rstrip() for line in fenced(failure.message))]
    return rows


def fenced(text: str, info: str = "text") -> list[str]:
    """``text`` verbatim in a markdown code fence longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *text.rstrip().splitlines(), fence]


def _skips_md(groups: tuple[SkipGroup, ...]) -> list[str]:
    if not groups:
        return []
    rows = [f"### Skipped ({sum(len(g.node_ids) for g in groups)})", ""]
    for group in groups:
        rows.append(f"- {_cause_text(group, '`')} ({len(group.node_ids)}):")
        rows += [f"  - `{uid}`" for uid in group.node_ids[:SKIP_LIST_LIMIT]]
        if (more := len(group.node_ids) - SKIP_LIST_LIMIT) > 0:
            rows.append(f"  - … and {more} more")
    return rows


def _cause_text(group: SkipGroup, quote: str = "") -> str:
    if group.failed is not None:
        return f"after {quote}{group.failed}{quote} failed"
    return f"reason: {group.reason}"


def _slowest_md(slowest: tuple[TimedNode, ...]) -> list[str]:
    if not slowest:
        return []
    rows = ["### Slowest nodes", "", "| node | type | status | seconds |", "|---|---|---|---:|"]
    rows += [
        f"| `{t.unique_id}` | {t.resource_type or ''} | {t.status} | {t.seconds:.2f} |"
        for t in slowest
    ]
    return rows


def _retried_md(retried: tuple[RetriedNode, ...]) -> list[str]:
    if not retried:
        return []
    rows = ["### Retried nodes", "", "| node | attempts | final status |", "|---|---:|---|"]
    rows += [f"| `{r.unique_id}` | {r.attempts} | {r.status} |" for r in retried]
    return rows


def _timing_text(summary: RunSummary, times: str) -> str:
    ratio = summary.parallelism
    shown = f"{ratio:.2f}{times}" if ratio is not None else "n/a"
    return (
        f"{summary.node_seconds:.2f}s of node time in {summary.elapsed_seconds:.2f}s "
        f"(parallelism {shown})"
    )


def _timing_md(summary: RunSummary) -> list[str]:
    if summary.elapsed_seconds <= 0 and summary.node_seconds == 0:
        return []  # nothing was timed: no line of zeros
    return [f"**Timing:** {_timing_text(summary, '×')}"]


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary as the closing log lines: counts, failures with cause and
    path, skips counted by cause, the slowest few nodes, timing."""
    counts = summary.counts
    coarse = [("success", counts.success), ("cached", counts.cached)]
    coarse += [("error", counts.error), ("skipped", counts.skipped)]
    fine = [("warn", counts.warn), ("fail", counts.fail), ("no-op", counts.no_op)]
    fine += [("carried over", counts.carried_over)]
    text = ", ".join(f"{n} {name}" for name, n in coarse if n) or "none"
    if finer := ", ".join(f"{n} {name}" for name, n in fine if n):
        text += f"; {finer}"
    lines = [f"dbt build finished in {summary.elapsed_seconds:.2f}s: {counts.total} nodes ({text})"]
    lines += [f"  error    {_located(f.unique_id, f.path)}: {f.cause}" for f in summary.failures]
    lines += [f"  skipped  {len(g.node_ids)} node(s), {_cause_text(g)}" for g in summary.skips]
    if slow := summary.slowest[:LINES_SLOWEST_LIMIT]:
        lines.append("  slowest: " + ", ".join(f"{t.unique_id} {t.seconds:.2f}s" for t in slow))
    if summary.node_seconds:
        lines.append(f"  timing:  {_timing_text(summary, 'x')}")
    return lines


def node_table(
    results: Mapping[str, NodeResult], nodes: Mapping[str, Node]
) -> list[dict[str, Any]]:
    """One JSON-safe row per result, by unique_id, for a Prefect table artifact."""
    return [_row(uid, results[uid], nodes.get(uid)) for uid in sorted(results)]


def _row(uid: str, result: NodeResult, node: Node | None) -> dict[str, Any]:
    timing = result.timing
    return {
        "unique_id": uid,
        "resource_type": _type_of(node),
        "status": result.status.value,
        "dbt_status": result.dbt_status.value if result.dbt_status else None,
        "duration_seconds": round(timing.duration_seconds, 3) if timing else None,
        "attempts": result.attempts,
        "rows_affected": result.rows_affected,
        "cached": result.status is NodeStatus.CACHED,
        "carried_over": result.carried_over,
        "failed_upstream": ", ".join(result.failed_upstream),
    }
