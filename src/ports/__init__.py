"""The ports: Protocols the drivers call. One port per module; errors beside them."""

from ports.artifact_sink import ArtifactSink
from ports.cache_store import CacheEntry, CacheStore
from ports.clock import Clock
from ports.executor import DbtExecutor, ExecutorUnavailable
from ports.node_selector import NodeSelector

__all__ = [
    "ArtifactSink",
    "CacheEntry",
    "CacheStore",
    "Clock",
    "DbtExecutor",
    "ExecutorUnavailable",
    "NodeSelector",
]
