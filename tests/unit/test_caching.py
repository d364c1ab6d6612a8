"""Cache decisions (``domain.caching``) and one build's cache (``BuildCache``).

The rule under test: a node is a hit only when it is cacheable, its latest
entry has today's key, has not expired, its relation exists, and every
planned node it reads from is a hit too; otherwise it runs, with the first
reason that failed. A build writes an entry only for a success.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.adapters.prefect._caching import BuildCache
from prefect_dbt_orchestrator.domain.cache_keys import first_change
from prefect_dbt_orchestrator.domain.caching import (
    CacheDecision,
    CacheEntry,
    CacheOptions,
    NodeCacheState,
    Prediction,
    cached_result,
    decide_cache,
    planned_parents,
)
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from tests.unit.builders import manifest_of, model, seed, test, uid
from tests.unit.fakes import FakeCacheStore
from tests.unit.strategies import projects

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _entry(node_id: str, key: str, *, expires: datetime | None = None) -> CacheEntry:
    result = NodeResult(node_id, NodeStatus.SUCCESS, DbtStatus.SUCCESS, rows_affected=3)
    return CacheEntry(node_id, key, {"sql": key}, result, NOW - timedelta(hours=1), expires)


def _state(node: Node, key: str | None = "k", **kwargs: object) -> NodeCacheState:
    return NodeCacheState(node, key, {"sql": key or ""}, **kwargs)  # type: ignore[arg-type]


PROJECT = manifest_of(
    seed("s"),
    model("a", "s"),
    model("eph", "a", materialized="ephemeral"),
    model("b", "eph"),
    model("inc", "s", materialized="incremental"),
    model("c", "inc"),
    test("t", "a"),
)
NODES = {n.unique_id: n for n in PROJECT.nodes.values()}
ORDER = [uid("s", "seed"), uid("a"), uid("b"), uid("inc"), uid("c"), uid("t", "test")]


def _decide(states: dict[str, NodeCacheState], **options: object) -> dict[str, CacheDecision]:
    parents = planned_parents(PROJECT, ORDER)
    return decide_cache(ORDER, states, parents, CacheOptions(**options), NOW, first_change)  # type: ignore[arg-type]


def _all_stored() -> dict[str, NodeCacheState]:
    return {u: _state(NODES[u], previous=_entry(u, "k")) for u in ORDER}


def test_a_node_whose_entry_matches_is_a_hit_and_reports_cached_with_its_key() -> None:
    decisions = _decide(_all_stored())

    assert decisions[uid("s", "seed")].prediction is Prediction.HIT
    assert decisions[uid("b")].prediction is Prediction.HIT  # through the ephemeral model
    result = cached_result(decisions[uid("a")])
    assert result.status is NodeStatus.CACHED
    assert result.cache_key == "k" and result.cached_at == NOW - timedelta(hours=1)
    assert result.rows_affected is None and result.timing is None  # nothing ran now


def test_tests_and_incremental_models_are_excluded_and_what_reads_them_runs() -> None:
    decisions = _decide(_all_stored())

    assert decisions[uid("t", "test")].prediction is Prediction.EXCLUDED
    assert decisions[uid("inc")].reason == "incremental models are not cached"
    assert decisions[uid("c")].prediction is Prediction.MISS
    assert decisions[uid("c")].reason == f"upstream {uid('inc')} runs"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"previous": None}, "no previous run"),
        ({"key": "new"}, "sql changed"),
        ({"previous": _entry(uid("a"), "k", expires=NOW)}, "expired"),
        ({"relation_exists": False}, "relation missing"),
    ],
)
def test_each_miss_names_its_reason_and_cascades_to_what_reads_the_node(
    change: dict[str, object], reason: str
) -> None:
    states = _all_stored()
    kwargs = {"previous": _entry(uid("a"), "k"), **change}
    key = kwargs.pop("key", "k")
    states[uid("a")] = _state(NODES[uid("a")], key, **kwargs)  # type: ignore[arg-type]

    decisions = _decide(states)

    assert decisions[uid("a")].prediction is Prediction.MISS
    assert decisions[uid("a")].reason == reason
    assert decisions[uid("b")].reason == f"upstream {uid('a')} runs"
    assert decisions[uid("s", "seed")].prediction is Prediction.HIT


def test_excluded_types_follow_the_options() -> None:
    decisions = _decide(_all_stored(), exclude_resource_types={"seed", "test"})

    assert decisions[uid("s", "seed")].reason == "seed nodes are not cached"
    assert decisions[uid("a")].reason == f"upstream {uid('s', 'seed')} runs"


def test_a_policy_that_gives_no_key_leaves_the_node_uncached() -> None:
    states = _all_stored()
    states[uid("a")] = _state(NODES[uid("a")], None)

    assert _decide(states)[uid("a")].reason == "the cache policy gave no key"


def test_the_source_freshness_lifetime_wins_only_when_asked_for() -> None:
    assert CacheOptions(expiration=timedelta(days=1)).lifetime(timedelta(hours=1)) == timedelta(
        days=1
    )
    freshness = CacheOptions(expiration=timedelta(days=1), use_source_freshness_expiration=True)
    assert freshness.lifetime(timedelta(hours=1)) == timedelta(hours=1)
    assert freshness.lifetime(None) == timedelta(days=1)


@settings(max_examples=150, deadline=None)
@given(projects(), st.data())
def test_a_hit_always_has_a_matching_live_entry_and_hits_upstream(
    project: object, data: st.DataObject
) -> None:
    manifest = project.manifest  # type: ignore[attr-defined]
    graph = build_graph(manifest)
    plan = plan_build(graph, graph.executable_ids(), TestStrategy.IMMEDIATE)
    order = [u for wave in plan.waves for u in wave.node_ids]
    states = {}
    for u in order:
        stored = data.draw(st.sampled_from(["none", "same", "other", "expired"]))
        expires = NOW - timedelta(seconds=1) if stored == "expired" else None
        previous = (
            None
            if stored == "none"
            else _entry(u, "k" if stored != "other" else "x", expires=expires)
        )
        states[u] = _state(
            graph.members[u], "k", previous=previous, relation_exists=data.draw(st.booleans())
        )
    parents = planned_parents(manifest, order)

    decisions = decide_cache(order, states, parents, CacheOptions(), NOW, first_change)

    assert set(decisions) == set(order)
    for u, decision in decisions.items():
        if decision.prediction is Prediction.HIT:
            entry = states[u].previous
            assert entry is not None and entry.key == "k" and entry.is_valid(NOW)
            assert states[u].relation_exists or graph.members[u].resource_type.value in (
                "test",
                "unit_test",
            )
            assert all(decisions[p].prediction is Prediction.HIT for p in parents[u])
        assert (decision.prediction is Prediction.EXCLUDED) == (
            CacheOptions().exclusion(graph.members[u]) is not None
        )


# ---------------------------------------------------------------- one build's cache


def _build_cache(store: FakeCacheStore, lifetime: timedelta | None = None) -> BuildCache:
    decisions = _decide({u: _state(NODES[u]) for u in ORDER})  # nothing stored: all misses
    return BuildCache(store, decisions, dict.fromkeys(ORDER, lifetime), clock=lambda: NOW)


def test_a_success_is_stored_with_its_key_components_and_expiry() -> None:
    store = FakeCacheStore()
    cache = _build_cache(store, timedelta(hours=2))

    result = cache.record(NodeResult(uid("a"), NodeStatus.SUCCESS, DbtStatus.SUCCESS))

    assert result.cache_key == "k"
    entry = store.entries[uid("a")]
    assert (entry.key, dict(entry.components)) == ("k", {"sql": "k"})
    assert entry.cached_at == NOW and entry.expires_at == NOW + timedelta(hours=2)


def test_an_error_stores_nothing_and_drops_the_old_entry_and_a_skip_leaves_it() -> None:
    store = FakeCacheStore(
        entries={uid("a"): _entry(uid("a"), "k"), uid("b"): _entry(uid("b"), "k")}
    )
    cache = _build_cache(store)

    cache.record(NodeResult(uid("a"), NodeStatus.ERROR, DbtStatus.ERROR))
    cache.record(NodeResult(uid("b"), NodeStatus.SKIPPED, DbtStatus.SKIPPED))

    assert uid("a") not in store.entries and store.forgotten == [uid("a")]
    assert uid("b") in store.entries and store.writes == 0


def test_excluded_nodes_are_never_stored() -> None:
    store = FakeCacheStore()
    cache = _build_cache(store)

    cache.record(NodeResult(uid("inc"), NodeStatus.SUCCESS, DbtStatus.SUCCESS))
    cache.record(NodeResult(uid("t", "test"), NodeStatus.SUCCESS, DbtStatus.PASS))

    assert store.entries == {}


def test_a_refresh_runs_every_cacheable_node_and_says_why() -> None:
    decisions = _decide(_all_stored(), refresh=True)

    assert {decisions[u].reason for u in (uid("s", "seed"), uid("a"), uid("b"))} == {
        "cache refresh requested"
    }
    assert decisions[uid("t", "test")].prediction is Prediction.EXCLUDED
