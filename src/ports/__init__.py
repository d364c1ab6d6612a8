"""The ports: Protocols the drivers call. One port per module; errors beside them."""

from prefect_dbt_orchestrator.ports.artifact_sink import ArtifactSink
from prefect_dbt_orchestrator.ports.cache_store import CacheEntry, CacheStore
from prefect_dbt_orchestrator.ports.clock import Clock
from prefect_dbt_orchestrator.ports.executor import DbtExecutor, ExecutorUnavailable
from prefect_dbt_orchestrator.ports.node_selector import NodeSelector

__all__ = [
    "ArtifactSink",
    "CacheEntry",
    "CacheStore",
    "Clock",
    "DbtExecutor",
    "ExecutorUnavailable",
    "NodeSelector",
]
