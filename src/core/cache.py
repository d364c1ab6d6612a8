"""``prefect_dbt_orchestrator.core.cache``: the seeds' path to the cache policies."""

from prefect_dbt_orchestrator.adapters.prefect import (
    CacheConfig,
    CachePolicyFactory,
    DbtNodeCachePolicy,
    ManifestView,
    create_freshness_aware_cache_policy,
)

__all__ = [
    "CacheConfig",
    "CachePolicyFactory",
    "DbtNodeCachePolicy",
    "ManifestView",
    "create_freshness_aware_cache_policy",
]
