"""The cache store over a Prefect file-system block, and the choice of store from
the ``cache_storage`` option.

Entries use the local store's JSON and file names (``file_cache_store``), so a
directory and a ``LocalFileSystem`` block over it hold the same files. Block
methods are called synchronously from any context (see ``_call_sync``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_dbt_orchestrator.adapters.local.file_cache_store import (
    FileCacheStore,
    UnreadableEntry,
    entry_from_json,
    entry_path,
    entry_to_json,
    read_entry,
    tombstone_json,
)
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.ports.cache_store import CacheEntry, CacheStore

_T = TypeVar("_T")

# The not-found errors of the clients Prefect's storage integrations use,
# matched by name so that none of them is imported: botocore's ClientError
# carries code 404 / NoSuchKey, google-cloud raises NotFound, azure raises
# ResourceNotFoundError. fsspec (RemoteFileSystem, s3fs, gcsfs) raises
# FileNotFoundError.
_MISSING_NAMES = frozenset({"NotFound", "ResourceNotFoundError", "NoSuchKey"})
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


async def _awaited(value: Awaitable[_T]) -> _T:
    return await value


def _call_sync(method: Callable[..., Any], *args: Any) -> Any:
    """Call a block method from sync code, in or out of a (sync or async) flow.

    Prefect 3's built-in blocks wrap ``read_path``/``write_path`` in
    ``@async_dispatch`` and older integrations in ``@sync_compatible``; both
    choose sync or async from the calling context (inside an async flow they
    return a coroutine) unless told ``_sync=True``, and both mark themselves
    with an ``aio`` attribute. A block that declares a plain ``async def`` (as
    ``WritableFileSystem`` does) is run to completion with ``run_coro_as_sync``.
    """
    if hasattr(method, "aio"):
        return method(*args, _sync=True)
    result = method(*args)
    if inspect.isawaitable(result):
        return run_coro_as_sync(_awaited(result))
    return result


def _is_missing(exc: BaseException) -> bool:
    """Whether a block's read failed only because nothing is stored there."""
    if isinstance(exc, FileNotFoundError):
        return True
    if _MISSING_NAMES & {cls.__name__ for cls in type(exc).__mro__}:
        return True
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return isinstance(error, dict) and str(error.get("Code")) in _MISSING_CODES


def _raise_os_error(exc: Exception, action: str) -> NoReturn:
    """Raise the port's error for a block that failed: an OSError as it is, any
    other error as an OSError naming what failed, the original as its cause."""
    if isinstance(exc, OSError):
        raise exc
    raise OSError(f"the cache block could not {action}: {type(exc).__name__}") from exc


def _local_store(block: WritableFileSystem, namespace: str) -> FileCacheStore | None:
    # LocalFileSystem.write_path truncates the file then writes it, so a reader
    # can see half an entry: its directory gets the atomic FileCacheStore. A
    # missing basepath means the working directory, resolved on each call, as
    # the block itself does.
    if not isinstance(block, LocalFileSystem):
        return None
    return FileCacheStore(Path(block.basepath or ".").expanduser(), namespace)


