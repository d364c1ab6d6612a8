"""What a node task runs under: a global concurrency slot and a node timeout.

A named limit is checked before the build starts (it exists, it has slots);
a node waiting for a slot says so and on which limit, and gives up after
``concurrency_timeout_seconds`` with an error result. A node over its time is
cancelled in the warehouse by a watchdog thread, and its result says so.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import attrs
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.outcomes import ErrorInfo, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.timeouts import timed_out
from prefect_dbt_orchestrator.ports.executor import DbtExecutor

# A node that has waited this long for a slot is reported as waiting.
WAIT_NOTICE_SECONDS = 2.0


@attrs.frozen
class ConcurrencyLimitError(PlanError):
    """The named global concurrency limit cannot give a node a slot."""

    name: str
    problem: str

    def __str__(self) -> str:
        return (
            f"global concurrency limit {self.name!r} {self.problem}: nodes would wait forever; "
            f"create or resize it (prefect gcl create {self.name} --limit 4, or "
            f"prefect gcl update {self.name} --limit 4) or pass concurrency=<an int>"
        )


def check_limit(name: str) -> None:
    """Raise unless the server has an active limit ``name`` with at least one slot.

    Raises:
        ConcurrencyLimitError: no such limit, 0 slots, or inactive.
    """
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            raise ConcurrencyLimitError(name, "does not exist on the Prefect server") from None
    if limit.limit < 1:
        raise ConcurrencyLimitError(name, f"has {limit.limit} slots")
    if not limit.active:
        raise ConcurrencyLimitError(name, "is inactive")


@attrs.frozen
class SlotTimeout(Exception):
    """A node gave up waiting for a slot (becomes its error result)."""

    name: str
    seconds: float

    def result_for(self, unique_id: str) -> NodeResult:
        message = (
            f"waited {self.seconds:g} s for a slot of the global concurrency limit "
            f"{self.name!r} and gave up; raise the limit's slots or concurrency_timeout_seconds"
        )
        return NodeResult(
            unique_id, NodeStatus.ERROR, message=message, error=ErrorInfo(message, "SlotTimeout")
        )


@contextlib.contextmanager
def holding_slot(
    name: str | None, timeout: float | None, unique_id: str, logger: Any
) -> Iterator[None]:
    """Hold one slot of limit ``name`` (nothing when None) around the body.

    Raises:
        SlotTimeout: no slot within ``timeout`` seconds.
    """
    if name is None:
        yield
        return
    notice = threading.Timer(
        WAIT_NOTICE_SECONDS,
        logger.info,
        ("%s is waiting for a slot of the global concurrency limit %r", unique_id, name),
    )
    notice.daemon = True
    notice.start()
    try:
        with concurrency(name, occupy=1, timeout_seconds=timeout):
            notice.cancel()
            yield
    except TimeoutError as exc:
        raise SlotTimeout(name, float(timeout or 0)) from exc
    finally:
        notice.cancel()


@attrs.define
class Watchdog:
    """Cancels a node's queries when it runs past its limit."""

    executor: DbtExecutor
    unique_id: str
    seconds: float | None
    fired: threading.Event = attrs.Factory(threading.Event)
    _timer: threading.Timer | None = None

    def __enter__(self) -> Watchdog:
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.name = f"watchdog {self.unique_id}"
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        self.fired.set()
        self.executor.cancel((self.unique_id,))

    def judge(self, result: NodeResult) -> NodeResult:
        """``result``, or the timeout error when the watchdog cancelled the node."""
        if (
            self.fired.is_set()
            and self.seconds is not None
            and result.status is not NodeStatus.SUCCESS
        ):
            return timed_out(result, self.seconds)
        return result
