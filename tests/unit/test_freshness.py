"""Source freshness: reading ``sources.json``, dbt's ``source_status:fresher``, which
planned nodes need not run, and cache lifetimes from source rules.

The expected answers come from dbt's rules written out directly: upstream
sources are read from ``DbtGraph.ancestors`` (hand-built and random projects)
or from the ``parent_map`` dbt itself wrote (corpus), never from the module
under test.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import (
    ManifestMalformedError,
    PlanError,
    UnknownNodeError,
)
from prefect_dbt_orchestrator.domain.freshness import (
    FreshnessSkips,
    SourceLoad,
    SourcesFileError,
    checkable_sources,
    fresher_sources,
    freshness_ttl,
    read_source_loads,
    skip_unchanged,
)
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest, ResourceType
from tests.corpus import manifest as corpus_manifest
from tests.corpus import raw_manifest
from tests.unit.builders import (
    checked_source,
    manifest_of,
    model,
    seed,
    source,
    test,
    uid,
    unit_test,
)
from tests.unit.strategies import project_nodes

ORDERS, USERS, EVENTS = "source.proj.raw.orders", "source.proj.raw.users", "source.proj.raw.events"
DAY = "2024-01-0{}T00:00:00Z"
D1, D2, D3 = DAY.format(1), DAY.format(2), DAY.format(3)
Case = tuple[Manifest, list[str], dict[str, SourceLoad], dict[str, SourceLoad] | None]


def _sources_json(*entries: tuple[str, str | None]) -> dict[str, Any]:
    """A sources.json as dbt 1.9+ writes it; a None time is a runtime error."""
    passed = {"status": "pass", "max_loaded_at_time_ago_in_s": 1.0, "criteria": {}}
    failed = {"status": "runtime error", "message": "Database Error"}
    results = [
        {"unique_id": source_id, **({**passed, "max_loaded_at": at} if at else failed)}
        for source_id, at in entries
    ]
    metadata = {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json"}
    return {"metadata": metadata, "results": results, "elapsed_time": 1.0}


def _loads(*entries: tuple[str, str | None]) -> dict[str, SourceLoad]:
    return read_source_loads(_sources_json(*entries), source="sources.json")


# --- read_source_loads --------------------------------------------------------------


def test_sources_json_reads_as_loads_by_unique_id() -> None:
    loads = _loads((ORDERS, "2024-01-02T03:04:05.123456+00:00"), (USERS, None))

    assert loads == {
        ORDERS: SourceLoad(ORDERS, datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "pass"),
        USERS: SourceLoad(USERS, None, "runtime error"),
    }


@pytest.mark.parametrize(
    "text",
    ["2024-01-02T00:00:00Z", "2024-01-02T00:00:00+00:00", "2024-01-02T00:00:00", "2024-01-02"],
)
def test_every_spelling_of_utc_reads_as_the_same_aware_moment(text: str) -> None:
    assert _loads((ORDERS, text))[ORDERS].max_loaded_at == datetime(2024, 1, 2, tzinfo=UTC)


def test_an_offset_timestamp_compares_by_the_moment_it_names() -> None:
    before = _loads((ORDERS, "2024-01-02T01:00:00+02:00"))  # 2024-01-01T23:00Z
    after = _loads((ORDERS, "2024-01-02T00:00:00Z"))

    assert fresher_sources(after, before) == {ORDERS}


def _results(*results: Any) -> dict[str, Any]:
    return {"metadata": {}, "results": list(results)}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "expected a JSON object, got list"),
        ({"metadata": {}}, "its results is missing or not a list"),
        ({"results": {"a": 1}}, "its results is missing or not a list"),
        (_results("source.proj.raw.orders"), r"results\[0\] is not an object"),
        (_results({"status": "pass"}), r"results\[0\] has no unique_id"),
        (_results({"unique_id": ORDERS}), r"results\[0\] \(source.proj.raw.orders\) has no status"),
        (
            _results({"unique_id": ORDERS, "status": "pass", "max_loaded_at": "yesterday"}),
            "max_loaded_at 'yesterday' of source.proj.raw.orders is not an ISO 8601 timestamp",
        ),
        (
            _results({"unique_id": ORDERS, "status": "pass", "max_loaded_at": 1704067200}),
            "max_loaded_at of source.proj.raw.orders is not a string",
        ),
        (
            _results({"unique_id": ORDERS, "status": "pass"}, {"unique_id": ORDERS, "status": "x"}),
            "source.proj.raw.orders has two results",
        ),
    ],
)
def test_a_malformed_sources_json_names_the_file_the_problem_and_the_fix(
    data: Any, problem: str
) -> None:
    with pytest.raises(SourcesFileError, match=problem) as caught:
        read_source_loads(data, source="target/sources.json")

    text = str(caught.value)
    assert text.startswith("target/sources.json is not a usable sources.json: ")
    assert text.endswith("; re-run `dbt source freshness` to write it again")
    assert isinstance(caught.value, PlanError)
    assert isinstance(caught.value, ValueError)


# --- fresher_sources ----------------------------------------------------------------


def test_fresher_follows_dbts_source_status_rule() -> None:
    previous = _loads(
        (ORDERS, D1),
        (USERS, D2),
        (EVENTS, None),
        ("source.proj.raw.x", D2),
    )
    current = _loads(
        (ORDERS, D2),  # loaded since: fresher
        (USERS, D2),  # same load: not fresher
        (EVENTS, D1),  # no max_loaded_at before: fresher
        ("source.proj.raw.new", D1),  # not reported before: fresher
        ("source.proj.raw.x", D1),  # earlier than before: not fresher
        ("source.proj.raw.broken", None),  # runtime error now: never fresher
    )

    assert fresher_sources(current, previous) == {ORDERS, EVENTS, "source.proj.raw.new"}
    assert fresher_sources({}, previous) == frozenset()  # not checked now: not fresher


_load_times = st.one_of(st.none(), st.integers(1, 4).map(DAY.format))
_load_files = st.dictionaries(st.sampled_from((ORDERS, USERS, EVENTS)), _load_times).map(
    lambda entries: _loads(*entries.items())
)


@given(_load_files, _load_files)
def test_fresher_sources_are_reported_now_with_a_time(
    current: dict[str, SourceLoad], previous: dict[str, SourceLoad]
) -> None:
    fresher = fresher_sources(current, previous)

    assert fresher <= {uid for uid, load in current.items() if load.max_loaded_at is not None}
    assert fresher_sources(current, current) == frozenset()
    assert fresher_sources(current, {}) == {u for u, x in current.items() if x.max_loaded_at}


# --- checkable_sources --------------------------------------------------------------


def test_checkable_sources_need_a_rule_and_a_loaded_at_field() -> None:
    empty_rule = checked_source("raw", "empty_rule", warn_after=None)
    no_period = checked_source("raw", "no_period", warn_after=(3, ""))
    project = manifest_of(
        checked_source("raw", "orders"),
        checked_source("raw", "users", warn_after=None, error_after=(1, "day")),
        source("raw", "plain"),
        empty_rule,
        no_period,
        checked_source("raw", "no_field", loaded_at_field=None),
        model(
            "joined", "raw.orders", "raw.users", "raw.plain", "empty_rule", "no_period", "no_field"
        ),
    )

    checkable, unchecked = checkable_sources(project, [uid("joined")])

    assert checkable == {ORDERS, USERS}
    assert unchecked == {
        "source.proj.raw.plain": "no freshness rule",
        "source.proj.raw.empty_rule": "no freshness rule",
        "source.proj.raw.no_period": "no freshness rule",
        "source.proj.raw.no_field": "no loaded_at_field",
    }


def test_a_rule_or_loaded_at_field_set_in_config_makes_a_source_checkable() -> None:
    in_config = source("raw", "orders")
    in_config["config"]["loaded_at_field"] = "_loaded_at"
    in_config["config"]["freshness"] = {"warn_after": {"count": 1, "period": "hour"}}
    by_query = checked_source("raw", "users", loaded_at_field=None)
    by_query["config"]["loaded_at_query"] = "select max(_loaded_at) from raw.users"
    project = manifest_of(in_config, by_query, model("joined", "raw.orders", "raw.users"))

    assert checkable_sources(project, [uid("joined")]) == (frozenset({ORDERS, USERS}), {})


def test_checkable_sources_are_found_through_any_node_but_not_disabled_ones() -> None:
    off = checked_source("raw", "off")
    off["config"]["enabled"] = False
    project = manifest_of(
        checked_source("raw", "orders"),
        off,
        seed("countries"),
        model("stg", "raw.orders", "raw.off", materialized="ephemeral"),
        model("mart", "stg", "countries"),
        model("report", "mart"),
    )

    assert checkable_sources(project, [uid("report")]) == (frozenset({ORDERS}), {})
    assert checkable_sources(project, [uid("countries", "seed")]) == (frozenset(), {})


def test_checkable_sources_of_an_unknown_node_raise_a_typed_error() -> None:
    with pytest.raises(UnknownNodeError, match="model.proj.nope"):
        checkable_sources(manifest_of(seed("countries")), ["model.proj.nope"])


# --- skip_unchanged -----------------------------------------------------------------


def _shop(*extra: dict[str, Any]) -> Manifest:
    """orders, users (checked) and events (no rule) feeding staging models, a mart,
    tests and a model reading only a seed."""
    return manifest_of(
        checked_source("raw", "orders"),
        checked_source("raw", "users"),
        source("raw", "events"),
        seed("countries"),
        model("stg_orders", "raw.orders", materialized="ephemeral"),
        model("stg_users", "raw.users"),
        model("stg_events", "raw.events"),
        model("orders_wide", "stg_orders", "countries"),
        model("customers", "stg_orders", "stg_users"),
        model("country_codes", "countries"),
        test("not_null_orders_wide", "orders_wide"),
        test("rel_customers_users", "customers", "stg_users"),
        unit_test("ut_orders_wide", "orders_wide"),
        *extra,
    )


def _everything(project: Manifest) -> list[str]:
    return sorted(build_graph(project).executable_ids())


def test_a_node_whose_sources_all_have_no_new_data_is_skipped() -> None:
    project = _shop()
    previous = _loads((ORDERS, D1), (USERS, D1))
    current = _loads((ORDERS, D1), (USERS, D2))

    skips = skip_unchanged(project, _everything(project), current, previous)

    reason = f"no new data in its sources since the last run: {ORDERS}"
    assert skips.skipped == {
        uid("orders_wide"): reason,
        uid("not_null_orders_wide", "test"): reason,
        "unit_test.proj.orders_wide.ut_orders_wide": reason,
    }
    assert skips.checked == {ORDERS, USERS}
    assert skips.always_fresh == {EVENTS: "no freshness rule"}


def test_only_given_nodes_are_skipped_with_every_stale_source_in_the_reason() -> None:
    project = _shop()
    loads = _loads((USERS, D1), (ORDERS, D1))

    skips = skip_unchanged(project, (n for n in [uid("customers")]), loads, loads)

    assert skips.skipped == {
        uid("customers"): f"no new data in its sources since the last run: {ORDERS}, {USERS}"
    }


def test_nothing_is_skipped_without_a_previous_sources_json() -> None:
    project = _shop()
    current = _loads((ORDERS, D1), (USERS, D1))

    skips = skip_unchanged(project, _everything(project), current, None)

    assert skips == FreshnessSkips({}, {EVENTS: "no freshness rule"}, frozenset())


def test_a_node_without_upstream_sources_is_never_skipped() -> None:
    project = _shop()
    loads = _loads((ORDERS, D1), (USERS, D1))

    skips = skip_unchanged(project, _everything(project), loads, loads)

    assert uid("countries", "seed") not in skips.skipped
    assert uid("country_codes") not in skips.skipped
    assert uid("customers") in skips.skipped


@pytest.mark.parametrize(
    ("current", "reason"),
    [
        (((USERS, D1),), "not checked by dbt source freshness"),
        (((ORDERS, None), (USERS, D1)), "dbt source freshness failed: runtime error"),
    ],
)
def test_a_source_the_current_check_missed_or_failed_on_counts_as_new_data(
    current: tuple[tuple[str, str | None], ...], reason: str
) -> None:
    project = _shop()
    previous = _loads((ORDERS, D1), (USERS, D1))

    skips = skip_unchanged(project, _everything(project), _loads(*current), previous)

    assert skips.always_fresh == {ORDERS: reason, EVENTS: "no freshness rule"}
    assert skips.checked == {USERS}
    assert skips.skipped == {
        uid("stg_users"): f"no new data in its sources since the last run: {USERS}"
    }


def test_a_source_past_its_error_threshold_is_still_compared() -> None:
    # dbt's status "error" means old data, not a failed check: max_loaded_at is there.
    project = _shop()
    data = _sources_json((ORDERS, D1))
    data["results"][0]["status"] = "error"
    current = read_source_loads(data, source="sources.json")

    skips = skip_unchanged(project, [uid("orders_wide")], current, _loads((ORDERS, D1)))

    assert list(skips.skipped) == [uid("orders_wide")]
    assert skips.checked == {ORDERS}


def test_a_source_the_previous_check_did_not_report_has_new_data() -> None:
    project = _shop()
    current = _loads((ORDERS, D1), (USERS, D1))

    skips = skip_unchanged(project, _everything(project), current, _loads((USERS, None)))

    assert skips.skipped == {}
    assert skips.checked == {ORDERS, USERS}


def test_descendants_of_a_skipped_node_run_when_they_read_new_data() -> None:
    project = _shop(
        model("orders_by_user", "orders_wide", "customers"), model("top", "orders_wide")
    )
    previous = _loads((ORDERS, D1), (USERS, D1))
    current = _loads((ORDERS, D1), (USERS, D3))

    skips = skip_unchanged(project, _everything(project), current, previous)

    assert uid("orders_wide") in skips.skipped
    assert uid("top") in skips.skipped
    assert uid("orders_by_user") not in skips.skipped  # reads users too
    assert uid("rel_customers_users", "test") not in skips.skipped
    with pytest.raises(TypeError):  # the answer is read-only
        skips.skipped["model.proj.x"] = "no"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        skips.checked = frozenset()  # type: ignore[misc]


# --- freshness_ttl ------------------------------------------------------------------


def test_a_nodes_lifetime_is_its_sources_shortest_warn_threshold() -> None:
    project = manifest_of(
        checked_source("raw", "orders", warn_after=(12, "hour"), error_after=(1, "minute")),
        checked_source("raw", "users", warn_after=None, error_after=(2, "day")),
        checked_source("raw", "events", warn_after=(90, "minute"), loaded_at_field=None),
        source("raw", "plain"),
        seed("countries"),
        model("stg_orders", "raw.orders", materialized="ephemeral"),
        model("orders", "stg_orders"),
        model("users", "raw.users", "raw.plain"),
        model("everything", "orders", "users", "raw.events"),
        model("countries_model", "countries", "raw.plain"),
    )

    assert freshness_ttl(project, uid("orders")) == timedelta(hours=12)  # warn beats error
    assert freshness_ttl(project, uid("users")) == timedelta(days=2)  # error when no warn
    assert freshness_ttl(project, uid("everything")) == timedelta(minutes=90)
    assert freshness_ttl(project, uid("countries_model")) is None  # no rule upstream
    assert freshness_ttl(project, uid("countries", "seed")) is None


def test_a_lifetime_reads_a_rule_written_in_config() -> None:
    in_config = source("raw", "orders")
    in_config["config"]["freshness"] = {"error_after": {"count": 3, "period": "day"}}
    project = manifest_of(in_config, model("orders", "raw.orders"))

    assert freshness_ttl(project, uid("orders")) == timedelta(days=3)


def test_an_unknown_period_or_node_raises_a_typed_error() -> None:
    project = manifest_of(
        checked_source("raw", "orders", warn_after=(1, "week")), model("orders", "raw.orders")
    )

    with pytest.raises(ManifestMalformedError, match="period 'week'; dbt accepts minute, hour"):
        freshness_ttl(project, uid("orders"))
    with pytest.raises(UnknownNodeError, match="model.proj.nope"):
        freshness_ttl(project, "model.proj.nope")


# --- random projects ----------------------------------------------------------------

_KINDS = ("checked", "checked", "checked", "no rule", "no field")
# What happened to a source between two checks: (day before, day now); None is a
# runtime error, -1 not reported. Weighted towards "no new data".
_STORIES = ((2, 2), (2, 2), (2, 2), (2, 3), (2, 1), (2, None), (2, -1), (None, 2), (-1, 2))


def _story_files(
    draw: st.DrawFn, sources: list[str]
) -> tuple[dict[str, SourceLoad], dict[str, SourceLoad]]:
    before: list[tuple[str, str | None]] = []
    now: list[tuple[str, str | None]] = []
    for source_id in sources:
        for day, file in zip(draw(st.sampled_from(_STORIES)), (before, now), strict=True):
            if day != -1:
                file.append((source_id, None if day is None else DAY.format(day)))
    return _loads(*now), _loads(*before)


@st.composite
def _cases(draw: st.DrawFn) -> Case:
    """A random project whose sources have random rules, its members, and two checks."""
    nodes = copy.deepcopy(draw(project_nodes(max_nodes=12)))
    for node in nodes:
        if node["resource_type"] == "source":
            kind = draw(st.sampled_from(_KINDS))
            if kind != "no rule":
                rule = checked_source("src", node["name"])
                node["freshness"], node["loaded_at_field"] = rule["freshness"], "_loaded_at"
            if kind == "no field":
                node["loaded_at_field"] = None
    project = manifest_of(*nodes)
    current, previous = _story_files(draw, sorted(project.sources))
    keep = draw(st.sampled_from((True, True, True, False)))
    return project, sorted(build_graph(project).members), current, previous if keep else None


def _stale(
    project: Manifest, current: Mapping[str, SourceLoad], previous: Mapping[str, SourceLoad]
) -> set[str]:
    """dbt's rule, written out: checked now and before, and not loaded since."""
    stale = set()
    for uid_, node in project.sources.items():
        now, before = current.get(uid_), previous.get(uid_)
        has_rule = node.freshness is not None and node.freshness.warn_after is not None
        if not (has_rule and node.loaded_at_field and now and before):
            continue
        if now.max_loaded_at and before.max_loaded_at and now.max_loaded_at <= before.max_loaded_at:
            stale.add(uid_)
    return stale


