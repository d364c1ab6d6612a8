"""The run summary: skips grouped under their root cause, slowest and retried
nodes, timing, and markdown that keeps dbt's whole message intact."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    NodeResult,
    NodeStatus,
    Timing,
    skipped,
)
from prefect_dbt_orchestrator.domain.summary import (
    SKIP_LIST_LIMIT,
    SLOWEST_LIMIT,
    SkipGroup,
    StatusCounts,
    node_table,
    summarize,
    summary_lines,
    summary_markdown,
)
from tests.unit.builders import manifest_of, model, test, uid

START = datetime(2026, 1, 1, tzinfo=UTC)
A, B, C = uid("a"), uid("b"), uid("c")
DBT_RUNTIME = (
    "Runtime Error in model a (models/a.sql)\n"
    "  Catalog Error: Table with name missing_table does not exist!\n"
    '  Did you mean "pg_tables"?\n'
    "  \n"
    "  LINE 3: select * from missing_table\n"
)
CAUSE = "Catalog Error: Table with name missing_table does not exist!"


def _nodes() -> dict[str, Node]:
    manifest = manifest_of(model("a"), model("b", "a"), model("c", "b"), test("t", "a"))
    return dict(manifest.nodes)


def _timing(seconds: float, start: float = 0.0) -> Timing:
    begin = START + timedelta(seconds=start)
    return Timing(begin, begin + timedelta(seconds=seconds))


def _ok(
    unique_id: str, seconds: float | None = None, *, attempts: int = 1, rows: int | None = None
) -> NodeResult:
    timing = _timing(seconds) if seconds is not None else None
    return NodeResult(
        unique_id,
        NodeStatus.SUCCESS,
        DbtStatus.SUCCESS,
        timing=timing,
        attempts=attempts,
        rows_affected=rows,
    )


def _error(unique_id: str, message: str = DBT_RUNTIME) -> NodeResult:
    error = ErrorInfo(message, "DbtRuntimeError")
    return NodeResult(unique_id, NodeStatus.ERROR, DbtStatus.ERROR, error=error)


def _interrupted(unique_id: str) -> NodeResult:
    return skipped(unique_id, (), "interrupted")


def _chain() -> dict[str, NodeResult]:
    """a -> b -> c: a errors; dbt names each skip's direct parent."""
    return {
        C: skipped(C, (B,), "upstream failure"),
        A: _error(A),
        B: skipped(B, (A,), "upstream failure"),
    }


def test_a_skip_chain_is_grouped_under_the_error_at_its_top() -> None:
    summary = summarize(_chain(), _nodes(), 1.0)

    assert summary.skips == (SkipGroup(A, None, (B, C)),)
    assert [f.unique_id for f in summary.failures] == [A]


def test_skips_without_a_failed_upstream_are_grouped_by_their_reason() -> None:
    results = {
        A: _interrupted(A),
        B: skipped(B, (A,), "upstream failure"),  # below an interrupted node
        C: NodeResult(C, NodeStatus.SKIPPED, DbtStatus.SKIPPED, reason="source is stale"),
        uid("t", "test"): NodeResult(uid("t", "test"), NodeStatus.SKIPPED),
    }

    summary = summarize(results, _nodes(), 1.0)

    assert summary.skips == (
        SkipGroup(None, "interrupted", (A, B)),
        SkipGroup(None, "no reason given", (uid("t", "test"),)),
        SkipGroup(None, "source is stale", (C,)),
    )


def test_failure_groups_come_before_reason_groups_and_each_is_sorted() -> None:
    results = {
        "model.proj.z": _error("model.proj.z"),
        "model.proj.y": skipped("model.proj.y", ("model.proj.z",), "upstream failure"),
        "model.proj.x": skipped("model.proj.x", ("model.proj.z",), "upstream failure"),
        A: _interrupted(A),
        B: _error(B),
        C: skipped(C, (B,), "upstream failure"),
    }

    skips = summarize(results, {}, 1.0).skips

    assert skips == (
        SkipGroup(B, None, (C,)),
        SkipGroup("model.proj.z", None, ("model.proj.x", "model.proj.y")),
        SkipGroup(None, "interrupted", (A,)),
    )


def test_a_node_below_two_failures_is_grouped_once_under_the_first() -> None:
    results = {A: _error(A), B: _error(B), C: skipped(C, (B, A), "upstream failure")}

    assert summarize(results, {}, 1.0).skips == (SkipGroup(A, None, (C,)),)


