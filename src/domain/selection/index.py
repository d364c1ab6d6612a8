"""The per-call lookup structures selector methods read; pure, built once per ``select``.

Members are grouped by the manifest table they come from, because each dbt
selector method searches a fixed set of tables (``fqn`` skips sources,
``config.`` reads only nodes and sources, ...).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from types import MappingProxyType

import attrs

from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, ResourceType
from prefect_dbt_orchestrator.domain.selection.paths import FileTree, file_tree
from prefect_dbt_orchestrator.domain.selection.request import SelectionContext


class Table(enum.Enum):
    """The manifest table a graph member comes from (one per ``MANIFEST_TABLES`` entry)."""

    NODES = "nodes"
    SOURCES = "sources"
    UNIT_TESTS = "unit_tests"
    FUNCTIONS = "functions"
    EXPOSURES = "exposures"
    METRICS = "metrics"
    SEMANTIC_MODELS = "semantic_models"
    SAVED_QUERIES = "saved_queries"


ALL_TABLES = frozenset(Table)
NON_SOURCE = ALL_TABLES - {Table.SOURCES}
CONFIGURABLE = frozenset({Table.NODES, Table.SOURCES})
GROUPABLE = frozenset({Table.NODES, Table.METRICS})
NODES_AND_UNIT_TESTS = frozenset({Table.NODES, Table.UNIT_TESTS})
NODES_ONLY = frozenset({Table.NODES})


@attrs.frozen
class SelectionIndex:
    """The graph, its members by table, and the outside data methods read.

    Attributes:
        by_table: the graph members of each table, as (unique_id, node) pairs.
        tree: the root project's files, or None when the caller gave none.
    """

    manifest: Manifest
    graph: DbtGraph
    context: SelectionContext
    by_table: Mapping[Table, tuple[tuple[str, Node], ...]]
    table_of: Mapping[str, Table]
    tree: FileTree | None

    def members(self, tables: frozenset[Table]) -> Iterator[tuple[str, Node]]:
        """The (unique_id, node) members of ``tables``, table by table."""
        for table in Table:
            if table in tables:
                yield from self.by_table[table]

    def is_test(self, unique_id: str) -> bool:
        """True for data tests in ``manifest.nodes`` and for unit tests:
        the members dbt may select indirectly."""
        table = self.table_of.get(unique_id)
        if table is Table.UNIT_TESTS:
            return True
        node = self.graph.members[unique_id]
        return table is Table.NODES and node.resource_type is ResourceType.TEST


def build_index(
    manifest: Manifest, context: SelectionContext, graph: DbtGraph | None = None
) -> SelectionIndex:
    """Everything selection reads, computed once.

    Args:
        graph: ``build_graph(manifest)`` when the caller has built it already
            (the planner does); built here otherwise.
    """
    graph = build_graph(manifest) if graph is None else graph
    by_table: dict[Table, tuple[tuple[str, Node], ...]] = {}
    table_of: dict[str, Table] = {}
    for name, entries in manifest.tables():
        table = Table(name)
        members = tuple((uid, n) for uid, n in entries.items() if uid in graph.members)
        by_table[table] = members
        for uid, _ in members:
            table_of.setdefault(uid, table)
    files = context.root_project_files
    return SelectionIndex(
        manifest,
        graph,
        context,
        MappingProxyType(by_table),
        MappingProxyType(table_of),
        None if files is None else file_tree(files),
    )
