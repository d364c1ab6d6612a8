"""Factories for small manifests: ``model("orders", "stg_orders")`` and friends.

Parents are given by name and resolved to unique_ids by ``manifest_of``; the
result goes through the real codec, so every builder also exercises it.
"""

from __future__ import annotations

from typing import Any

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.manifest import Manifest

PROJECT = "proj"
SCHEMA_V12 = "https://schemas.getdbt.com/dbt/manifest/v12.json"


def _node(kind: str, name: str, parents: tuple[str, ...], **config: Any) -> dict[str, Any]:
    return {
        "unique_id": f"{kind}.{PROJECT}.{name}",
        "name": name,
        "resource_type": kind,
        "package_name": PROJECT,
        "fqn": [PROJECT, name],
        "path": f"{name}.sql",
        "original_file_path": f"models/{name}.sql",
        "config": {"enabled": True, **config},
        "tags": list(config.get("tags", [])),
        "depends_on": {"nodes": list(parents), "macros": []},
    }


def model(name: str, *parents: str, materialized: str = "table", **config: Any) -> dict[str, Any]:
    return _node("model", name, parents, materialized=materialized, **config)


def seed(name: str) -> dict[str, Any]:
    return _node("seed", name, (), materialized="seed")


def snapshot(name: str, *parents: str) -> dict[str, Any]:
    return _node("snapshot", name, parents, materialized="snapshot")


def test(name: str, *parents: str, severity: str = "ERROR") -> dict[str, Any]:
    return _node("test", name, parents, materialized="test", severity=severity)


test.__test__ = False  # type: ignore[attr-defined]  # a builder, not a pytest test


def unit_test(name: str, tested_model: str) -> dict[str, Any]:
    data = _node("unit_test", name, (tested_model,))
    data["unique_id"] = f"unit_test.{PROJECT}.{tested_model}.{name}"
    return data


def source(source_name: str, name: str) -> dict[str, Any]:
    data = _node("source", name, ())
    data["unique_id"] = f"source.{PROJECT}.{source_name}.{name}"
    data["source_name"] = source_name
    return data


def exposure(name: str, *parents: str) -> dict[str, Any]:
    return _node("exposure", name, parents)


def semantic_model(name: str, model_name: str) -> dict[str, Any]:
    return _node("semantic_model", name, (model_name,))


def metric(name: str, *parents: str) -> dict[str, Any]:
    """A metric on semantic models or other metrics (a derived metric)."""
    return _node("metric", name, parents)


def saved_query(name: str, *metrics: str) -> dict[str, Any]:
    return _node("saved_query", name, metrics)


_TABLES = {
    "source": "sources",
    "unit_test": "unit_tests",
    "exposure": "exposures",
    "function": "functions",
    "semantic_model": "semantic_models",
    "metric": "metrics",
    "saved_query": "saved_queries",
}


def manifest_dict(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A v12 manifest dict holding ``nodes``, with parent names resolved to ids."""
    ids: dict[str, str] = {}
    for node in nodes:
        ids.setdefault(node["name"], node["unique_id"])
        ids.setdefault(f"{node.get('source_name')}.{node['name']}", node["unique_id"])
    data: dict[str, Any] = {
        "metadata": {"dbt_schema_version": SCHEMA_V12, "dbt_version": "1.11.0"},
        "nodes": {},
        "sources": {},
        "unit_tests": {},
        "exposures": {},
        "functions": {},
        "semantic_models": {},
        "metrics": {},
        "saved_queries": {},
    }
    for node in nodes:
        resolved = dict(node)
        resolved["depends_on"] = {
            "nodes": [ids.get(p, p) for p in node["depends_on"]["nodes"]],
            "macros": [],
        }
        data[_TABLES.get(node["resource_type"], "nodes")][node["unique_id"]] = resolved
    return data


def manifest_of(*nodes: dict[str, Any]) -> Manifest:
    return structure_manifest(manifest_dict(*nodes), source="builders")


def uid(name: str, kind: str = "model") -> str:
    return f"{kind}.{PROJECT}.{name}"


def _threshold(value: tuple[int, str] | None) -> dict[str, Any]:
    count, period = value if value is not None else (None, None)
    return {"count": count, "period": period}


def checked_source(
    source_name: str,
    name: str,
    *,
    warn_after: tuple[int, str] | None = (12, "hour"),
    error_after: tuple[int, str] | None = None,
    loaded_at_field: str | None = "_loaded_at",
) -> dict[str, Any]:
    """A source with a freshness rule (``(count, period)`` thresholds) and, by
    default, a loaded_at_field: one ``dbt source freshness`` checks."""
    data = source(source_name, name)
    data["freshness"] = {
        "warn_after": _threshold(warn_after),
        "error_after": _threshold(error_after),
        "filter": None,
    }
    data["loaded_at_field"] = loaded_at_field
    return data
