"""The lines ``dbt ls`` prints for each ``--output`` format, from ``manifest.json``.

``dbt ls`` prints each selected resource (sorted by unique_id) as dbt's own
object serialized; ``manifest.json`` holds the same serialization, so every
line is built from the manifest's JSON, never from our value objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from prefect_dbt_orchestrator.domain.manifest import MANIFEST_TABLES

# The keys ``dbt ls --output json`` keeps when --output-keys is not given, in
# the order the resource's own JSON has them (dbt's ListTask.ALLOWED_KEYS).
DEFAULT_JSON_KEYS = frozenset(
    {
        "alias",
        "name",
        "package_name",
        "depends_on",
        "tags",
        "config",
        "resource_type",
        "source_name",
        "original_file_path",
        "unique_id",
    }
)
# Resource types ``--output selector`` prints as ``type:package.name``.
_BY_PACKAGE_AND_NAME = frozenset({"exposure", "metric", "saved_query", "semantic_model"})
OUTPUTS = ("json", "name", "selector", "path")


def resources(manifest_json: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every listable resource of the manifest JSON, by unique_id."""
    merged: dict[str, Mapping[str, Any]] = {}
    for table in MANIFEST_TABLES:  # the tables ``dbt ls`` lists from
        merged.update(manifest_json.get(table) or {})
    return merged


def lines(
    output: str,
    unique_ids: Iterable[str],
    table: Mapping[str, Mapping[str, Any]],
    output_keys: Sequence[str] = (),
) -> Iterator[str]:
    """What ``dbt ls --output OUTPUT [--output-keys ...]`` prints, one line per id."""
    for uid in sorted(unique_ids):
        resource = table[uid]
        if output == "json":
            yield json.dumps(json_fields(resource, output_keys))
        elif output == "name":
            yield search_name(resource)
        elif output == "selector":
            yield selector(resource)
        else:
            yield str(resource.get("original_file_path"))


def _nested(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def json_fields(resource: Mapping[str, Any], output_keys: Sequence[str] = ()) -> dict[str, Any]:
    """dbt's JSON line: the default keys in the resource's order, or the asked keys
    in the asked order (a dotted key is kept unless its value is null or missing)."""
    if not output_keys:
        return {k: v for k, v in resource.items() if k in DEFAULT_JSON_KEYS}
    found: dict[str, Any] = {}
    for key in output_keys:
        if "." in key:
            value = _nested(resource, key)
            if value is not None:
                found[key] = value
        elif key in resource:
            found[key] = resource[key]
    return found


def search_name(resource: Mapping[str, Any]) -> str:
    """``--output name``: dbt's ``search_name`` (``source.table``, ``model.vN``, else name)."""
    kind = resource.get("resource_type")
    name = str(resource["name"])
    if kind == "source":
        return f"{resource['source_name']}.{name}"
    if kind == "model" and resource.get("version") is not None:
        return f"{name}.v{resource['version']}"
    return name


def selector(resource: Mapping[str, Any]) -> str:
    """``--output selector``: the selector dbt prints to find this resource again."""
    kind = resource.get("resource_type")
    package, name = resource["package_name"], resource["name"]
    if kind == "source":
        return f"source:{package}.{resource['source_name']}.{name}"
    if kind in _BY_PACKAGE_AND_NAME:
        return f"{kind}:{package}.{name}"
    if kind == "unit_test":
        version = resource.get("version")
        versioned = name if version is None else f"{name}_v{version}"
        return f"unit_test:{package}.{versioned}"
    return ".".join(resource["fqn"])