def _sources_above(project: Manifest, node_id: str) -> set[str]:
    graph = build_graph(project)
    return {
        a for a in graph.ancestors(node_id) if graph.members[a].resource_type is ResourceType.SOURCE
    }


@given(_cases())
def test_a_node_is_skipped_iff_it_reads_sources_and_none_has_new_data(case: Case) -> None:
    project, ids, current, previous = case

    skips = skip_unchanged(project, ids, current, previous)

    if previous is None:
        assert skips.skipped == {}
        return
    stale = _stale(project, current, previous)
    expected = {n for n in ids if (above := _sources_above(project, n)) and above <= stale}
    assert set(skips.skipped) == expected
    above_all = {s for n in ids for s in _sources_above(project, n)}
    assert skips.checked | set(skips.always_fresh) == above_all
    assert not skips.checked & set(skips.always_fresh)


@given(_cases())
def test_the_skipped_set_is_closed_downstream_among_stale_nodes(case: Case) -> None:
    project, ids, current, previous = case
    graph = build_graph(project)

    skips = skip_unchanged(project, ids, current, previous or {})
    fresh = {s for n in ids for s in _sources_above(project, n)} - _stale(
        project, current, previous or {}
    )

    for node in skips.skipped:
        for below in graph.descendants(node) & set(ids):
            assert (below in skips.skipped) == (not _sources_above(project, below) & fresh)
    for node in ids:
        if _sources_above(project, node) & fresh:
            assert node not in skips.skipped