def test_a_skip_whose_upstream_has_no_result_is_grouped_under_that_upstream() -> None:
    results = {C: skipped(C, ("model.proj.gone",), "upstream failure")}

    assert summarize(results, {}, 1.0).skips == (SkipGroup("model.proj.gone", None, (C,)),)


def test_skips_naming_each_other_in_a_loop_still_end_in_one_group() -> None:
    results = {B: skipped(B, (C,), "upstream failure"), C: skipped(C, (B,), "upstream failure")}

    assert summarize(results, {}, 1.0).skips == (SkipGroup(None, "upstream failure", (B, C)),)


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30))
def test_every_skipped_node_is_in_exactly_one_group(draws: list[int]) -> None:
    # A random forest of skip chains: node i errors (drawn 0, and node 0), is
    # interrupted (drawn 1), or is skipped below an earlier node (drawn % i).
    ids = [f"model.proj.n{i:02d}" for i in range(len(draws))]
    results: dict[str, NodeResult] = {}
    for i, drawn in enumerate(draws):
        if i == 0 or drawn == 0:
            results[ids[i]] = _error(ids[i])
        elif drawn == 1:
            results[ids[i]] = _interrupted(ids[i])
        else:
            results[ids[i]] = skipped(ids[i], (ids[drawn % i],), "upstream failure")

    groups = summarize(results, {}, 1.0).skips

    grouped = [node for group in groups for node in group.node_ids]
    assert sorted(grouped) == sorted(u for u, r in results.items() if r.status.value == "skipped")
    assert all(results[g.failed].status is NodeStatus.ERROR for g in groups if g.failed)


def test_the_ten_slowest_nodes_are_kept_longest_first_ties_by_unique_id() -> None:
    results = {f"model.proj.n{i:02d}": _ok(f"model.proj.n{i:02d}", float(i % 6)) for i in range(14)}
    results[A] = _ok(A)  # not timed: not among the slowest

    slowest = summarize(results, {}, 1.0).slowest

    assert len(slowest) == SLOWEST_LIMIT
    assert [(t.unique_id, t.seconds) for t in slowest[:4]] == [
        ("model.proj.n05", 5.0),
        ("model.proj.n11", 5.0),
        ("model.proj.n04", 4.0),
        ("model.proj.n10", 4.0),
    ]
    assert [t.seconds for t in slowest] == sorted((t.seconds for t in slowest), reverse=True)


def test_parallelism_is_node_time_over_wall_time() -> None:
    results = {A: _ok(A, 2.0), B: _ok(B, 2.0), C: _ok(C, 2.0)}

    summary = summarize(results, {}, 3.0)

    assert summary.node_seconds == 6.0
    assert summary.parallelism == 2.0
    assert "**Timing:** 6.00s of node time in 3.00s (parallelism 2.00×)" in summary_markdown(
        summary
    )
    assert "  timing:  6.00s of node time in 3.00s (parallelism 2.00x)" in summary_lines(summary)


def test_no_wall_time_gives_no_parallelism_rather_than_a_division_by_zero() -> None:
    summary = summarize({A: _ok(A, 2.0)}, {}, 0.0)

    assert summary.parallelism is None
    assert "(parallelism n/a)" in summary_markdown(summary)


def test_retried_nodes_are_listed_with_attempts_and_final_status() -> None:
    results = {
        A: _ok(A, attempts=3),
        B: NodeResult(B, NodeStatus.ERROR, DbtStatus.ERROR, attempts=2),
        C: _ok(C),
        "model.proj.hit": NodeResult("model.proj.hit", NodeStatus.CACHED, attempts=0),
    }

    summary = summarize(results, {}, 1.0)

    assert [(r.unique_id, r.attempts, r.status) for r in summary.retried] == [
        (A, 3, "success"),
        (B, 2, "error"),
    ]
    markdown = summary_markdown(summary)
    assert f"| `{A}` | 3 | success |" in markdown
    assert f"| `{B}` | 2 | error |" in markdown


def test_counts_hold_cached_and_dbts_finer_statuses() -> None:
    t = uid("t", "test")
    results = {
        A: NodeResult(A, NodeStatus.SUCCESS, DbtStatus.WARN),
        B: NodeResult(B, NodeStatus.SUCCESS, DbtStatus.NO_OP),
        C: NodeResult(C, NodeStatus.CACHED),
        t: NodeResult(t, NodeStatus.ERROR, DbtStatus.FAIL),
    }

    counts = summarize(results, {}, 1.0).counts

    assert counts == StatusCounts(total=4, success=2, cached=1, error=1, warn=1, fail=1, no_op=1)
    assert "| 4 | 2 | 1 | 1 | 0 | 1 | 1 | 1 |" in summary_markdown(summarize(results, {}, 1.0))


