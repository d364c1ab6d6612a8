"""The cache store port: where node results are kept between runs."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from prefect_dbt_orchestrator.domain.outcomes import NodeResult


@attrs.frozen
class CacheEntry:
    """A result worth reusing while ``key`` holds and before ``expires_at``."""

    key: str
    result: NodeResult
    cached_at: datetime
    expires_at: datetime | None = None

    def is_valid(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class CacheStore(Protocol):
    """Reads and writes cache entries by key.

    A missing, expired or unreadable (corrupt) entry reads as None: that is
    data, a cache miss. Writes are atomic and safe with concurrent writers.
    Nothing is raised for a miss; ``OSError`` propagates when storage fails.
    """

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, or None."""
        ...

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry`` under its key, replacing any older one atomically."""
        ...
