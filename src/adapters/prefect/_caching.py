"""Cross-run caching for a build: the options in both spellings, and the cache
one build consults and fills.

The decisions are the domain's (``domain.caching``); this module gathers
what they need (keys from the node policies, the store's latest entries, the
relations that exist), serves hits to the drivers and records what ran:
a success becomes its node's latest entry, an error removes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from prefect.filesystems import WritableFileSystem
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_TASKS_REFRESH_CACHE

from prefect_dbt_orchestrator.adapters.prefect._block_cache_store import resolve_storage
from prefect_dbt_orchestrator.adapters.prefect._cache_policy import (
    CachePolicyFactory,
    ManifestView,
    default_cache_policy,
    policy_key,
)
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.cache_keys import NodeKey, derive_cache_keys, first_change
from prefect_dbt_orchestrator.domain.caching import (
    DEFAULT_EXCLUDED_MATERIALIZATIONS,
    DEFAULT_EXCLUDED_TYPES,
    CacheDecision,
    CacheEntry,
    CacheOptions,
    NodeCacheState,
    Prediction,
    cached_result,
    decide_cache,
    planned_parents,
)
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.freshness import freshness_ttl
from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus
from prefect_dbt_orchestrator.ports.cache_store import CacheStore
from prefect_dbt_orchestrator.ports.executor import DbtExecutor

_LOG = logging.getLogger("prefect_dbt_orchestrator")
Storage = Path | str | WritableFileSystem | None
# seed 001's default for the enable_caching spelling
LEGACY_EXPIRATION = timedelta(days=1)
_UNSET: Any = object()


def _names(value: Iterable[object]) -> frozenset[str]:
    return frozenset(str(getattr(v, "value", v)) for v in value)


@attrs.frozen
class CacheConfig:
    """Cross-run caching, in one value (the ``cache=`` option).

    Attributes:
        expiration: how long a stored result is reusable (None: until its key changes).
        result_storage: where entries are kept when ``key_storage`` is not
            given: a directory ``Path``, a Prefect block slug
            (``"local-file-system/name"``) or a ``WritableFileSystem`` block.
        key_storage: where entries (key, fingerprints, result) are kept; same forms.
        use_source_freshness_expiration: each node lives as long as the
            smallest ``warn_after`` (else ``error_after``) of its upstream sources.
        exclude_materializations: never served from cache.
        exclude_resource_types: never served from cache (dbt's names or NodeTypes).
    """

    expiration: timedelta | None = None
    result_storage: Storage = None
    key_storage: Storage = None
    use_source_freshness_expiration: bool = False
    exclude_materializations: frozenset[str] = attrs.field(
        default=DEFAULT_EXCLUDED_MATERIALIZATIONS, converter=_names
    )
    exclude_resource_types: frozenset[str] = attrs.field(
        default=DEFAULT_EXCLUDED_TYPES, converter=_names
    )


@attrs.frozen
class CacheSetup:
    """Caching as the orchestrator runs it: the domain's options, where entries
    live, and the policy factory that gives each node its key."""

    options: CacheOptions
    storage: Storage = None
    policy_factory: CachePolicyFactory | None = None


def fold_cache_options(
    *,
    cache: CacheConfig | None,
    enable_caching: bool | None,
    cache_expiration: timedelta | None = _UNSET,
    result_storage: Storage = None,
    cache_key_storage: Storage = None,
    use_source_freshness_expiration: bool = False,
    cache_policy_factory: CachePolicyFactory | None = None,
) -> CacheSetup | None:
    """Either spelling (002's ``cache=CacheConfig``, 000/001's keywords) as one
    value; None when caching is off.

    Raises:
        OptionsConflictError: both spellings, or caching options with caching off.
    """
    legacy = {
        "enable_caching": enable_caching is not None,
        "cache_expiration": cache_expiration is not _UNSET,
        "result_storage": result_storage is not None,
        "cache_key_storage": cache_key_storage is not None,
        "use_source_freshness_expiration": bool(use_source_freshness_expiration),
    }
    given = [name for name, set_ in legacy.items() if set_]
    if cache is not None:
        return _from_config(cache, given, cache_policy_factory)
    enabled = enable_caching if enable_caching is not None else cache_policy_factory is not None
    if not enabled:
        extra = [n for n in given if n != "enable_caching"] + (
            ["cache_policy_factory"] if cache_policy_factory else []
        )
        if extra:
            raise OptionsConflictError(
                f"{', '.join(extra)} given but caching is off",
                "add enable_caching=True (or pass cache=CacheConfig(...))",
            )
        return None
    options = CacheOptions(
        expiration=LEGACY_EXPIRATION if cache_expiration is _UNSET else cache_expiration,
        use_source_freshness_expiration=use_source_freshness_expiration,
    )
    return CacheSetup(options, cache_key_storage or result_storage, cache_policy_factory)


def _from_config(
    cache: CacheConfig, given: list[str], factory: CachePolicyFactory | None
) -> CacheSetup:
    if not isinstance(cache, CacheConfig):
        raise OptionsConflictError(
            f"cache={cache!r} is not a CacheConfig", "pass cache=CacheConfig(...) or None"
        )
    if given:
        raise OptionsConflictError(
            f"cache=CacheConfig(...) and {', '.join(given)} both configure caching",
            "pass one spelling: move those options into CacheConfig(...)",
        )
    options = CacheOptions(
        expiration=cache.expiration,
        use_source_freshness_expiration=cache.use_source_freshness_expiration,
        exclude_materializations=cache.exclude_materializations,
        exclude_resource_types=cache.exclude_resource_types,
    )
    return CacheSetup(options, cache.key_storage or cache.result_storage, factory)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@attrs.define
class BuildCache:
    """One build's cache: the decision for each planned node, the store behind them."""

    store: CacheStore
    decisions: Mapping[str, CacheDecision]
    lifetimes: Mapping[str, timedelta | None]
    clock: Callable[[], datetime] = _utcnow
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def hit(self, unique_id: str) -> NodeResult | None:
        """The cached result to report instead of running the node, if it is a hit."""
        decision = self.decisions.get(unique_id)
        if decision is None or decision.prediction is not Prediction.HIT:
            return None
        return cached_result(decision)

    def record(self, result: NodeResult) -> NodeResult:
        """Store a cacheable node's success (with its key); forget it after an error."""
        decision = self.decisions.get(result.unique_id)
        if decision is None or decision.prediction is not Prediction.MISS or decision.key is None:
            return result
        try:
            if result.status is NodeStatus.SUCCESS:
                result = attrs.evolve(result, cache_key=decision.key)
                self.store.put(self._entry(decision, result))
            elif result.status is NodeStatus.ERROR:
                self.store.forget(result.unique_id)
        except OSError as exc:  # the build's results matter more than the cache
            _LOG.warning("could not update the cache entry of %s: %s", result.unique_id, exc)
        return result

    def _entry(self, decision: CacheDecision, result: NodeResult) -> CacheEntry:
        now = self.clock()
        lifetime = self.lifetimes.get(decision.unique_id)
        expires = None if lifetime is None else now + lifetime
        key = decision.key or ""
        return CacheEntry(decision.unique_id, key, decision.components, result, now, expires)


def default_storage() -> Path:
    """Where entries go without a storage option: under Prefect's local storage."""
    return Path(str(PREFECT_LOCAL_STORAGE_PATH.value())).expanduser() / "dbt-orchestrator-cache"


def prepare_cache(
    setup: CacheSetup,
    executor: DbtExecutor,
    build_plan: BuildPlan,
    invocation: InvocationOptions,
    project_dir: Path,
    source_state: Mapping[str, str] | None = None,
) -> BuildCache:
    """Decide every planned node (``plan()`` and the build call this alike).

    Raises:
        ExecutorUnavailable: dbt or the warehouse cannot be reached.
        OptionsConflictError: the storage cannot be used.
    """
    manifest = _manifest_of(build_plan)
    if PREFECT_TASKS_REFRESH_CACHE.value():  # Prefect's own "recompute everything" switch
        setup = attrs.evolve(setup, options=attrs.evolve(setup.options, refresh=True))
    order = [uid for wave in build_plan.waves for uid in wave.node_ids]
    # Exposures and saved queries run nothing: no key, no policy call (excluded).
    keyed = [uid for uid in order if not is_no_op(build_plan.nodes[uid])]
    nodes = [build_plan.nodes[uid] for uid in keyed]
    inputs = executor.cache_inputs(nodes, options=invocation)
    environment = inputs.environment
    keys = derive_cache_keys(manifest, keyed, environment)
    source_keys = (
        derive_cache_keys(manifest, keyed, environment, source_state=source_state)
        if source_state is not None
        else {}
    )
    view = ManifestView(manifest, keys, source_keys)
    node_keys = _policy_keys(setup.policy_factory, view, project_dir, build_plan.nodes, keyed)
    namespace = f"{manifest.project_name or 'project'}/{environment.target_name}"
    store = resolve_storage(setup.storage, default=default_storage(), namespace=namespace)
    states = {
        uid: _state(
            build_plan, uid, node_keys.get(uid), store, setup.options, inputs.existing_relations
        )
        for uid in order
    }
    parents = planned_parents(manifest, order)
    decisions = decide_cache(order, states, parents, setup.options, _utcnow(), first_change)
    by_sources = setup.options.use_source_freshness_expiration
    lifetimes = {
        uid: setup.options.lifetime(freshness_ttl(manifest, uid) if by_sources else None)
        for uid in order
    }
    return BuildCache(store, decisions, lifetimes)


def _manifest_of(build_plan: BuildPlan) -> Manifest:
    if build_plan.manifest is None:
        raise ValueError("caching needs the BuildPlan's manifest (plan_selection sets it)")
    return build_plan.manifest


def _state(
    build_plan: BuildPlan,
    uid: str,
    node_key: NodeKey | None,
    store: CacheStore,
    options: CacheOptions,
    existing: frozenset[str],
) -> NodeCacheState:
    node = build_plan.nodes[uid]
    if options.exclusion(node) is not None or node_key is None:
        return NodeCacheState(node, None if node_key is None else node_key.key)
    try:
        previous = store.latest(uid)
    except OSError as exc:  # an unreadable store is a miss, not a failed build
        _LOG.warning("could not read the cache entry of %s (%s): it runs", uid, exc)
        previous = None
    return NodeCacheState(node, node_key.key, node_key.components, previous, uid in existing)


def _policy_keys(
    factory: CachePolicyFactory | None,
    view: ManifestView,
    project_dir: Path,
    nodes: Mapping[str, Node],
    order: Sequence[str],
) -> dict[str, NodeKey | None]:
    """Each node's key from its policy; the built-in policy keeps the components."""
    chosen = factory or default_cache_policy
    found: dict[str, NodeKey | None] = {}
    for uid in order:
        node = nodes[uid]
        upstream = {
            p: up.key
            for p in node.depends_on
            if (up := found.get(p) or view.keys.get(p)) is not None
        }
        policy = chosen(project_dir, view, node, upstream)
        computed = policy_key(policy, node, upstream)
        builtin = getattr(policy, "node_key", None)
        if computed is None:
            found[uid] = None
        elif isinstance(builtin, NodeKey) and builtin.key == computed:
            found[uid] = builtin
        else:  # a custom policy: its key, with nothing finer to explain a change by
            found[uid] = NodeKey(uid, computed, {"cache policy key": computed})
    return found


def predictions(cache: BuildCache) -> tuple[dict[str, str], dict[str, str]]:
    """``hit``/``miss``/``excluded`` per node, and the reason of each non-hit."""
    kinds = {uid: d.prediction.value for uid, d in cache.decisions.items()}
    reasons = {uid: d.reason for uid, d in cache.decisions.items() if d.reason}
    return kinds, reasons