def test_a_failure_keeps_dbts_whole_message_type_and_path() -> None:
    summary = summarize({A: _error(A)}, _nodes(), 1.0)

    (failure,) = summary.failures
    assert (failure.cause, failure.path, failure.resource_type) == (CAUSE, "models/a.sql", "model")
    markdown = summary_markdown(summary)
    assert f"- `{A} (models/a.sql)`: {CAUSE}" in markdown
    assert "Type: model · dbt status: error" in markdown
    for line in DBT_RUNTIME.splitlines():
        assert f"  {line}".rstrip() in markdown.splitlines()


def test_a_message_without_dbts_header_takes_the_path_from_the_node() -> None:
    t = uid("t", "test")
    message = "Got 3 results, configured to fail if != 0"
    results = {t: NodeResult(t, NodeStatus.ERROR, DbtStatus.FAIL, error=ErrorInfo(message, "x"))}

    (failure,) = summarize(results, _nodes(), 1.0).failures

    assert (failure.path, failure.resource_type, failure.cause) == ("models/t.sql", "test", message)
    markdown = summary_markdown(summarize(results, _nodes(), 1.0))
    assert "```" not in markdown  # the one line is already the bullet's cause


def test_an_error_without_error_info_is_still_a_failure() -> None:
    results = {
        A: NodeResult(A, NodeStatus.ERROR, DbtStatus.FAIL),
        B: NodeResult(B, NodeStatus.ERROR, message="timed out after 30s\nkilled"),
    }

    failures = summarize(results, {}, 1.0).failures

    assert [(f.cause, f.message, f.path) for f in failures] == [
        ("fail", "fail", None),
        ("timed out after 30s", "timed out after 30s\nkilled", None),
    ]


def test_nodes_missing_from_the_manifest_are_reported_without_a_type() -> None:
    gone = "model.other.gone"
    results = {gone: _error(gone, "boom"), "model.other.slow": _ok("model.other.slow", 1.0)}

    summary = summarize(results, _nodes(), 1.0)

    assert summary.failures[0].resource_type is None
    assert "Type: unknown (not in the manifest)" in summary_markdown(summary)
    assert summary.slowest[0].resource_type is None


def _fences(markdown: str) -> list[str]:
    return [line.strip() for line in markdown.splitlines() if re.fullmatch(r"\s*`{3,}\w*", line)]


def test_a_message_holding_a_code_fence_cannot_close_the_summarys_fence() -> None:
    message = "Compilation Error in model a (models/a.sql)\n  bad jinja:\n  ```\n  {{ oops }}\n"
    markdown = summary_markdown(summarize({A: _error(A, message)}, {}, 1.0))

    assert _fences(markdown) == ["````text", "```", "````"]
    assert "  {{ oops }}" in markdown  # the database's text, untouched


def test_a_long_skip_list_is_capped_with_the_rest_counted() -> None:
    many = {f"model.proj.s{i:03d}": skipped(f"model.proj.s{i:03d}", (A,), "x") for i in range(60)}
    markdown = summary_markdown(summarize({A: _error(A), **many}, {}, 1.0))

    listed = [line for line in markdown.splitlines() if line.startswith("  - `model.proj.s")]
    assert len(listed) == SKIP_LIST_LIMIT
    assert listed[-1] == "  - `model.proj.s049`"
    assert "  - … and 10 more" in markdown
    assert f"- after `{A}` failed (60):" in markdown


def test_a_failing_build_renders_every_section_in_order() -> None:
    results = {**_chain(), uid("t", "test"): _ok(uid("t", "test"), 1.5, attempts=2)}

    markdown = summary_markdown(summarize(results, _nodes(), 2.0))

    headings = [line for line in markdown.splitlines() if line.startswith(("#", "**Timing"))]
    assert headings == [
        "## dbt build summary",
        "### Failures (1)",
        "### Skipped (2)",
        "### Slowest nodes",
        "### Retried nodes",
        "**Timing:** 1.50s of node time in 2.00s (parallelism 0.75×)",
    ]


def test_a_clean_build_has_no_failure_skip_or_retry_sections() -> None:
    markdown = summary_markdown(summarize({A: _ok(A, 1.0)}, {}, 1.0))

    assert "### Failures" not in markdown
    assert "### Skipped" not in markdown
    assert "### Retried" not in markdown


