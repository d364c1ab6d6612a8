"""How dbt decides a resource changed between two manifests (``state:modified``); pure.

Each function compares the current and the previous ``manifest.json`` entry
of one resource (parsed JSON), following dbt-core 1.11's ``same_*`` methods
(contracts/graph/nodes.py). ``Kind`` says which of dbt's node classes a
resource is, because each class compares different fields.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Doc = Mapping[str, Any]


class Kind(enum.Enum):
    """The dbt node class a resource is compared as."""

    MODEL = "model"
    SEED = "seed"
    GENERIC_TEST = "generic_test"
    SINGULAR_TEST = "singular_test"
    NODE = "node"  # snapshots, analyses, hooks
    FUNCTION = "function"
    SOURCE = "source"
    EXPOSURE = "exposure"
    METRIC = "metric"
    SEMANTIC_MODEL = "semantic_model"
    SAVED_QUERY = "saved_query"
    UNIT_TEST = "unit_test"


PARSED = frozenset(
    {Kind.MODEL, Kind.SEED, Kind.GENERIC_TEST, Kind.SINGULAR_TEST, Kind.NODE, Kind.FUNCTION}
)
TESTS = frozenset({Kind.GENERIC_TEST, Kind.SINGULAR_TEST})
HAS_CONFIG = PARSED | {
    Kind.SOURCE,
    Kind.EXPOSURE,
    Kind.METRIC,
    Kind.SEMANTIC_MODEL,
    Kind.SAVED_QUERY,
}
HAS_RELATION = PARSED | {Kind.SOURCE}
# Node configs leave these out of the config comparison (dbt's CompareBehavior.Exclude);
# metric configs leave out the group; test configs compare only how the test judges.
_NOT_NODE_CONFIG = frozenset({"alias", "schema", "database", "tags", "group"})
_TEST_CONFIG = (
    "severity",
    "where",
    "limit",
    "fail_calc",
    "warn_if",
    "error_if",
    "store_failures",
    "store_failures_as",
)


def _get(doc: Doc, *keys: str) -> Any:
    value: Any = doc
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _same(new: Doc, old: Doc, *paths: tuple[str, ...]) -> bool:
    return all(_get(new, *path) == _get(old, *path) for path in paths)


def same_body(kind: Kind, new: Doc, old: Doc) -> bool:
    """Seeds compare file checksums; other nodes their raw code."""
    if kind is Kind.SEED:
        return _same(new, old, ("checksum",))
    return (new.get("raw_code") or new.get("raw_sql")) == (
        old.get("raw_code") or old.get("raw_sql")
    )


def _same_keys(mine: Doc, theirs: Doc, keys: Iterable[str]) -> bool:
    """dbt's compare_key: a key must be present in both or neither, with equal values."""
    return all(
        (key in mine) == (key in theirs) and mine.get(key) == theirs.get(key) for key in keys
    )


def same_config(kind: Kind, new: Doc, old: Doc) -> bool:
    """The unrendered configs as written (semantic models and saved queries:
    the configs themselves), less the keys dbt's config class leaves out."""
    if kind in (Kind.SEMANTIC_MODEL, Kind.SAVED_QUERY):
        return _same(new, old, ("config",))
    mine, theirs = new.get("unrendered_config") or {}, old.get("unrendered_config") or {}
    if kind in TESTS:
        return _same_keys(mine, theirs, _TEST_CONFIG)
    ignored = _NOT_NODE_CONFIG if kind in PARSED else frozenset()
    if kind is Kind.METRIC:
        ignored = frozenset({"group"})
    return _same_keys(mine, theirs, (set(mine) | set(theirs)) - ignored)


def _column_descriptions(doc: Doc) -> dict[str, Any]:
    columns = doc.get("columns") or {}
    return {name: _get(column, "description") for name, column in columns.items()}


def same_persisted_description(kind: Kind, new: Doc, old: Doc) -> bool:
    """Descriptions only count when ``persist_docs`` writes them to the database
    (test configs have no ``persist_docs``)."""
    if kind in TESTS:
        return True
    persist = _get(new, "config", "persist_docs") or {}
    if persist.get("relation") and new.get("description") != old.get("description"):
        return False
    if persist.get("columns") and _column_descriptions(new) != _column_descriptions(old):
        return False
    return True


