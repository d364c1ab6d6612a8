"""The one cattrs converter from a ``manifest.json`` dict to value objects; pure.

Reads no files: the caller hands in the parsed JSON and a name for it (the
path) that errors quote. Unknown keys are ignored; keys dbt always writes are
required; a value of the wrong JSON type, or a node that depends on itself,
is an error naming its key path (never a node silently dropped or guessed);
schema versions v10 to v12 (dbt 1.6 to 1.11) are accepted.
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
from prefect_dbt_orchestrator.domain.json_shape import (
    BadValue,
    MissingKey,
    WrongShape,
    json_object,
    require,
    should_be,
    strings,
    table,
    text,
    unique_ids,
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
_NODE_TABLES = tuple(name for name in MANIFEST_TABLES if name != "sources")


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def resource_type_of(value: str) -> AnyResourceType:
    """The enum member for ``value``, or an explicit UnknownResourceType."""
    try:
        return ResourceType(value)
    except ValueError:
        return UnknownResourceType(value)


def _config(raw: Mapping[str, Any]) -> NodeConfig:
    severity = raw.get("severity")
    return NodeConfig(
        enabled=raw.get("enabled", True) is not False,
        materialized=raw.get("materialized"),
        severity=None if severity is None else str(severity),
        tags=strings(raw.get("tags"), "config.tags"),
        meta=raw.get("meta") or {},
        raw=raw,
    )


def _depends_on(data: Mapping[str, Any], unique_id: str) -> tuple[str, ...]:
    nodes = unique_ids(json_object(data, "depends_on").get("nodes"), "depends_on.nodes")
    if unique_id in nodes:  # dbt refuses such a project at parse ("Found a cycle")
        raise WrongShape("depends_on.nodes", f"lists the node itself ({unique_id})")
    return nodes


def _node_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    unique_id = text(data, "unique_id")
    config = json_object(data, "config")
    test_meta = json_object(data, "test_metadata")
    return {
        "unique_id": unique_id,
        "name": text(data, "name"),
        "resource_type": resource_type_of(text(data, "resource_type")),
        "package_name": text(data, "package_name"),
        "fqn": strings(data.get("fqn"), "fqn"),
        "path": data.get("path") or "",
        "original_file_path": data.get("original_file_path") or "",
        "config": _config(config),
        "tags": strings(data.get("tags"), "tags"),
        "depends_on": _depends_on(data, unique_id),
        "depends_on_macros": strings(
            json_object(data, "depends_on").get("macros"), "depends_on.macros"
        ),
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
        "group": data.get("group") or config.get("group"),
        "test_name": test_meta.get("name"),
        "test_namespace": test_meta.get("namespace"),
        "column_name": data.get("column_name"),
        "attached_node": data.get("attached_node"),
        "patch_path": data.get("patch_path"),
        "description": _optional_text(data, "description"),
        "meta": json_object(data, "meta"),
    }


def _optional_text(data: Mapping[str, Any], key: str) -> str:
    """``data[key]``, a string that may be absent or null (read as empty)."""
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise should_be(key, "a string", value)
    return value


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
    return Node(**_node_fields(data))


def _structure_source(data: Any, _: type) -> Source:
    return Source(
        **_node_fields(data),
        source_name=data.get("source_name") or "",
        identifier=data.get("identifier"),
        loaded_at_field=data.get("loaded_at_field"),
        freshness=_freshness(data.get("freshness")),
    )


def _structure_macro(data: Any, _: type) -> Macro:
    return Macro(
        unique_id=text(data, "unique_id"),
        name=text(data, "name"),
        package_name=data.get("package_name") or "",
        depends_on_macros=strings(
            json_object(data, "depends_on").get("macros"), "depends_on.macros"
        ),
        macro_sql=data.get("macro_sql") or "",
        original_file_path=data.get("original_file_path") or "",
    )


def _structure_group(data: Any, _: type) -> Group:
    return Group(
        unique_id=text(data, "unique_id"),
        name=text(data, "name"),
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
    written = str(metadata["dbt_schema_version"])
    match = _VERSION.search(written)
    if match is None or int(match.group(1)) not in SUPPORTED_SCHEMA_VERSIONS:
        raise ManifestVersionError(source, written)
    return int(match.group(1))


def _each(
    data: Mapping[str, Any], key: str, build: Callable[[Mapping[str, Any]], T]
) -> dict[str, T]:
    out: dict[str, T] = {}
    for uid, raw in table(data, key).items():
        where = f'{key}["{uid}"]'
        if not isinstance(raw, Mapping):
            raise should_be(where, "an object", raw)
        try:
            out[uid] = build(raw)
        except BadValue as bad:
            raise bad.under(where) from None
        if raw["unique_id"] != uid:
            raise WrongShape(f"{where}.unique_id", f"is {raw['unique_id']!r}, not its key")
    return out


def _edges(data: Mapping[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    return {uid: unique_ids(ids, f'{key}["{uid}"]') for uid, ids in table(data, key).items()}


def _disabled(data: Mapping[str, Any]) -> dict[str, tuple[Node, ...]]:
    out: dict[str, tuple[Node, ...]] = {}
    for uid, versions in table(data, "disabled").items():
        if not isinstance(versions, list):
            raise should_be(f'disabled["{uid}"]', "a list", versions)
        out[uid] = tuple(
            _disabled_entry(raw, f'disabled["{uid}"][{i}]') for i, raw in enumerate(versions)
        )
    return out


def _disabled_entry(raw: Any, where: str) -> Node:
    if not isinstance(raw, Mapping):
        raise should_be(where, "an object", raw)
    try:
        if raw.get("resource_type") == "source":
            return CONVERTER.structure(raw, Source)
        return CONVERTER.structure(raw, Node)
    except BadValue as bad:
        raise bad.under(where) from None


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
        require(data, key)
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
        selectors=table(data, "selectors"),
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
    except MissingKey as missing:
        raise ManifestKeyError(source, missing.path) from None
    except WrongShape as wrong:
        raise ManifestMalformedError(source, f"{wrong.path} {wrong.problem}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ManifestMalformedError(source, f"unexpected value ({exc})") from exc