@given(_cases())
def test_a_node_lives_no_longer_than_any_node_it_reads(case: Case) -> None:
    project, ids, _, _ = case
    graph = build_graph(project)

    for node in ids:
        mine = freshness_ttl(project, node)
        for parent in graph.parents[node]:
            theirs = freshness_ttl(project, parent)
            assert theirs is None or (mine is not None and mine <= theirs)
        ruled = [s for s in _sources_above(project, node) if project.sources[s].freshness]
        assert mine == (timedelta(hours=12) if ruled else None)


# --- corpus -------------------------------------------------------------------------

EVALUATOR = "dbt_project_evaluator"
_WITH_RULE = {
    f"source.dbt_project_evaluator_integration_tests.source_1.{name}"
    for name in ("table_1", "table_2", "table_4", "raw_table_5")
}


def _dbt_sources_above(project: Manifest, node_id: str) -> set[str]:
    """Upstream sources by the parent_map dbt wrote."""
    seen, stack = set(), list(project.parent_map.get(node_id, ()))
    while stack:
        parent = stack.pop()
        if parent not in seen:
            seen.add(parent)
            stack.extend(project.parent_map.get(parent, ()))
    return {uid_ for uid_ in seen if uid_.startswith("source.")}


def _evaluator_nodes(project: Manifest) -> list[str]:
    return sorted(u for u in project.parent_map if u in build_graph(project).executable_ids())