@attrs.frozen
class BlockCacheStore(CacheStore):
    """Entries as JSON files written through any Prefect ``WritableFileSystem``
    block (``remote-file-system``, ``s3-bucket``, ``gcs-bucket``, ``azure-blob-storage``...).

    Blocks cannot delete, so ``forget`` writes a small tombstone that reads as
    None without a warning. Atomicity is the block's: object stores replace a
    whole object at once. A ``LocalFileSystem`` block is served by a
    ``FileCacheStore`` over its ``basepath`` instead, whose writes are atomic
    and whose ``forget`` deletes the file.

    Attributes:
        block: the file system the entries are written to.
        namespace: ``/``-separated parts (``"my_project/dev"``) under its base path.
    """

    block: WritableFileSystem
    namespace: str = ""
    _local: FileCacheStore | None = attrs.field(init=False, eq=False, repr=False)

    @_local.default
    def _local_default(self) -> FileCacheStore | None:
        return _local_store(self.block, self.namespace)

    def latest(self, unique_id: str) -> CacheEntry | None:
        """The node's entry; None when there is none or it was forgotten, and None
        with one warning when what is stored cannot be read as its entry.

        Raises:
            OSError: the block fails for another reason than a missing file.
        """
        if self._local is not None:
            return self._local.latest(unique_id)
        path = entry_path(unique_id, self.namespace)
        data = self._read(path)
        if data is None:
            return None
        return read_entry(data, source=self._source(path), unique_id=unique_id)

    def put(self, entry: CacheEntry) -> None:
        """Write ``entry`` over the node's previous one.

        Raises:
            OSError: the block cannot write.
        """
        if self._local is not None:
            self._local.put(entry)
        else:
            self._write(entry_path(entry.unique_id, self.namespace), entry_to_json(entry))

    def forget(self, unique_id: str) -> None:
        """Write a tombstone over the node's entry; nothing when none is stored.

        Raises:
            OSError: the block cannot read or write.
        """
        if self._local is not None:
            self._local.forget(unique_id)
            return
        path = entry_path(unique_id, self.namespace)
        data = self._read(path)
        if data is None or _is_tombstone(data, self._source(path)):
            return
        self._write(path, tombstone_json(unique_id))

    def _read(self, path: str) -> bytes | None:
        try:
            data = _call_sync(self.block.read_path, path)
        except Exception as exc:
            if _is_missing(exc):
                return None
            _raise_os_error(exc, f"read {self._source(path)}")
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)

    def _write(self, path: str, text: str) -> None:
        try:
            _call_sync(self.block.write_path, path, text.encode("utf-8"))
        except Exception as exc:
            _raise_os_error(exc, f"write {self._source(path)}")

    def _source(self, path: str) -> str:
        name = getattr(self.block, "_block_document_name", None) or "(unsaved)"
        return f"{path} in {type(self.block).__name__} block {name}"


def _is_tombstone(data: bytes, source: str) -> bool:
    try:
        return entry_from_json(data.decode("utf-8"), source=source) is None
    except (UnreadableEntry, UnicodeDecodeError):
        return False  # unreadable: the tombstone replaces it, ending its warnings


def resolve_storage(
    storage: Path | str | WritableFileSystem | None, *, default: Path, namespace: str
) -> CacheStore:
    """The cache store for the ``cache_storage`` option.

    A ``Path`` is a directory (``FileCacheStore``); a ``str`` is always a Prefect
    block slug ``"block-type/block-name"`` (``"local-file-system/my-cache"``),
    loaded from the Prefect API, never a directory; a ``WritableFileSystem``
    block is used as given (``BlockCacheStore``); None is ``default``, a directory.

    Raises:
        OptionsConflictError: the slug is malformed, names no saved block, or a
            block that is not a WritableFileSystem; or ``storage`` is another type.
    """
    given: object = storage
    if given is None:
        return FileCacheStore(default, namespace)
    if isinstance(given, Path):
        return FileCacheStore(given, namespace)
    if isinstance(given, str):
        return BlockCacheStore(_load_block(given), namespace)
    if isinstance(given, WritableFileSystem):
        return BlockCacheStore(given, namespace)
    raise OptionsConflictError(
        f"cache_storage {type(given).__name__} is not a storage",
        "pass a pathlib.Path (a directory), a block slug such as "
        "'local-file-system/my-cache', or a WritableFileSystem block",
    )


_BLOCK_KINDS = "such as local-file-system, remote-file-system, s3-bucket or gcs-bucket"


def _load_block(slug: str) -> WritableFileSystem:
    block_type, _, name = slug.partition("/")
    if not block_type or not name or "/" in name:
        raise OptionsConflictError(
            f"cache_storage {slug!r} is not a Prefect block slug",
            "a str names a block as 'block-type/block-name' (e.g. 'local-file-system/"
            "my-cache'); pass a pathlib.Path for a directory",
        )
    load: Callable[..., object] = Block.load
    try:
        block = load(slug, _sync=True)
    except (ValueError, KeyError) as exc:
        raise OptionsConflictError(
            f"cache_storage block {slug!r} cannot be loaded ({exc})",
            f"save it first, e.g. `LocalFileSystem(basepath=...).save({name!r})` in Python, "
            "or `prefect block register` the module of its type and create it with "
            f"`prefect block create {block_type}`; `prefect block ls` lists saved blocks",
        ) from exc
    if not isinstance(block, WritableFileSystem):
        raise OptionsConflictError(
            f"cache_storage block {slug!r} is a {type(block).__name__}, which cannot store files",
            f"name a WritableFileSystem block, {_BLOCK_KINDS}",
        )
    return block
