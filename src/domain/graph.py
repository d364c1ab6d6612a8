"""The dbt graph: which members exist, which can run, and how they connect; pure.

Members are the enabled nodes, sources, unit tests, functions, exposures,
metrics, semantic models and saved queries. Disabled nodes and operations
(hooks) are left out, as ``dbt ls`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from prefect_dbt_orchestrator.domain.errors import UnknownNodeError, closest
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, ResourceType

EXECUTABLE_TYPES = frozenset(
    {
        ResourceType.MODEL,
        ResourceType.SEED,
        ResourceType.SNAPSHOT,
        ResourceType.TEST,
        ResourceType.UNIT_TEST,
        ResourceType.FUNCTION,
    }
)
TEST_TYPES = frozenset({ResourceType.TEST, ResourceType.UNIT_TEST})
# What ``dbt build`` plans but runs nothing for (its ExposureRunner and
# SavedQueryRunner): each ends at once as ``no-op``, or ``skipped`` when
# something upstream failed. Nothing waits for them.
NO_OP_TYPES = frozenset({ResourceType.EXPOSURE, ResourceType.SAVED_QUERY})
_LEFT_OUT = frozenset({ResourceType.OPERATION, ResourceType.SQL_OPERATION})


def is_executable(node: Node) -> bool:
    """True for what ``dbt build`` runs: models that are not ephemeral, seeds,
    snapshots, data tests, unit tests and functions."""
    return node.resource_type in EXECUTABLE_TYPES and not node.is_ephemeral


def is_no_op(node: Node) -> bool:
    """True for what ``dbt build`` reports without running it: exposures and
    saved queries (``no-op`` when run, ``skipped`` after an upstream failure)."""
    return node.resource_type in NO_OP_TYPES


def is_buildable(node: Node) -> bool:
    """True for every node ``dbt build`` reports a result for: the executable
    ones and the no-op ones."""
    return is_executable(node) or is_no_op(node)


def _is_member(node: Node) -> bool:
    return node.config.enabled and node.resource_type not in _LEFT_OUT


def _freeze(table: Mapping[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({uid: tuple(ids) for uid, ids in table.items()})


@attrs.frozen
class DbtGraph:
    """Members by unique_id and the direct edges between them (parents read from)."""

    members: Mapping[str, Node]
    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]

    def node(self, unique_id: str) -> Node:
        """The member ``unique_id``.

        Raises:
            UnknownNodeError: no enabled member has that id.
        """
        try:
            return self.members[unique_id]
        except KeyError:
            hint = closest(unique_id, self.members)
            raise UnknownNodeError(
                unique_id,
                "manifest's enabled nodes",
                f"did you mean {', '.join(hint)}?" if hint else "check the id with `dbt ls`",
            ) from None

    def executable_ids(self) -> frozenset[str]:
        return frozenset(uid for uid, n in self.members.items() if is_executable(n))

    def ancestors(self, unique_id: str, depth: int | None = None) -> frozenset[str]:
        """Every member ``unique_id`` reads from, at most ``depth`` edges away."""
        return self._walk(unique_id, self.parents, depth)

    def descendants(self, unique_id: str, depth: int | None = None) -> frozenset[str]:
        """Every member that reads from ``unique_id``, at most ``depth`` edges away."""
        return self._walk(unique_id, self.children, depth)

    def _walk(
        self, start: str, edges: Mapping[str, tuple[str, ...]], depth: int | None
    ) -> frozenset[str]:
        self.node(start)
        seen: set[str] = set()
        frontier = [start]
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            step = [n for uid in frontier for n in edges[uid] if n not in seen]
            seen.update(step)
            frontier = list(dict.fromkeys(step))
        seen.discard(start)
        return frozenset(seen)

    def executable_parents(self, unique_id: str) -> frozenset[str]:
        """The executable members ``unique_id`` depends on, traced through
        ephemeral models (an ephemeral model's parents stand in for it).
        Sources and other non-executable members are dropped."""
        found: set[str] = set()
        stack = list(self.parents[self.node(unique_id).unique_id])
        seen: set[str] = set()
        while stack:
            uid = stack.pop()
            if uid in seen:
                continue
            seen.add(uid)
            member = self.members[uid]
            if member.is_ephemeral:
                stack.extend(self.parents[uid])
            elif is_executable(member):
                found.add(uid)
        return frozenset(found)


def build_graph(manifest: Manifest) -> DbtGraph:
    """The graph of the manifest's enabled members.

    Edges come from each member's ``depends_on``; references to members that
    are disabled or absent are dropped (dbt drops them from the graph too).
    """
    members = {uid: node for uid, node in manifest.all_resources().items() if _is_member(node)}
    parents: dict[str, list[str]] = {uid: [] for uid in members}
    children: dict[str, list[str]] = {uid: [] for uid in members}
    for uid, node in members.items():
        for parent in dict.fromkeys(node.depends_on):
            if parent in members and parent != uid:
                parents[uid].append(parent)
                children[parent].append(uid)
    return DbtGraph(MappingProxyType(members), _freeze(parents), _freeze(children))


def topological_order(
    ids: Iterable[str], parents: Mapping[str, Iterable[str]]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Kahn order of ``ids`` (ties by unique_id), and the ids left on or after a cycle.

    Parents outside ``ids`` are ignored.
    """
    pending = {uid: set(parents.get(uid, ())) for uid in ids}
    for waits in pending.values():
        waits.intersection_update(pending)
    dependents: dict[str, list[str]] = {uid: [] for uid in pending}
    for uid, waits in pending.items():
        for parent in waits:
            dependents[parent].append(uid)
    ready = sorted(uid for uid, waits in pending.items() if not waits)
    order: list[str] = []
    while ready:
        uid = ready.pop()
        order.append(uid)
        for child in dependents[uid]:
            pending[child].discard(uid)
            if not pending[child]:
                ready.append(child)
    left = frozenset(pending) - frozenset(order)
    return tuple(order), left


def nodes_on_cycles(ids: Iterable[str], parents: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The ids (sorted) that reach themselves through ``parents`` within ``ids``."""
    inside = frozenset(ids)
    on_cycle = []
    for start in sorted(inside):
        stack = [p for p in parents.get(start, ()) if p in inside]
        seen: set[str] = set()
        while stack:
            uid = stack.pop()
            if uid == start:
                on_cycle.append(start)
                break
            if uid not in seen:
                seen.add(uid)
                stack.extend(p for p in parents.get(uid, ()) if p in inside)
    return tuple(on_cycle)