def same_relation(kind: Kind, new: Doc, old: Doc) -> bool:
    """Nodes: database/schema/alias as configured; sources: as rendered, plus identifier."""
    if kind is Kind.SOURCE:
        return _same(new, old, ("database",), ("schema",), ("identifier",))
    return all(
        _get(new, "unrendered_config", key) == _get(old, "unrendered_config", key)
        for key in ("database", "schema", "alias")
    )


def same_contract(kind: Kind, new: Doc, old: Doc) -> bool:
    """Only models have contracts; a changed enforced contract is a change
    (dbt also warns or fails on breaking changes, which this does not report)."""
    if kind is not Kind.MODEL:
        return True
    old_on = _get(old, "contract", "enforced") is True
    new_on = _get(new, "contract", "enforced") is True
    if not old_on and not new_on:
        return True
    if not old_on:
        return False
    return new_on and _get(new, "contract", "checksum") == _get(old, "contract", "checksum")


def _same_parsed(kind: Kind, new: Doc, old: Doc) -> bool:
    same = (
        same_body(kind, new, old)
        and same_config(kind, new, old)
        and same_persisted_description(kind, new, old)
        and _same(new, old, ("fqn",))
        and same_relation(kind, new, old)
        and same_contract(kind, new, old)
    )
    if kind is Kind.MODEL:
        same = same and _same(new, old, ("latest_version",), ("access",), ("deprecation_date",))
    if kind is Kind.FUNCTION:
        same = same and _same(new, old, ("arguments",), ("returns",))
    return same


def _same_source(new: Doc, old: Doc) -> bool:
    return (
        same_relation(Kind.SOURCE, new, old)
        and _same(new, old, ("fqn",), ("quoting",), ("freshness",), ("loaded_at_field",))
        and same_config(Kind.SOURCE, new, old)
        and _same(new, old, ("external",))
    )


def _same_exposure(new: Doc, old: Doc) -> bool:
    fields = ("fqn", "type", "owner", "maturity", "url", "description", "label")
    return (
        _same(new, old, *((f,) for f in fields))
        and set(_get(new, "depends_on", "nodes") or ())
        == set(_get(old, "depends_on", "nodes") or ())
        and same_config(Kind.EXPOSURE, new, old)
    )


def _same_metric(new: Doc, old: Doc) -> bool:
    return _same(new, old, ("type",), ("description",), ("label",)) and same_config(
        Kind.METRIC, new, old
    )


def _same_semantic_model(new: Doc, old: Doc) -> bool:
    fields = ("model", "description", "defaults", "entities", "dimensions", "measures")
    return _same(new, old, *((f,) for f in fields), ("config",), ("primary_entity",), ("group",))


def _export_key(export: Any) -> tuple[Any, ...]:
    unrendered = _get(export, "unrendered_config") or {}
    keys = ("export_as", "schema", "alias")
    return (_get(export, "name"), *(unrendered.get(key) for key in keys))


def _same_saved_query(new: Doc, old: Doc) -> bool:
    params = (("query_params", "metrics"), ("query_params", "group_by"), ("query_params", "where"))
    exports_new, exports_old = new.get("exports") or [], old.get("exports") or []
    return _same(
        new, old, *params, ("description",), ("label",), ("config",), ("group",), ("tags",)
    ) and [_export_key(e) for e in exports_new] == [_export_key(e) for e in exports_old]


_NEW_IS_UNCHANGED: Mapping[Kind, Callable[[Doc, Doc], bool]] = {
    Kind.SOURCE: _same_source,
    Kind.EXPOSURE: _same_exposure,
    Kind.METRIC: _same_metric,
    Kind.SEMANTIC_MODEL: _same_semantic_model,
    Kind.SAVED_QUERY: _same_saved_query,
}


def same_contents(kind: Kind, new: Doc, old: Doc | None) -> bool:
    """dbt's ``same_contents``. A missing previous entry is a change for nodes
    and unit tests but, as in dbt, not for sources, exposures, metrics,
    semantic models and saved queries."""
    if kind in _NEW_IS_UNCHANGED:
        return old is None or _NEW_IS_UNCHANGED[kind](new, old)
    if old is None:
        return False
    if kind is Kind.UNIT_TEST:
        return _same(new, old, ("checksum",))
    if kind is Kind.GENERIC_TEST:
        return same_config(kind, new, old) and _same(new, old, ("fqn",))
    return _same_parsed(kind, new, old)
