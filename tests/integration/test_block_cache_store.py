"""The cache store over Prefect file-system blocks, and the ``cache_storage`` choice.

Real blocks saved to and loaded from the session's Prefect server: a
``LocalFileSystem`` (served by the atomic file store), a ``RemoteFileSystem``
over fsspec's in-memory file system (the block store itself, with tombstones),
a ``Secret`` (not a file system), and blocks of our own whose methods are a
plain ``async def`` or raise a cloud client's not-found error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.system import Secret
from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem
from pydantic import SecretStr

from prefect_dbt_orchestrator.adapters.local.file_cache_store import (
    FileCacheStore,
    entry_path,
)
from prefect_dbt_orchestrator.adapters.prefect._block_cache_store import (
    BlockCacheStore,
    resolve_storage,
)
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from tests.integration.conftest import REPO
from tests.unit.test_file_cache_store import UID, entry_for

pytestmark = pytest.mark.integration

LOGGER = "prefect_dbt_orchestrator"
NAMESPACE = "my_project/dev"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.fixture
def memory_block() -> RemoteFileSystem:
    return RemoteFileSystem(basepath=f"memory://{unique_name('cache')}")


# ---------------------------------------------------------------- resolve_storage


def test_none_and_a_path_are_directories(tmp_path: Path) -> None:
    assert resolve_storage(None, default=tmp_path, namespace="p") == FileCacheStore(tmp_path, "p")
    other = tmp_path / "other"
    assert resolve_storage(other, default=tmp_path, namespace="p") == FileCacheStore(other, "p")


def test_a_saved_local_file_system_block_is_found_by_slug_and_writes_atomically(
    tmp_path: Path,
) -> None:
    name = unique_name("cache")
    LocalFileSystem(basepath=str(tmp_path)).save(name)
    store = resolve_storage(
        f"local-file-system/{name}", default=tmp_path / "unused", namespace=NAMESPACE
    )
    assert isinstance(store, BlockCacheStore)
    store.put(entry_for("old"))
    store.put(entry_for("new"))
    assert store.latest(UID) == entry_for("new")
    # The directory store did the writing: same file, no temp file beside it.
    assert FileCacheStore(tmp_path, NAMESPACE).latest(UID) == entry_for("new")
    folder = tmp_path / "my_project" / "dev"
    assert [p.name for p in folder.iterdir()] == [f"{UID}.json"]
    store.forget(UID)
    assert store.latest(UID) is None
    assert list(folder.iterdir()) == []  # deleted, not a tombstone
    assert not (tmp_path / "unused").exists()


def test_a_block_slug_that_names_no_saved_block_is_an_options_error(tmp_path: Path) -> None:
    slug = f"local-file-system/{unique_name('missing')}"
    with pytest.raises(OptionsConflictError) as caught:
        resolve_storage(slug, default=tmp_path, namespace="")
    message = str(caught.value)
    assert slug in message
    assert "save" in message and "prefect block" in message


def test_a_block_of_an_unknown_type_is_an_options_error(tmp_path: Path) -> None:
    with pytest.raises(OptionsConflictError, match="no-such-block-type/x"):
        resolve_storage("no-such-block-type/x", default=tmp_path, namespace="")


@pytest.mark.parametrize("slug", ["my-cache", "a/b/c", "/my-cache", "local-file-system/"])
def test_a_str_that_is_not_a_block_slug_is_an_options_error(tmp_path: Path, slug: str) -> None:
    with pytest.raises(OptionsConflictError, match="block slug") as caught:
        resolve_storage(slug, default=tmp_path, namespace="")
    assert "pathlib.Path" in str(caught.value)


def test_a_block_that_is_not_a_file_system_is_an_options_error(tmp_path: Path) -> None:
    name = unique_name("not-storage")
    Secret(value=SecretStr("do-not-print-me")).save(name)
    slug = f"secret/{name}"
    with pytest.raises(OptionsConflictError) as caught:
        resolve_storage(slug, default=tmp_path, namespace="")
    message = str(caught.value)
    assert slug in message and "WritableFileSystem" in message
    assert "local-file-system" in message and "s3-bucket" in message
    assert "do-not-print-me" not in message


def test_a_value_of_another_type_is_an_options_error(tmp_path: Path) -> None:
    with pytest.raises(OptionsConflictError, match="pathlib.Path"):
        resolve_storage(42, default=tmp_path, namespace="")  # type: ignore[arg-type]


# ---------------------------------------------------------------- a remote block


def test_entries_round_trip_through_a_remote_block(memory_block: RemoteFileSystem) -> None:
    store = resolve_storage(memory_block, default=Path("unused"), namespace=NAMESPACE)
    assert store == BlockCacheStore(memory_block, NAMESPACE)
    assert store.latest(UID) is None
    store.put(entry_for("old"))
    store.put(entry_for("new"))
    store.put(entry_for("other", "model.a/b c"))
    assert store.latest(UID) == entry_for("new")
    assert store.latest("model.a/b c") == entry_for("other", "model.a/b c")
    assert BlockCacheStore(memory_block, "my_project/prod").latest(UID) is None


def test_a_saved_remote_block_is_found_by_slug(memory_block: RemoteFileSystem) -> None:
    name = unique_name("remote")
    memory_block.save(name)
    store = resolve_storage(f"remote-file-system/{name}", default=Path("x"), namespace="")
    store.put(entry_for("k1"))
    assert BlockCacheStore(memory_block).latest(UID) == entry_for("k1")


def test_forget_on_a_block_writes_a_tombstone_that_reads_as_none_quietly(
    memory_block: RemoteFileSystem, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlockCacheStore(memory_block, NAMESPACE)
    store.forget(UID)  # nothing stored: nothing written
    with pytest.raises(FileNotFoundError):
        memory_block.read_path(entry_path(UID, NAMESPACE))
    store.put(entry_for("k1"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.forget(UID)
        assert store.latest(UID) is None
        store.forget(UID)
    raw = memory_block.read_path(entry_path(UID, NAMESPACE))
    assert isinstance(raw, bytes) and b'"forgotten": true' in raw
    assert warnings_of(caplog) == []
    store.put(entry_for("again"))
    assert store.latest(UID) == entry_for("again")


@pytest.mark.parametrize("content", [b'{"format": "dbt-orchestrator-cache/1", "uni', b"\xff"])
def test_an_unreadable_block_file_is_a_miss_with_one_warning(
    memory_block: RemoteFileSystem, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    memory_block.write_path(entry_path(UID, NAMESPACE), content)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert BlockCacheStore(memory_block, NAMESPACE).latest(UID) is None
    warned = warnings_of(caplog)
    assert len(warned) == 1
    assert entry_path(UID, NAMESPACE) in warned[0].getMessage()
    assert "cache miss" in warned[0].getMessage()


def test_the_store_works_inside_a_sync_flow(memory_block: RemoteFileSystem) -> None:
    store = BlockCacheStore(memory_block, NAMESPACE)

    @flow
    def sync_flow() -> str | None:
        store.put(entry_for("from-sync-flow"))
        seen = store.latest(UID)
        return seen.key if seen else None

    assert sync_flow() == "from-sync-flow"
    assert store.latest(UID) == entry_for("from-sync-flow")


# In a process of its own: Prefect leaves an API socket open when asyncio.run
# closes an async flow's loop, a ResourceWarning that would fail this session.
ASYNC_FLOW_SCRIPT = """
import asyncio, sys
from prefect import flow
from prefect.filesystems import RemoteFileSystem
from prefect_dbt_orchestrator.adapters.prefect._block_cache_store import BlockCacheStore
from tests.integration.conftest import REPO
from tests.unit.test_file_cache_store import UID, entry_for

