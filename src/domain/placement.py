"""Where tests go and what each planned node waits for, as ``dbt build`` does it; pure.

IMMEDIATE follows dbt's own rules:

* ``add_test_edges``: a non-test node N waits for data test T when T has
  parents and every one of them is upstream of N (in the whole graph, not
  only the selection). A failing relationships test between A and B thus
  blocks only what depends on both.
* Unit tests run inside their model's job, before the model: a unit test
  waits for what its model waits for, and the model waits for it.
* Unselected nodes keep their place: dbt's ``get_subset_graph`` joins the
  parents of a removed node to its children, so a planned node waits for its
  nearest planned ancestors through any number of unplanned ones.

* Exposures and saved queries (no-op nodes) wait for their nearest planned
  ancestors, as any node does (dbt's subset graph joins them through the
  metrics and semantic models it does not build), but nothing waits for
  them: a node reading one waits for what it waits for. They get no test
  edges, which dbt adds only to nodes of ``manifest.nodes``.

DEFERRED runs every test in a second phase, after every other node; SKIP
plans no tests.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

from prefect_dbt_orchestrator.domain.errors import CycleError
from prefect_dbt_orchestrator.domain.graph import (
    TEST_TYPES,
    DbtGraph,
    is_no_op,
    nodes_on_cycles,
    topological_order,
)
from prefect_dbt_orchestrator.domain.manifest import ResourceType

# Resource types that live in manifest.nodes and are not tests: the only
# nodes dbt's add_test_edges gives test parents to.
_TEST_EDGE_TARGETS = frozenset(
    {ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT, ResourceType.ANALYSIS}
)


class TestStrategy(enum.Enum):
    """When tests run relative to the nodes they test."""

    __test__ = False  # not a pytest test class

    IMMEDIATE = "immediate"
    DEFERRED = "deferred"
    SKIP = "skip"


@attrs.frozen
class Prerequisites:
    """What a planned node waits for, and whose failure skips it.

    ``blocked_by`` is always a subset of ``waits_for``. A node of ``phase`` 1
    also waits for every node of phase 0 (DEFERRED tests).
    """

    waits_for: frozenset[str]
    blocked_by: frozenset[str]
    phase: int = 0


def ancestor_sets(graph: DbtGraph) -> dict[str, frozenset[str]]:
    """Every member's full set of ancestors.

    Raises:
        CycleError: the manifest's own graph has a cycle.
    """
    order = _order_or_raise(graph.members, graph.parents)
    ancestors: dict[str, frozenset[str]] = {}
    for uid in order:
        found: set[str] = set()
        for parent in graph.parents[uid]:
            found.add(parent)
            found |= ancestors[parent]
        ancestors[uid] = frozenset(found)
    return ancestors


def place_tests(
    graph: DbtGraph, planned: frozenset[str], strategy: TestStrategy
) -> dict[str, Prerequisites]:
    """The prerequisites of every planned node under ``strategy``.

    ``planned`` holds executable and no-op unique_ids only; with SKIP it holds
    no tests.

    Raises:
        CycleError: the nodes depend on each other in a loop.
    """
    waited_for = frozenset(uid for uid in planned if not is_no_op(graph.members[uid]))
    if strategy is TestStrategy.IMMEDIATE:
        parents = _immediate_parents(graph, planned, ancestor_sets(graph))
        nearest = _nearest_planned(parents, waited_for)
        return {uid: Prerequisites(nearest[uid], nearest[uid]) for uid in planned}
    nearest = _nearest_planned(graph.parents, waited_for)
    return {
        uid: Prerequisites(nearest[uid], nearest[uid], phase=int(_is_test(graph, uid)))
        for uid in planned
    }


def _is_test(graph: DbtGraph, uid: str) -> bool:
    return graph.members[uid].resource_type in TEST_TYPES


def _immediate_parents(
    graph: DbtGraph, planned: frozenset[str], ancestors: Mapping[str, frozenset[str]]
) -> dict[str, set[str]]:
    """The graph's parents plus dbt's test edges, with unit tests moved before their model."""
    parents = {uid: set(ids) for uid, ids in graph.parents.items()}
    for uid, test_ids in _test_edges(graph, planned, ancestors).items():
        parents[uid] |= test_ids
    unit_tests = sorted(
        uid for uid in planned if graph.members[uid].resource_type is ResourceType.UNIT_TEST
    )
    model_parents = {
        uid: frozenset(parents[graph.parents[uid][0]]) if graph.parents[uid] else frozenset()
        for uid in unit_tests
    }
    for uid in unit_tests:
        parents[uid] = set(model_parents[uid])
        if graph.parents[uid]:
            parents[graph.parents[uid][0]].add(uid)
    return parents


def _test_edges(
    graph: DbtGraph, planned: frozenset[str], ancestors: Mapping[str, frozenset[str]]
) -> dict[str, set[str]]:
    """dbt's ``add_test_edges``, for the planned data tests only.

    A node N waits for test T when every parent of T is upstream of N: N is
    in the intersection of the descendants of T's parents. Only the nearest
    such nodes get the edge; the others wait for one of them, so for T too
    (dbt adds every edge; the order and the skips are the same). An unplanned
    test's edge would be removed again with the test, its parents already
    being upstream of the node.
    """
    descendants = _descendant_sets(graph, ancestors)
    edges: dict[str, set[str]] = {}
    for test in planned:
        needs = graph.parents[test]
        if graph.members[test].resource_type is not ResourceType.TEST or not needs:
            continue
        reached = frozenset.intersection(*(descendants[d] for d in needs))
        for uid in reached:
            if _gets_test_edges(graph, uid) and reached.isdisjoint(graph.parents[uid]):
                edges.setdefault(uid, set()).add(test)
    return edges


def _descendant_sets(
    graph: DbtGraph, ancestors: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """Every member's descendants that can get test edges (the inverse of ``ancestors``)."""
    found: dict[str, set[str]] = {uid: set() for uid in graph.members}
    for uid, upstream in ancestors.items():
        if _gets_test_edges(graph, uid):
            for ancestor in upstream:
                found[ancestor].add(uid)
    return {uid: frozenset(ids) for uid, ids in found.items()}


def _gets_test_edges(graph: DbtGraph, unique_id: str) -> bool:
    return graph.members[unique_id].resource_type in _TEST_EDGE_TARGETS


def _nearest_planned(
    parents: Mapping[str, Iterable[str]], planned: frozenset[str]
) -> dict[str, frozenset[str]]:
    """For each member, the nearest ``planned`` ancestors (through any others)."""
    order = _order_or_raise(parents, parents)
    nearest: dict[str, frozenset[str]] = {}
    for uid in order:
        found: set[str] = set()
        for parent in parents[uid]:
            if parent in planned:
                found.add(parent)
            else:
                found |= nearest[parent]
        nearest[uid] = frozenset(found)
    return nearest


def _order_or_raise(ids: Iterable[str], parents: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    order, left = topological_order(ids, parents)
    if left:
        raise CycleError(nodes_on_cycles(left, parents) or tuple(sorted(left)))
    return order
