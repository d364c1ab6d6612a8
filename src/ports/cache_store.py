"""The cache store port: where each node's last successful result is kept between runs."""

from __future__ import annotations

from typing import Protocol

from prefect_dbt_orchestrator.domain.caching import CacheEntry

__all__ = ["CacheEntry", "CacheStore"]


class CacheStore(Protocol):
    """One entry per node: the latest successful run, whatever its key.

    Only the latest is kept because only it matches the relation in the
    warehouse: an older entry with the same key as today's would describe a
    table that a later run has since replaced.

    A missing or unreadable (corrupt, truncated) entry reads as None, with a
    warning: that is data, a cache miss. Writes are atomic (a reader sees the
    old entry or the new one, never part of one) and safe with concurrent
    writers (the last one wins). ``OSError`` propagates when storage itself
    fails.
    """

    def latest(self, unique_id: str) -> CacheEntry | None:
        """The node's latest entry, or None."""
        ...

    def put(self, entry: CacheEntry) -> None:
        """Make ``entry`` its node's latest entry, atomically."""
        ...

    def forget(self, unique_id: str) -> None:
        """Drop the node's entry (it failed: its relation may no longer match). No-op
        when there is none."""
        ...
