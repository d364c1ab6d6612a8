"""Kahn layering of planned nodes into waves; pure.

A wave holds nodes that can run together: each node sits one wave after the
latest node it waits for, so the layering is the shortest one possible.
Phases are barriers: no node of phase 1 shares a wave with phase 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from prefect_dbt_orchestrator.domain.errors import CycleError
from prefect_dbt_orchestrator.domain.graph import nodes_on_cycles, topological_order
from prefect_dbt_orchestrator.domain.placement import Prerequisites


@attrs.frozen
class Wave:
    """Nodes that can run at once, after every earlier wave."""

    index: int
    node_ids: tuple[str, ...]


def layer_into_waves(nodes: Mapping[str, Prerequisites]) -> tuple[Wave, ...]:
    """Put each node one wave after its latest prerequisite.

    Prerequisites outside ``nodes`` are ignored.

    Raises:
        CycleError: some nodes wait for each other in a loop (only those are named).
    """
    waits = {uid: nodes[uid].waits_for & nodes.keys() for uid in nodes}
    order, left = topological_order(waits, waits)
    if left:
        raise CycleError(nodes_on_cycles(left, waits) or tuple(sorted(left)))
    level: dict[str, int] = {}
    floor = 0
    for phase in sorted({p.phase for p in nodes.values()}):
        for uid in order:
            if nodes[uid].phase == phase:
                level[uid] = max([floor, *(level[p] + 1 for p in waits[uid])])
        floor = max(level.values(), default=-1) + 1
    layers: dict[int, list[str]] = {}
    for uid, index in level.items():
        layers.setdefault(index, []).append(uid)
    return tuple(
        Wave(position, tuple(sorted(layers[index])))
        for position, index in enumerate(sorted(layers))
    )
