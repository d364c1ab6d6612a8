"""Prefect-free adapters: a thread-pool driver, the system clock, file readers, a
file cache store."""

from prefect_dbt_orchestrator.adapters.local.clock import SystemClock
from prefect_dbt_orchestrator.adapters.local.file_cache_store import FileCacheStore
from prefect_dbt_orchestrator.adapters.local.manifest_file import read_manifest
from prefect_dbt_orchestrator.adapters.local.thread_driver import ThreadPoolDriver

__all__ = ["FileCacheStore", "SystemClock", "ThreadPoolDriver", "read_manifest"]