def test_no_results_give_a_title_and_zero_counts_only() -> None:
    summary = summarize({}, {}, 0.0)

    assert summary_markdown(summary) == (
        "## dbt build summary\n\n"
        "| total | success | cached | error | skipped | warn | fail | no-op |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |\n"
    )
    assert summary_lines(summary) == ["dbt build finished in 0.00s: 0 nodes (none)"]


def test_an_all_cached_build_has_no_node_time_and_no_slowest() -> None:
    results = {u: NodeResult(u, NodeStatus.CACHED, attempts=0) for u in (A, B)}

    summary = summarize(results, _nodes(), 0.5)

    assert (summary.counts.cached, summary.node_seconds, summary.slowest) == (2, 0.0, ())
    assert summary.parallelism == 0.0
    assert summary_lines(summary) == ["dbt build finished in 0.50s: 2 nodes (2 cached)"]


def test_the_summary_does_not_depend_on_the_order_of_the_results() -> None:
    results = {**_chain(), uid("t", "test"): _ok(uid("t", "test"), 1.0)}
    backwards = dict(reversed(list(results.items())))

    assert summarize(results, _nodes(), 1.0) == summarize(backwards, _nodes(), 1.0)


def test_the_closing_lines_count_skips_under_each_cause() -> None:
    results = {**_chain(), "model.proj.late": _interrupted("model.proj.late")}
    results[uid("t", "test")] = NodeResult(uid("t", "test"), NodeStatus.SUCCESS, DbtStatus.WARN)

    lines = summary_lines(summarize(results, _nodes(), 1.25))

    assert lines == [
        "dbt build finished in 1.25s: 5 nodes (1 success, 1 error, 3 skipped; 1 warn)",
        f"  error    {A} (models/a.sql): {CAUSE}",
        f"  skipped  2 node(s), after {A} failed",
        "  skipped  1 node(s), reason: interrupted",
    ]


def test_the_closing_lines_name_only_the_five_slowest() -> None:
    results = {f"model.proj.n{i}": _ok(f"model.proj.n{i}", float(i)) for i in range(8)}

    lines = summary_lines(summarize(results, {}, 10.0))

    slow = next(line for line in lines if line.startswith("  slowest: "))
    assert slow == (
        "  slowest: model.proj.n7 7.00s, model.proj.n6 6.00s, model.proj.n5 5.00s, "
        "model.proj.n4 4.00s, model.proj.n3 3.00s"
    )


def test_the_node_table_has_one_json_safe_row_per_node_by_unique_id() -> None:
    results = {
        C: skipped(C, (B, A), "upstream failure"),
        A: _ok(A, 1.23456, rows=7),
        B: NodeResult(B, NodeStatus.CACHED, attempts=0),
        "model.other.gone": _error("model.other.gone"),
    }

    rows = node_table(results, _nodes())

    assert [row["unique_id"] for row in rows] == sorted(results)
    assert json.loads(json.dumps(rows)) == rows
    assert rows[1] == {
        "unique_id": A,
        "resource_type": "model",
        "status": "success",
        "dbt_status": "success",
        "duration_seconds": 1.235,
        "attempts": 1,
        "rows_affected": 7,
        "cached": False,
        "carried_over": False,
        "failed_upstream": "",
    }
    assert (rows[2]["cached"], rows[2]["dbt_status"], rows[2]["duration_seconds"]) == (
        True,
        None,
        None,
    )
    assert rows[3]["failed_upstream"] == f"{B}, {A}"
    assert rows[0]["resource_type"] is None


def test_a_retry_counts_its_carried_over_results_but_times_only_what_ran() -> None:
    ran = NodeResult(A, NodeStatus.SUCCESS, DbtStatus.SUCCESS, timing=_timing(2.0), attempts=2)
    carried = attrs.evolve(
        NodeResult(B, NodeStatus.SUCCESS, DbtStatus.SUCCESS, timing=_timing(9.0), attempts=3),
        carried_over=True,
    )

    summary = summarize({A: ran, B: carried}, _nodes(), 2.5)

    assert summary.counts.carried_over == 1 and summary.counts.success == 2
    assert [t.unique_id for t in summary.slowest] == [A]
    assert [r.unique_id for r in summary.retried] == [A]
    assert summary.node_seconds == 2.0
    assert "1 carried over" in summary_lines(summary)[0]
    assert "carried over" in summary_markdown(summary).splitlines()[2]
    assert "carried over" not in summary_markdown(summarize({A: ran}, _nodes(), 2.5))
