"""Stopping a running build: SIGINT, SIGTERM, ``stop()`` or the build timeout.

A stop request is remembered once (the first reason wins), and the callbacks
registered for it (cancelling the warehouse queries) run in a thread of their
own, so that a signal handler never waits on dbt's locks. The driver stops
starting nodes, lets the running ones end (cancelled), and ends every node
that did not finish as skipped, "build interrupted".
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import attrs

INTERRUPTED = "build interrupted"
_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)


@attrs.define
class BuildStop:
    """A request to stop one build, and what to do when it comes."""

    reason: str | None = None
    signal_number: int | None = None
    _event: threading.Event = attrs.Factory(threading.Event)
    _ended: threading.Event = attrs.Factory(threading.Event)
    _callbacks: list[Callable[[], None]] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def when_requested(
        self, callback: Callable[[], None], repeat_every: float | None = None
    ) -> None:
        """Run ``callback`` (in a thread) when the stop is requested; with
        ``repeat_every``, again every that many seconds until ``end()``: a
        query that started just after a cancel (a node between its pre-hook
        and its query) is cancelled by the next one."""
        if repeat_every is not None:
            callback = functools.partial(self._repeat, callback, repeat_every)
        with self._lock:
            self._callbacks.append(callback)

    def _repeat(self, callback: Callable[[], None], seconds: float) -> None:
        callback()
        while not self._ended.wait(seconds):
            callback()

    def end(self) -> None:
        """The build is over: repeating callbacks stop."""
        self._ended.set()

    def request(self, reason: str, signal_number: int | None = None) -> None:
        """Ask the build to stop; later requests keep the first reason."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason, self.signal_number = reason, signal_number
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            threading.Thread(target=callback, name="dbt-stop", daemon=True).start()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def _reason(signal_number: int) -> str:
    return f"{INTERRUPTED} ({signal.Signals(signal_number).name})"


@contextlib.contextmanager
def stop_on_signals(stop: BuildStop) -> Iterator[None]:
    """While the build runs, SIGINT and SIGTERM request ``stop``; a second one
    exits the process at once (128 + the signal's number, as a shell reports it).

    Signal handlers can only be set from the main thread: elsewhere (a build
    started from a worker thread) this does nothing and signals keep their
    handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handle(signal_number: int, _frame: FrameType | None) -> None:
        if stop.requested:
            os._exit(128 + signal_number)
        stop.request(_reason(signal_number), signal_number)

    for number in _SIGNALS:
        previous[number] = signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def stop_after(stop: BuildStop, seconds: float | None) -> Iterator[None]:
    """Request ``stop`` when the build has run ``seconds`` (the build timeout)."""
    if seconds is None:
        yield
        return
    reason = f"build timed out after {seconds:g} s (timeout_seconds)"
    timer = threading.Timer(seconds, stop.request, (reason,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