store = BlockCacheStore(RemoteFileSystem(basepath="memory://async-flow"), "my_project/dev")

@flow
async def async_flow():
    store.put(entry_for("from-async-flow"))
    seen = store.latest(UID)
    store.forget(UID)
    return (seen == entry_for("from-async-flow"), store.latest(UID))

print(asyncio.run(async_flow()))
"""


def test_the_store_works_inside_an_async_flow(prefect_api_url: str) -> None:
    # Inside an async flow a block's read_path returns a coroutine unless told
    # _sync=True: the store's sync methods must still return entries.
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    command = [sys.executable, "-c", ASYNC_FLOW_SCRIPT]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "(True, None)", done.stdout


def test_the_store_works_in_a_coroutine_outside_any_flow(memory_block: RemoteFileSystem) -> None:
    store = BlockCacheStore(memory_block, NAMESPACE)

    async def in_a_running_loop() -> str | None:
        store.put(entry_for("from-a-loop"))
        seen = store.latest(UID)
        return seen.key if seen else None

    assert asyncio.run(in_a_running_loop()) == "from-a-loop"


# ---------------------------------------------------------------- blocks of other shapes

_PLAIN_ASYNC_FILES: dict[str, bytes] = {}


class PlainAsyncFileSystem(WritableFileSystem):
    """A block whose methods are plain ``async def``, as WritableFileSystem declares."""

    _block_type_name = "Cache Test Plain Async File System"

    async def read_path(self, path: str) -> bytes:
        await asyncio.sleep(0)
        try:
            return _PLAIN_ASYNC_FILES[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    async def write_path(self, path: str, content: bytes) -> None:
        await asyncio.sleep(0)
        _PLAIN_ASYNC_FILES[path] = content


class ClientError(Exception):
    """Shaped like botocore's: what an S3 block raises for a key that is not there."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response: dict[str, Any] = {"Error": {"Code": code}}


class CloudFileSystem(WritableFileSystem):
    """A block whose sync methods raise a cloud client's errors."""

    _block_type_name = "Cache Test Cloud File System"
    error_code: str = "NoSuchKey"

    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        raise ClientError(self.error_code)

    def write_path(self, path: str, content: bytes) -> None:  # type: ignore[override]
        raise ClientError("AccessDenied")


def test_a_block_with_plain_async_methods_is_run_to_completion() -> None:
    store = BlockCacheStore(PlainAsyncFileSystem(), unique_name("ns"))
    assert store.latest(UID) is None
    store.put(entry_for("k1"))
    assert store.latest(UID) == entry_for("k1")
    store.forget(UID)
    assert store.latest(UID) is None


@pytest.mark.parametrize("code", ["NoSuchKey", "404"])
def test_a_cloud_clients_not_found_reads_as_none(
    code: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlockCacheStore(CloudFileSystem(error_code=code))
    assert store.latest(UID) is None
    store.forget(UID)  # nothing stored: no write attempted
    assert warnings_of(caplog) == []


def test_other_block_failures_raise_oserror_with_the_cause() -> None:
    store = BlockCacheStore(CloudFileSystem(error_code="AccessDenied"), NAMESPACE)
    with pytest.raises(OSError, match="could not read") as read:
        store.latest(UID)
    assert isinstance(read.value.__cause__, ClientError)
    with pytest.raises(OSError, match="could not write") as write:
        store.put(entry_for("k1"))
    assert isinstance(write.value.__cause__, ClientError)
