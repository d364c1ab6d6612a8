"""The plan: which nodes run, in which waves, and what each waits for; pure.

``plan_build`` is a function of the graph, the selected unique_ids and the
test strategy. Drivers never change a plan; they feed a ``Schedule`` with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from prefect_dbt_orchestrator.domain.graph import (
    NO_OP_TYPES,
    TEST_TYPES,
    DbtGraph,
    is_buildable,
)
from prefect_dbt_orchestrator.domain.manifest import AnyResourceType, ResourceType
from prefect_dbt_orchestrator.domain.placement import Prerequisites, TestStrategy, place_tests
from prefect_dbt_orchestrator.domain.waves import Wave, layer_into_waves


@attrs.frozen
class PlannedNode:
    """One node of the plan.

    Attributes:
        waits_for: planned nodes that must end before this one starts.
        blocked_by: planned nodes whose failure skips this one.
        phase: 1 for DEFERRED tests, which also wait for every phase-0 node.
        can_block: False for ``severity: warn`` tests, whose failure skips nothing.

    Exposures and saved queries are planned as ``dbt build`` plans them: they
    wait for their nearest planned ancestors (through metrics, semantic
    models and anything unselected), nothing waits for them, and a driver
    ends each one at once with its no-op result (``is_no_op``).
    """

    unique_id: str
    resource_type: AnyResourceType
    waits_for: frozenset[str]
    blocked_by: frozenset[str]
    phase: int = 0
    can_block: bool = True
    materialized: str | None = None

    @property
    def is_no_op(self) -> bool:
        """True when dbt runs nothing for this node: end it with ``no_op_result``."""
        return self.resource_type in NO_OP_TYPES


def _read_only(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class Plan:
    """What a build will run.

    ``left_out`` maps each selected id that will not run to the reason:
    ``dbt build`` does not run it either (sources, ephemeral models,
    metrics, semantic models...), or the test strategy is SKIP.
    """

    nodes: Mapping[str, PlannedNode]
    waves: tuple[Wave, ...]
    test_strategy: TestStrategy
    left_out: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def estimated_parallelism(self) -> int:
        """Width of the widest wave."""
        return max((len(w.node_ids) for w in self.waves), default=0)


def plan_build(
    graph: DbtGraph,
    selected: Iterable[str],
    test_strategy: TestStrategy = TestStrategy.IMMEDIATE,
) -> Plan:
    """Plan a build of ``selected`` (unique_ids, as ``dbt ls`` resolves them).

    Raises:
        UnknownNodeError: a selected id is not an enabled member of the manifest.
        CycleError: the selected nodes wait for each other in a loop.
    """
    chosen = sorted(set(selected))
    for uid in chosen:
        graph.node(uid)
    left_out = {uid: _left_out_reason(graph, uid, test_strategy) for uid in chosen}
    runnable = [uid for uid, reason in left_out.items() if not reason]
    prerequisites = place_tests(graph, frozenset(runnable), test_strategy)
    nodes = {uid: _planned(graph, uid, prerequisites[uid]) for uid in runnable}
    return Plan(
        nodes=MappingProxyType(nodes),
        waves=layer_into_waves(prerequisites),
        test_strategy=test_strategy,
        left_out={uid: reason for uid, reason in left_out.items() if reason},
    )


def _left_out_reason(graph: DbtGraph, uid: str, strategy: TestStrategy) -> str:
    node = graph.members[uid]
    if node.is_ephemeral:
        return "ephemeral model: compiled into the models that ref it"
    if not is_buildable(node):
        return f"{node.resource_type.value}: dbt build does not run it"
    if strategy is TestStrategy.SKIP and node.resource_type in TEST_TYPES:
        return "test left out by test_strategy=skip"
    return ""


def _planned(graph: DbtGraph, uid: str, prerequisites: Prerequisites) -> PlannedNode:
    node = graph.members[uid]
    warn_only = (
        node.resource_type is ResourceType.TEST and (node.config.severity or "").lower() == "warn"
    )
    return PlannedNode(
        unique_id=uid,
        resource_type=node.resource_type,
        waits_for=prerequisites.waits_for,
        blocked_by=prerequisites.blocked_by,
        phase=prerequisites.phase,
        can_block=not warn_only,
        materialized=node.materialized,
    )
