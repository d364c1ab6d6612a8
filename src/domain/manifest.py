"""The dbt manifest as frozen value objects; pure, no I/O.

``domain.codec`` builds these from the ``manifest.json`` dict. The classes
hold data only: no parsing, no serialization.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs


def frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view of ``value`` (config dicts stay immutable)."""
    return MappingProxyType(dict(value or {}))


class ResourceType(enum.Enum):
    """dbt's resource types, spelled the way dbt spells them."""

    MODEL = "model"
    SEED = "seed"
    SNAPSHOT = "snapshot"
    TEST = "test"
    UNIT_TEST = "unit_test"
    FUNCTION = "function"
    OPERATION = "operation"
    ANALYSIS = "analysis"
    SQL_OPERATION = "sql_operation"
    SOURCE = "source"
    EXPOSURE = "exposure"
    METRIC = "metric"
    SEMANTIC_MODEL = "semantic_model"
    SAVED_QUERY = "saved_query"


@attrs.frozen
class UnknownResourceType:
    """A resource type this library does not know; kept as written, never guessed."""

    value: str


AnyResourceType = ResourceType | UnknownResourceType


@attrs.frozen
class NodeConfig:
    """The config keys the planner reads, plus the whole config as written."""

    enabled: bool = True
    materialized: str | None = None
    severity: str | None = None
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen
class Node:
    """One member of the dbt graph: a node, unit test, function or other resource.

    ``depends_on`` holds the unique_ids of the resources it reads, exactly as
    dbt wrote them (ephemeral models and sources included).
    """

    unique_id: str
    name: str
    resource_type: AnyResourceType
    package_name: str
    fqn: tuple[str, ...] = ()
    path: str = ""
    original_file_path: str = ""
    config: NodeConfig = NodeConfig()
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    depends_on_macros: tuple[str, ...] = ()
    checksum: str = ""
    raw_code: str = ""
    language: str | None = None
    relation_name: str | None = None
    database: str | None = None
    schema: str | None = None
    alias: str | None = None
    version: str | None = None
    latest_version: str | None = None
    access: str | None = None
    group: str | None = None
    test_name: str | None = None
    test_namespace: str | None = None
    column_name: str | None = None
    attached_node: str | None = None
    patch_path: str | None = None
    # What ``dbt docs`` shows. dbt writes ``meta`` twice, here and under
    # ``config`` (where dbt 1.10+ wants it set); readers try ``config.meta`` first.
    description: str = ""
    meta: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)

    @property
    def materialized(self) -> str | None:
        return self.config.materialized

    @property
    def is_ephemeral(self) -> bool:
        return self.resource_type is ResourceType.MODEL and self.materialized == "ephemeral"


@attrs.frozen
class FreshnessThreshold:
    """``count`` ``period``s (period is minute, hour or day), as dbt writes it."""

    count: int
    period: str


@attrs.frozen
class FreshnessRule:
    """A source's freshness rule; a missing threshold is None."""

    warn_after: FreshnessThreshold | None = None
    error_after: FreshnessThreshold | None = None
    filter: str | None = None


@attrs.frozen
class Source(Node):
    """A dbt source: a node with a source name and a freshness rule."""

    source_name: str = ""
    identifier: str | None = None
    loaded_at_field: str | None = None
    freshness: FreshnessRule | None = None


@attrs.frozen
class Macro:
    """A macro; ``macro_sql`` is what cache keys hash."""

    unique_id: str
    name: str
    package_name: str
    depends_on_macros: tuple[str, ...] = ()
    macro_sql: str = ""
    original_file_path: str = ""


@attrs.frozen
class Group:
    """A dbt group (owner of models with ``access``)."""

    unique_id: str
    name: str
    package_name: str
    owner: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen
class ManifestMetadata:
    """Who wrote the manifest."""

    schema_version: int
    dbt_version: str = ""
    project_name: str | None = None
    adapter_type: str | None = None
    invocation_id: str | None = None


def _frozen_table(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


# The manifest.json tables that hold graph members (every resource but macros,
# docs and groups), named as dbt names them and as ``Manifest`` names its
# fields. A unique_id is unique across all of them (its prefix is its type),
# so the order only fixes the order of ``Manifest.all_resources()``.
MANIFEST_TABLES = (
    "nodes",
    "sources",
    "unit_tests",
    "functions",
    "exposures",
    "metrics",
    "semantic_models",
    "saved_queries",
)


@attrs.frozen
class Manifest:
    """Everything the planner and the selector read from ``manifest.json``."""

    metadata: ManifestMetadata
    nodes: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    sources: Mapping[str, Source] = attrs.field(factory=dict, converter=_frozen_table)
    unit_tests: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    functions: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    exposures: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    metrics: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    semantic_models: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    saved_queries: Mapping[str, Node] = attrs.field(factory=dict, converter=_frozen_table)
    macros: Mapping[str, Macro] = attrs.field(factory=dict, converter=_frozen_table)
    groups: Mapping[str, Group] = attrs.field(factory=dict, converter=_frozen_table)
    disabled: Mapping[str, tuple[Node, ...]] = attrs.field(factory=dict, converter=_frozen_table)
    parent_map: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_frozen_table)
    child_map: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_frozen_table)
    selectors: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)

    @property
    def project_name(self) -> str | None:
        return self.metadata.project_name

    @property
    def packages(self) -> frozenset[str]:
        """Every package that contributes a node or resource."""
        return frozenset(n.package_name for n in self.all_resources().values())

    def tables(self) -> tuple[tuple[str, Mapping[str, Node]], ...]:
        """Each of ``MANIFEST_TABLES`` with its members, in that order."""
        return tuple((name, getattr(self, name)) for name in MANIFEST_TABLES)

    def all_resources(self) -> Mapping[str, Node]:
        """Every enabled-or-not graph member by unique_id (macros, groups excluded)."""
        merged: dict[str, Node] = {}
        for _, table in self.tables():
            merged.update(table)
        return merged

    def count_by_type(self) -> Mapping[str, int]:
        """How many graph members of each resource type (the corpus README's table)."""
        counts: dict[str, int] = {}
        for node in self.all_resources().values():
            counts[node.resource_type.value] = counts.get(node.resource_type.value, 0) + 1
        return counts
