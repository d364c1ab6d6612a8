"""Keep Prefect's engine lines about node tasks out of the build's log.

The driver writes one progress line per node end, with dbt's cause of a
failure. Prefect's task engine also reports every task end ("Finished in
state Completed()") and, for a failed node, the exception with a traceback.
For the library's own tasks those lines say the same thing again, so they are
dropped while a build runs; everything else Prefect logs (retries, crashes,
errors of the library itself, other tasks) passes untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect_dbt_orchestrator.adapters.prefect._tasks import NodeFailed, WaveFailed

TASK_LOGGER = "prefect.task_runs"
CONCURRENCY_LOGGER = "prefect._internal.concurrency"
OUR_TASKS = frozenset({"dbt-node", "dbt-wave", "dbt-skipped"})
_EXPECTED = (NodeFailed, WaveFailed)
_EXPECTED_NAMES = tuple(kind.__name__ for kind in _EXPECTED)


class EngineLineFilter(logging.Filter):
    """Drops the task engine's end-of-task lines for the library's own tasks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_name", None) not in OUR_TASKS:
            return True
        message = record.getMessage()
        if message.startswith("Finished in state"):
            failed = message.startswith("Finished in state Failed")
            return failed and not any(name in message for name in _EXPECTED_NAMES)
        if message.startswith("Task run failed with") and record.exc_info:
            # Retries exhausted on a node that failed in dbt: the progress
            # line already names it and dbt's cause; no traceback.
            return not isinstance(record.exc_info[1], _EXPECTED)
        return True


class SlotTimeoutFilter(logging.Filter):
    """Drops the concurrency service's error line for a slot wait that timed
    out: the node's own result and progress line say it, with the limit's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("ConcurrencySlotAcquisition" in message and "TimeoutError" in message)


@contextlib.contextmanager
def engine_lines_quieted() -> Iterator[None]:
    """Install the filters on Prefect's loggers for the ``with`` body."""
    installed = (
        (logging.getLogger(TASK_LOGGER), EngineLineFilter()),
        (logging.getLogger(CONCURRENCY_LOGGER), SlotTimeoutFilter()),
    )
    for logger, line_filter in installed:
        logger.addFilter(line_filter)
    try:
        yield
    finally:
        for logger, line_filter in installed:
            logger.removeFilter(line_filter)