def test_the_evaluators_rules_lack_a_loaded_at_field_so_nothing_is_compared() -> None:
    project = corpus_manifest(EVALUATOR)
    ids = _evaluator_nodes(project)
    upstream = {s for n in ids for s in _dbt_sources_above(project, n)}

    checkable, unchecked = checkable_sources(project, ids)
    loads = _loads(*((s, D1) for s in upstream))
    skips = skip_unchanged(project, ids, loads, loads)

    assert checkable == frozenset()
    assert set(unchecked) == upstream
    assert {
        s for s, why in unchecked.items() if why == "no loaded_at_field"
    } == upstream & _WITH_RULE
    assert skips.skipped == {}


def test_the_evaluators_lifetimes_follow_dbts_parent_map() -> None:
    project = corpus_manifest(EVALUATOR)

    for node in _evaluator_nodes(project):
        expected = timedelta(hours=12) if _dbt_sources_above(project, node) & _WITH_RULE else None
        assert freshness_ttl(project, node) == expected, node


def test_the_evaluator_with_loaded_at_fields_skips_what_reads_only_stale_sources() -> None:
    data = copy.deepcopy(raw_manifest(EVALUATOR))
    for uid_ in _WITH_RULE:
        data["sources"][uid_]["loaded_at_field"] = "_loaded_at"
    project = structure_manifest(data, source="evaluator with loaded_at_field")
    ids = _evaluator_nodes(project)
    # 2 nodes read only table_1, 10 read table_1 and table_2: table_2 gets new data.
    table_2 = "source.dbt_project_evaluator_integration_tests.source_1.table_2"
    previous = _loads(*((s, D1) for s in sorted(_WITH_RULE)))
    current = _loads(*((s, DAY.format(2 if s == table_2 else 1)) for s in sorted(_WITH_RULE)))

    skips = skip_unchanged(project, ids, current, previous)

    stale = _WITH_RULE - {table_2}
    expected = {n for n in ids if (above := _dbt_sources_above(project, n)) and above <= stale}
    assert set(skips.skipped) == expected
    assert len(expected) == 2
    assert skips.checked == _WITH_RULE & {s for n in ids for s in _dbt_sources_above(project, n)}


@pytest.mark.parametrize("project_name", ["jaffle_shop", "nba_monte_carlo", "tuva"])
def test_corpus_projects_without_rules_skip_nothing_and_cache_without_limit(
    project_name: str,
) -> None:
    project = corpus_manifest(project_name)
    ids = sorted(build_graph(project).executable_ids())
    loads = _loads(*((s, D1) for s in sorted(project.sources)))

    skips = skip_unchanged(project, ids, loads, loads)

    assert skips.skipped == {}
    assert skips.checked == frozenset()
    assert set(skips.always_fresh.values()) <= {"no freshness rule"}
    assert all(freshness_ttl(project, n) is None for n in ids)
