"""Which planned nodes may be served from cache, and why each other one may not; pure.

A hit must never be wrong, so a node is served from cache only when all of
these hold: caching does not exclude it, its latest stored run succeeded
with the key it has now, that entry has not expired, its relation still
exists in the warehouse, and every planned node it reads from is served
from cache too (an upstream node that runs may change the data it reads,
whatever its key says). Every other node runs, with the first reason that
failed. ``decide_cache`` gives the same answers to ``plan()`` and to the
build, so a prediction is what the build then does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

import attrs

from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, ResourceType
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus

DEFAULT_EXCLUDED_MATERIALIZATIONS = frozenset({"incremental"})
DEFAULT_EXCLUDED_TYPES = frozenset({"test", "snapshot", "unit_test"})
# Explains a key change from the previous and current components (cache_keys.first_change).
ChangeReason = Callable[[Mapping[str, str], Mapping[str, str]], "str | None"]
# Resource types that leave no relation behind: nothing to check in the warehouse.
_NO_RELATION = frozenset({ResourceType.TEST, ResourceType.UNIT_TEST})


def _names(value: Iterable[object]) -> frozenset[str]:
    return frozenset(str(getattr(v, "value", v)) for v in value)


def _components(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class CacheOptions:
    """How a build caches, folded from either spelling of the options.

    Attributes:
        expiration: how long an entry is reusable (None: until its key changes).
        use_source_freshness_expiration: a node's lifetime comes from its
            upstream sources' freshness rules instead, where they have one.
        exclude_materializations: never served from cache (incremental models
            build on their own previous state).
        exclude_resource_types: never served from cache (dbt spellings; tests,
            snapshots and unit tests by default).
        refresh: serve nothing from cache and store every success anew (as
            Prefect's ``refresh_cache``).
    """

    expiration: timedelta | None = None
    use_source_freshness_expiration: bool = False
    exclude_materializations: frozenset[str] = attrs.field(
        default=DEFAULT_EXCLUDED_MATERIALIZATIONS, converter=_names
    )
    exclude_resource_types: frozenset[str] = attrs.field(
        default=DEFAULT_EXCLUDED_TYPES, converter=_names
    )
    refresh: bool = False

    def exclusion(self, node: Node) -> str | None:
        """Why ``node`` is never served from cache, or None when it may be.

        Exposures and saved queries always are: dbt runs nothing for them, so
        there is nothing to store or serve (whatever the options say).
        """
        kind = node.resource_type.value
        if is_no_op(node):
            return f"{kind} nodes run nothing (dbt reports them no-op)"
        if kind in self.exclude_resource_types:
            return f"{kind} nodes are not cached"
        if node.materialized in self.exclude_materializations:
            return f"{node.materialized} models are not cached"
        return None

    def lifetime(self, freshness_ttl: timedelta | None) -> timedelta | None:
        """A node's lifetime, given the one its sources' freshness rules allow."""
        if self.use_source_freshness_expiration and freshness_ttl is not None:
            return freshness_ttl
        return self.expiration


@attrs.frozen
class CacheEntry:
    """The latest successful run of a node: its key and what the key was made of.

    Attributes:
        unique_id: the node.
        key: the node's cache key when it ran.
        components: each component's fingerprint (``sql``, ``config``,
            ``upstream model.x.y``...), in key order: what a later miss is
            explained against.
        result: the result that run returned (status success).
        cached_at: when it was stored.
        expires_at: when it stops being reusable (None: never).
    """

    unique_id: str
    key: str
    components: Mapping[str, str] = attrs.field(converter=_components)
    result: NodeResult
    cached_at: datetime
    expires_at: datetime | None = None

    def is_valid(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class Prediction(enum.Enum):
    HIT = "hit"
    MISS = "miss"
    EXCLUDED = "excluded"


@attrs.frozen
class CacheDecision:
    """What caching does with one planned node, and why.

    ``entry`` is the stored run a hit serves; ``reason`` says why a miss or
    an exclusion runs (``"sql changed"``, ``"no previous run"``...).
    """

    unique_id: str
    prediction: Prediction
    reason: str = ""
    key: str | None = None
    components: Mapping[str, str] = attrs.field(factory=dict, converter=_components)
    entry: CacheEntry | None = None

    @property
    def label(self) -> str:
        """``hit``, or ``miss (sql changed)``: how plans show it."""
        if self.prediction is Prediction.HIT:
            return "hit"
        return f"{self.prediction.value} ({self.reason})"


@attrs.frozen
class NodeCacheState:
    """What is known about one planned node when deciding.

    Attributes:
        node: the graph member.
        key: its key now (None: a custom policy gave none, so it is not cached).
        components: the key's components (empty for a custom policy's key).
        previous: its latest stored entry, if any.
        relation_exists: False when its relation is gone from the warehouse.
    """

    node: Node
    key: str | None
    components: Mapping[str, str] = attrs.field(factory=dict, converter=_components)
    previous: CacheEntry | None = None
    relation_exists: bool = True


def decide_cache(
    order: Iterable[str],
    states: Mapping[str, NodeCacheState],
    parents: Mapping[str, Iterable[str]],
    options: CacheOptions,
    now: datetime,
    change_reason: ChangeReason | None = None,
) -> dict[str, CacheDecision]:
    """One decision per node of ``order`` (a topological order of the plan).

    Args:
        order: the planned nodes, every parent before its children.
        states: what is known about each of them.
        parents: each node's planned executable parents (through ephemeral models).
        options: the build's cache options.
        now: the time entries are judged at.
        change_reason: explains a key change from the two component maps
            (``cache_keys.first_change``); None reports "key changed".
    """
    decisions: dict[str, CacheDecision] = {}
    for uid in order:
        state = states[uid]
        decision = _decide_one(state, options, now, change_reason)
        if decision.prediction is Prediction.HIT:
            running = sorted(p for p in parents.get(uid, ()) if _runs(decisions.get(p)))
            if running:
                decision = _miss(state, f"upstream {running[0]} runs")
        decisions[uid] = decision
    return decisions


def _runs(decision: CacheDecision | None) -> bool:
    return decision is not None and decision.prediction is not Prediction.HIT


def _miss(state: NodeCacheState, reason: str) -> CacheDecision:
    return CacheDecision(state.node.unique_id, Prediction.MISS, reason, state.key, state.components)


def _decide_one(
    state: NodeCacheState,
    options: CacheOptions,
    now: datetime,
    change_reason: ChangeReason | None,
) -> CacheDecision:
    uid = state.node.unique_id
    excluded = options.exclusion(state.node)
    if excluded is not None:
        return CacheDecision(uid, Prediction.EXCLUDED, excluded)
    if state.key is None:
        return CacheDecision(uid, Prediction.EXCLUDED, "the cache policy gave no key")
    if options.refresh:
        return _miss(state, "cache refresh requested")
    previous = state.previous
    if previous is None:
        return _miss(state, "no previous run")
    if previous.key != state.key:
        why = change_reason(previous.components, state.components) if change_reason else None
        return _miss(state, why or "key changed")
    if not previous.is_valid(now):
        return _miss(state, "expired")
    if not state.relation_exists and state.node.resource_type not in _NO_RELATION:
        return _miss(state, "relation missing")
    return CacheDecision(uid, Prediction.HIT, "", state.key, state.components, entry=previous)


def cached_result(decision: CacheDecision) -> NodeResult:
    """The result a hit reports: the stored run's, as ``cached``, with its key and time."""
    entry = decision.entry
    if entry is None or decision.prediction is not Prediction.HIT:
        raise ValueError(f"{decision.unique_id} is not a cache hit")
    # Nothing ran now: the stored run's timing, rows and response are not this run's.
    return NodeResult(
        decision.unique_id,
        NodeStatus.CACHED,
        message=f"served from cache (stored {entry.cached_at.isoformat()})",
        cache_key=entry.key,
        cached_at=entry.cached_at,
        attempts=0,
    )


def count_predictions(decisions: Iterable[CacheDecision]) -> dict[Prediction, int]:
    """How many hits, misses and exclusions (every prediction present, maybe 0)."""
    counts = dict.fromkeys(Prediction, 0)
    for decision in decisions:
        counts[decision.prediction] += 1
    return counts


def planned_parents(manifest: Manifest, planned: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each planned node's planned parents: what it reads, traced through
    ephemeral models (which never run) to the planned nodes behind them."""
    ids = set(planned)
    tables = (manifest.nodes, manifest.unit_tests, manifest.functions)
    found: dict[str, frozenset[str]] = {}
    for uid in ids:
        table = next((t for t in tables if uid in t), None)
        if table is None:
            found[uid] = frozenset()
            continue
        parents: set[str] = set()
        todo, seen = list(table[uid].depends_on), set()
        while todo:
            parent = todo.pop()
            if parent in seen:
                continue
            seen.add(parent)
            if parent in ids:
                parents.add(parent)
            elif parent in manifest.nodes and manifest.nodes[parent].is_ephemeral:
                todo.extend(manifest.nodes[parent].depends_on)
        found[uid] = frozenset(parents)
    return found
