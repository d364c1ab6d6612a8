"""Each node's latest cache entry as one JSON file; Prefect-free.

Also the entry's JSON form (``entry_to_json``, ``entry_from_json``) and the
mapping of unique_ids and namespaces to file names (``entry_path``), which the
Prefect block store reuses so both stores lay entries out the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import string
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.result_codec import result_from_dict, result_to_dict
from prefect_dbt_orchestrator.ports.cache_store import CacheEntry, CacheStore

FORMAT = "dbt-orchestrator-cache/1"
_LOG = logging.getLogger("prefect_dbt_orchestrator")
_KEPT = frozenset(string.ascii_letters + string.digits + "._-")
# Most file systems allow 255 bytes per name; the temp file adds ~45 to this.
_MAX_NAME = 180
_HASHED = 16


@attrs.frozen
class UnreadableEntry(ValueError):
    """A stored entry that cannot be decoded. Internal to the stores: ``latest``
    logs it once and answers None (a cache miss); it is never raised to callers."""

    source: str
    problem: str

    def __str__(self) -> str:
        return f"cache entry {self.source} cannot be read ({self.problem})"


# ---------------------------------------------------------------- names


def safe_name(text: str) -> str:
    """``text`` as one file or directory name: readable, and distinct for distinct texts.

    ``[A-Za-z0-9._-]`` are kept and every other UTF-8 byte (``%`` included) is
    written ``%XX``, so no two texts share a name; a leading dot is encoded
    too, so no name is hidden, ``.`` or ``..``. A name longer than 180 bytes
    keeps its first part plus ``~`` and a hash of the whole text (``~`` never
    appears otherwise). Names differing only in case share a file on a
    case-insensitive file system; ``latest`` then sees the other node's id
    inside and reads a miss, never the wrong entry.
    """
    encoded = "".join(
        char if char in _KEPT else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded) <= _MAX_NAME:
        return encoded
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASHED]
    return f"{encoded[: _MAX_NAME - _HASHED - 1]}~{digest}"


def entry_path(unique_id: str, namespace: str = "") -> str:
    """Where a node's entry lives under a store's root, ``/``-separated:
    ``my_project/dev/model.jaffle_shop.orders.json`` for namespace ``my_project/dev``.

    Each non-empty ``/`` part of ``namespace`` goes through ``safe_name``, so
    no namespace reaches outside the root.
    """
    parts = [safe_name(part) for part in namespace.split("/") if part]
    return "/".join([*parts, f"{safe_name(unique_id)}.json"])


# ---------------------------------------------------------------- codec


def _stamp(moment: datetime, field: str) -> str:
    if moment.utcoffset() is None:
        raise ValueError(f"{field} {moment.isoformat()} has no timezone; store aware datetimes")
    return moment.isoformat()


def entry_to_json(entry: CacheEntry) -> str:
    """The entry as JSON: format marker, components in key order, ISO 8601 datetimes
    with their offset, the result in ``run_build()``'s dict shape.

    Raises:
        ValueError: a datetime of the entry has no timezone.
        TypeError: the result's ``adapter_response`` holds a value JSON cannot hold.
    """
    document = {
        "format": FORMAT,
        "unique_id": entry.unique_id,
        "key": entry.key,
        "components": dict(entry.components),
        "result": result_to_dict(entry.result),
        "cached_at": _stamp(entry.cached_at, "cached_at"),
        "expires_at": None if entry.expires_at is None else _stamp(entry.expires_at, "expires_at"),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def tombstone_json(unique_id: str) -> str:
    """What a store that cannot delete writes to forget a node: reads as None, quietly."""
    return json.dumps({"format": FORMAT, "unique_id": unique_id, "forgotten": True}) + "\n"


def entry_from_json(text: str, *, source: str) -> CacheEntry | None:
    """The entry ``entry_to_json`` wrote, or None for a ``tombstone_json``.

    Raises:
        UnreadableEntry: not JSON (truncated...), another format, or a field of
            the wrong shape; ``source`` names the file in its message.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableEntry(source, f"not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UnreadableEntry(source, f"not in the {FORMAT} format")
    if document.get("forgotten") is True:
        return None
    try:
        return _entry(document)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableEntry(source, f"{type(exc).__name__}: {exc}") from exc


def _entry(document: Mapping[str, Any]) -> CacheEntry:
    unique_id = _string(document, "unique_id")
    components = document["components"]
    if not isinstance(components, dict) or not all(
        isinstance(value, str) for value in components.values()
    ):
        raise TypeError("components is not an object of strings")
    result = document["result"]
    if not isinstance(result, dict):
        raise TypeError("result is not an object")
    expires_at = document.get("expires_at")
    return CacheEntry(
        unique_id=unique_id,
        key=_string(document, "key"),
        components=components,
        result=result_from_dict(unique_id, result),
        cached_at=_moment(document["cached_at"]),
        expires_at=None if expires_at is None else _moment(expires_at),
    )


def _string(document: Mapping[str, Any], field: str) -> str:
    value = document[field]
    if not isinstance(value, str):
        raise TypeError(f"{field} is not a string")
    return value


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not an ISO 8601 string")
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() is None:
        raise ValueError(f"{value} has no timezone")
    return moment


def read_entry(data: bytes, *, source: str, unique_id: str) -> CacheEntry | None:
    """``unique_id``'s entry from stored bytes; None for a tombstone, and None with
    one warning for bytes that are not a readable entry of this node."""
    try:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableEntry(source, f"not UTF-8 text: {exc.reason}") from exc
        entry = entry_from_json(text, source=source)
        if entry is not None and entry.unique_id != unique_id:
            raise UnreadableEntry(source, f"it holds {entry.unique_id!r}, not {unique_id!r}")
    except UnreadableEntry as exc:
        _LOG.warning("%s; it reads as a cache miss: %s will run and rewrite it", exc, unique_id)
        return None
    return entry


# ---------------------------------------------------------------- the store


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` so that readers see its old content or the new, never a part.

    The bytes go to a temp file beside it (named for this process and thread,
    plus a random part, so concurrent writers never share one), are fsynced,
    then moved over ``path`` with ``os.replace``. The temp file is removed
    whatever fails.

    Raises:
        OSError: the directory cannot be created or the file written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}"
    temp = path.with_name(f".{path.name}.{unique}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # gone already once replaced


@attrs.frozen
class FileCacheStore(CacheStore):
    """Entries as JSON files: ``root/<namespace parts>/<safe unique_id>.json``.

    Writes are atomic (``write_atomically``), so concurrent threads and
    processes may share a root: the last ``put`` wins and a reader sees a whole
    entry. Directories are created on first write.

    Attributes:
        root: the directory that holds every namespace.
        namespace: ``/``-separated parts (``"my_project/dev"``), one directory each.
    """

    root: Path = attrs.field(converter=Path)
    namespace: str = ""

    def path_for(self, unique_id: str) -> Path:
        """The file that holds ``unique_id``'s entry."""
        return self.root.joinpath(*entry_path(unique_id, self.namespace).split("/"))

    def latest(self, unique_id: str) -> CacheEntry | None:
        """The node's entry; None when there is none, or (with one warning) when
        its file cannot be read as one.

        Raises:
            OSError: the file exists but the file system cannot read it.
        """
        path = self.path_for(unique_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return read_entry(data, source=str(path), unique_id=unique_id)

    def put(self, entry: CacheEntry) -> None:
        """Make ``entry`` its node's entry, atomically.

        Raises:
            OSError: the file system refuses the write (the old entry stays).
        """
        content = entry_to_json(entry).encode("utf-8")
        write_atomically(self.path_for(entry.unique_id), content)

    def forget(self, unique_id: str) -> None:
        """Delete the node's file; none is fine.

        Raises:
            OSError: the file exists and cannot be deleted.
        """
        self.path_for(unique_id).unlink(missing_ok=True)
