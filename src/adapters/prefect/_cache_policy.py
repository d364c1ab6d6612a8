"""Prefect cache policies for dbt nodes, and the factory hook the seeds describe.

A policy's ``compute_key`` gives a node's cache key. The orchestrator asks
each node's policy for its key before the build (so ``plan()`` can predict
hits) and serves hits from its own store: a hit also needs the node's
relation to exist and its upstream nodes to be hits, which a key alone
cannot say. No policy includes the flow run's id: keys hold across runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from prefect_dbt_orchestrator.domain.cache_keys import NodeKey
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node


def _keys(value: Mapping[str, NodeKey]) -> Mapping[str, NodeKey]:
    return MappingProxyType(dict(value))


@attrs.frozen
class ManifestView:
    """What a cache policy factory may read about the build.

    Attributes:
        manifest: the project's manifest.
        keys: the built-in key of every planned node (and what it is made of).
        source_keys: the built-in keys with each upstream source's
            ``max_loaded_at`` folded in; empty unless a factory asked for
            source freshness (``needs_source_freshness``).
    """

    manifest: Manifest
    keys: Mapping[str, NodeKey] = attrs.field(factory=dict, converter=_keys)
    source_keys: Mapping[str, NodeKey] = attrs.field(factory=dict, converter=_keys)


# (project_dir, manifest_view, node, upstream_keys) -> the node's policy
CachePolicyFactory = Callable[[Path, ManifestView, Node, dict[str, str]], CachePolicy]


class DbtNodeCachePolicy(CachePolicy):
    """The built-in policy: the node's key from ``domain.cache_keys``.

    ``node_key`` keeps every component's fingerprint, so a miss can say which
    one changed.
    """

    def __init__(self, node_key: NodeKey) -> None:
        super().__init__()
        self.node_key = node_key

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        return self.node_key.key


def default_cache_policy(
    project_dir: Path, manifest_view: ManifestView, node: Node, upstream_keys: dict[str, str]
) -> DbtNodeCachePolicy:
    """The policy used without a ``cache_policy_factory``."""
    return DbtNodeCachePolicy(manifest_view.keys[node.unique_id])


def create_freshness_aware_cache_policy(
    project_dir: Path, manifest_view: ManifestView, node: Node, upstream_keys: dict[str, str]
) -> DbtNodeCachePolicy:
    """A policy whose key also holds the ``max_loaded_at`` of every source
    upstream of the node: new rows in a source miss everything that reads it.

    The orchestrator runs ``dbt source freshness`` for the sources upstream
    of the selection before keys are computed (this factory asks for it).
    """
    keys = manifest_view.source_keys or manifest_view.keys
    return DbtNodeCachePolicy(keys[node.unique_id])


create_freshness_aware_cache_policy.needs_source_freshness = True  # type: ignore[attr-defined]


def needs_source_freshness(factory: CachePolicyFactory | None) -> bool:
    """Whether ``factory`` wants source freshness in its keys."""
    return bool(getattr(factory, "needs_source_freshness", False))


def policy_key(policy: CachePolicy, node: Node, upstream_keys: Mapping[str, str]) -> str | None:
    """Ask a policy for a node's key the way Prefect would, outside a task run.

    The inputs are what the node's task would receive; a custom policy that
    needs a live task run context gets None for it.
    """
    inputs = {"unique_id": node.unique_id, "upstream_keys": dict(upstream_keys)}
    return policy.compute_key(None, inputs, {})  # type: ignore[arg-type]
