"""The one cattrs converter from a ``manifest.json`` dict to value objects; pure.

Reads no files: the caller hands in the parsed JSON and a name for it (the
path) that errors quote. Unknown keys are ignored; keys dbt always writes are
required; schema versions v10 to v12 (dbt 1.6 to 1.11) are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import cattrs

from prefect_dbt_orchestrator.domain.errors import (
    SUPPORTED_SCHEMA_VERSIONS,
    ManifestKeyError,
    ManifestMalformedError,
    ManifestVersionError,
)
from prefect_dbt_orchestrator.domain.manifest import (
    MANIFEST_TABLES,
    AnyResourceType,
    FreshnessRule,
    FreshnessThreshold,
    Group,
    Macro,
    Manifest,
    ManifestMetadata,
    Node,
    NodeConfig,
    ResourceType,
    Source,
    UnknownResourceType,
)

T = TypeVar("T")
_VERSION = re.compile(r"/manifest/v(\d+)\.json$")
# Every member table but sources, whose entries are structured as Source.
_NODE_TABLES = tuple(table for table in MANIFEST_TABLES if table != "sources")


class _Missing(Exception):
    """A required key is absent at ``path`` (turned into ManifestKeyError)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _WrongShape(Exception):
    """A value has the wrong JSON type at ``path``."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(path)
        self.path, self.expected = path, expected


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] is None:
        raise _Missing(f"{where}.{key}" if where else key)
    return data[key]


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise _WrongShape(key, "an object keyed by unique_id")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def resource_type_of(value: str) -> AnyResourceType:
    """The enum member for ``value``, or an explicit UnknownResourceType."""
    try:
        return ResourceType(value)
    except ValueError:
        return UnknownResourceType(value)


def _config(raw: Any) -> NodeConfig:
    raw = raw if isinstance(raw, Mapping) else {}
    severity = raw.get("severity")
    return NodeConfig(
        enabled=raw.get("enabled", True) is not False,
        materialized=raw.get("materialized"),
        severity=None if severity is None else str(severity),
        tags=_strings(raw.get("tags")),
        meta=raw.get("meta") or {},
        raw=raw,
    )


def _node_fields(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    depends = data.get("depends_on") or {}
    test_meta = data.get("test_metadata") or {}
    return {
        "unique_id": _require(data, "unique_id", where),
        "name": _require(data, "name", where),
        "resource_type": resource_type_of(_require(data, "resource_type", where)),
        "package_name": _require(data, "package_name", where),
        "fqn": _strings(data.get("fqn")),
        "path": data.get("path") or "",
        "original_file_path": data.get("original_file_path") or "",
        "config": _config(data.get("config")),
        "tags": _strings(data.get("tags")),
        "depends_on": _strings(depends.get("nodes")),
        "depends_on_macros": _strings(depends.get("macros")),
        "checksum": _checksum(data.get("checksum")),
        "raw_code": data.get("raw_code") or data.get("raw_sql") or "",
        "language": data.get("language"),
        "relation_name": data.get("relation_name"),
        "database": data.get("database"),
        "schema": data.get("schema"),
        "alias": data.get("alias"),
        "version": _version(data.get("version")),
        "latest_version": _version(data.get("latest_version")),
        "access": data.get("access"),
        "group": data.get("group") or (data.get("config") or {}).get("group"),
        "test_name": test_meta.get("name"),
        "test_namespace": test_meta.get("namespace"),
        "column_name": data.get("column_name"),
        "attached_node": data.get("attached_node"),
        "patch_path": data.get("patch_path"),
    }


def _checksum(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("checksum") or "")
    return "" if value is None else str(value)


def _threshold(value: Any) -> FreshnessThreshold | None:
    if not isinstance(value, Mapping) or value.get("count") is None:
        return None
    return FreshnessThreshold(int(value["count"]), str(value.get("period") or ""))


def _freshness(value: Any) -> FreshnessRule | None:
    if not isinstance(value, Mapping):
        return None
    return FreshnessRule(
        _threshold(value.get("warn_after")),
        _threshold(value.get("error_after")),
        value.get("filter"),
    )


def _structure_node(data: Any, _: type) -> Node:
    return Node(**_node_fields(data, ""))


def _structure_source(data: Any, _: type) -> Source:
    return Source(
        **_node_fields(data, ""),
        source_name=data.get("source_name") or "",
        identifier=data.get("identifier"),
        loaded_at_field=data.get("loaded_at_field"),
        freshness=_freshness(data.get("freshness")),
    )


def _structure_macro(data: Any, _: type) -> Macro:
    return Macro(
        unique_id=_require(data, "unique_id", ""),
        name=_require(data, "name", ""),
        package_name=data.get("package_name") or "",
        depends_on_macros=_strings((data.get("depends_on") or {}).get("macros")),
        macro_sql=data.get("macro_sql") or "",
        original_file_path=data.get("original_file_path") or "",
    )


def _structure_group(data: Any, _: type) -> Group:
    return Group(
        unique_id=_require(data, "unique_id", ""),
        name=_require(data, "name", ""),
        package_name=data.get("package_name") or "",
        owner=data.get("owner") or {},
    )


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(Node, _structure_node)
    converter.register_structure_hook(Source, _structure_source)
    converter.register_structure_hook(Macro, _structure_macro)
    converter.register_structure_hook(Group, _structure_group)
    return converter


CONVERTER = _make_converter()


def schema_version(data: Mapping[str, Any], source: str) -> int:
    """The manifest schema number (12 for dbt 1.8 to 1.11).

    Raises:
        ManifestKeyError: no ``metadata.dbt_schema_version``.
        ManifestVersionError: the version is unreadable or unsupported.
    """
    metadata = data.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("dbt_schema_version"):
        raise ManifestKeyError(source, "metadata.dbt_schema_version")
    text = str(metadata["dbt_schema_version"])
    match = _VERSION.search(text)
    if match is None or int(match.group(1)) not in SUPPORTED_SCHEMA_VERSIONS:
        raise ManifestVersionError(source, text)
    return int(match.group(1))


def _each(
    data: Mapping[str, Any], key: str, build: Callable[[Mapping[str, Any]], T]
) -> dict[str, T]:
    out: dict[str, T] = {}
    for uid, raw in _table(data, key).items():
        if not isinstance(raw, Mapping):
            raise _WrongShape(f'{key}["{uid}"]', "an object")
        try:
            out[uid] = build(raw)
        except _Missing as missing:
            raise _Missing(f'{key}["{uid}"].{missing.path}') from None
    return out


def _edges(data: Mapping[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    return {uid: _strings(ids) for uid, ids in _table(data, key).items()}


def _disabled(data: Mapping[str, Any]) -> dict[str, tuple[Node, ...]]:
    out: dict[str, tuple[Node, ...]] = {}
    for uid, versions in _table(data, "disabled").items():
        if not isinstance(versions, list):
            raise _WrongShape(f'disabled["{uid}"]', "a list")
        out[uid] = tuple(
            _disabled_entry(raw, f'disabled["{uid}"][{i}]') for i, raw in enumerate(versions)
        )
    return out


def _disabled_entry(raw: Mapping[str, Any], where: str) -> Node:
    try:
        if raw.get("resource_type") == "source":
            return CONVERTER.structure(raw, Source)
        return CONVERTER.structure(raw, Node)
    except _Missing as missing:
        raise _Missing(f"{where}.{missing.path}") from None


def _metadata(data: Mapping[str, Any], version: int) -> ManifestMetadata:
    raw = data["metadata"]
    return ManifestMetadata(
        schema_version=version,
        dbt_version=str(raw.get("dbt_version") or ""),
        project_name=raw.get("project_name"),
        adapter_type=raw.get("adapter_type"),
        invocation_id=raw.get("invocation_id"),
    )


def _build(data: Mapping[str, Any], version: int) -> Manifest:
    for key in ("nodes", "sources"):
        _require(data, key, "")
    tables: dict[str, Any] = {
        key: _each(data, key, lambda raw: CONVERTER.structure(raw, Node)) for key in _NODE_TABLES
    }
    return Manifest(
        metadata=_metadata(data, version),
        sources=_each(data, "sources", lambda raw: CONVERTER.structure(raw, Source)),
        macros=_each(data, "macros", lambda raw: CONVERTER.structure(raw, Macro)),
        groups=_each(data, "groups", lambda raw: CONVERTER.structure(raw, Group)),
        disabled=_disabled(data),
        parent_map=_edges(data, "parent_map"),
        child_map=_edges(data, "child_map"),
        selectors=_table(data, "selectors"),
        **tables,
    )


def structure_manifest(data: Any, *, source: str = "manifest.json") -> Manifest:
    """Build a Manifest from the parsed JSON of ``manifest.json``.

    Args:
        data: the parsed JSON document.
        source: what to call it in errors (usually its path).

    Raises:
        ManifestMalformedError: ``data`` is not an object of the manifest's shape.
        ManifestKeyError: a key dbt always writes is missing (named with its path).
        ManifestVersionError: the schema version is not v10, v11 or v12.
    """
    if not isinstance(data, Mapping):
        raise ManifestMalformedError(source, f"expected a JSON object, got {type(data).__name__}")
    version = schema_version(data, source)
    try:
        return _build(data, version)
    except _Missing as missing:
        raise ManifestKeyError(source, missing.path) from None
    except _WrongShape as wrong:
        raise ManifestMalformedError(source, f"{wrong.path} should be {wrong.expected}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ManifestMalformedError(source, f"unexpected value ({exc})") from exc
