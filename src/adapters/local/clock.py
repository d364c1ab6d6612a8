"""The real clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect_dbt_orchestrator.ports.clock import Clock


class SystemClock(Clock):
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
