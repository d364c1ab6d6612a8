"""Prefect-free adapters: a thread-pool driver, the system clock, file readers."""

from adapters.local.clock import SystemClock
from adapters.local.manifest_file import read_manifest
from adapters.local.thread_driver import ThreadPoolDriver

__all__ = ["SystemClock", "ThreadPoolDriver", "read_manifest"]
