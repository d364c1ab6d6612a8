"""Typed reads of parsed JSON for ``codec``, each naming its key path; pure.

A wrong value raises ``MissingKey`` or ``WrongShape`` with the path of the
key relative to the entry being read; ``BadValue.under`` prefixes the path of
the entry (``nodes["model.a"]``), and ``codec`` turns the result into the
public ``ManifestKeyError`` or ``ManifestMalformedError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class BadValue(Exception):
    """Something wrong at key ``path`` (relative to the entry being structured)."""

    def __init__(self, path: str, problem: str = "") -> None:
        super().__init__(path)
        self.path, self.problem = path, problem

    def under(self, prefix: str) -> BadValue:
        """The same error, its path below ``prefix`` (``nodes["model.a"]``)."""
        return type(self)(f"{prefix}.{self.path}", self.problem)


class MissingKey(BadValue):
    """A required key is absent at ``path`` (turned into ManifestKeyError)."""


class WrongShape(BadValue):
    """A value has the wrong JSON type, or an impossible value, at ``path``."""


_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}


def json_kind(value: Any) -> str:
    """What JSON calls ``value``'s type: an object, a list, a string, int..."""
    return _KINDS.get(type(value), type(value).__name__)


def should_be(path: str, expected: str, value: Any) -> WrongShape:
    """The error for ``value`` at ``path``, which should be ``expected``."""
    return WrongShape(path, f"should be {expected}, not {json_kind(value)}")


def require(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]``.

    Raises:
        MissingKey: the key is absent or null.
    """
    if key not in data or data[key] is None:
        raise MissingKey(key)
    return data[key]


def text(data: Mapping[str, Any], key: str) -> str:
    """``data[key]``, a string: dbt never writes another type there.

    Raises:
        MissingKey: the key is absent or null.
        WrongShape: the value is not a string.
    """
    value = require(data, key)
    if not isinstance(value, str):
        raise should_be(key, "a string", value)
    return value


def json_object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``data[key]``, an optional JSON object (absent or null: empty).

    Raises:
        WrongShape: the value is not an object.
    """
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise should_be(key, "an object", value)
    return value


def table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A manifest table (``nodes``, ``parent_map``...): an object keyed by unique_id.

    Raises:
        WrongShape: the value is not an object (a list, even an empty one).
    """
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise should_be(key, "an object keyed by unique_id", value)
    return value


def strings(value: Any, path: str) -> tuple[str, ...]:
    """A list of strings; a lone string is one (dbt's configs allow ``tags: x``).

    Raises:
        WrongShape: neither a list nor a string.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise should_be(path, "a list of strings", value)
    return tuple(str(v) for v in value)


def unique_ids(value: Any, path: str) -> tuple[str, ...]:
    """A list of unique_ids: strings only, as dbt writes ``depends_on.nodes``.

    Raises:
        WrongShape: not a list, or an id that is not a string.
    """
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise should_be(path, "a list of unique_ids (strings)", value)
    return tuple(value)
