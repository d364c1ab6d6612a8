"""Set algebra, graph operators and indirect test selection over specs; pure.

Mirrors dbt-core 1.11's ``NodeSelector``: each term selects its matches and
their ``+``/``@`` relatives, then pulls in tests by its indirect-selection
mode (eager: any parent selected; cautious: all parents; buildable: all
parents selected or upstream of the selection; empty: none), holding back
the tests it could not take yet. Unions, intersections and differences
combine both sets, then re-admit held-back tests whose parents now all meet.
Every selected id carries the reason it was selected, and each command-line
term that selected nothing is reported (dbt warns about it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

import attrs

from prefect_dbt_orchestrator.domain.selection.index import SelectionIndex, Table
from prefect_dbt_orchestrator.domain.selection.methods import matched
from prefect_dbt_orchestrator.domain.selection.parse import (
    Combination,
    Criterion,
    IndirectSelection,
    Operator,
    Spec,
)

Picked = dict[str, str]  # unique_id -> why it was selected


@attrs.frozen
class Outcome:
    """A spec's selection: ``direct`` is selected; ``held`` are tests held back
    (cautious/buildable) that a combination may still admit; ``unmatched`` are
    the raw command-line terms that selected nothing, in evaluation order."""

    direct: Picked
    held: Picked
    unmatched: tuple[str, ...] = ()


def walk(edges: Mapping[str, tuple[str, ...]], start: Iterable[str], depth: int | None) -> Picked:
    """Breadth-first from ``start`` along ``edges``, at most ``depth`` steps:
    each reached id mapped to the start id it was reached from (dbt's
    ``select_parents``/``select_children``)."""
    origin = {uid: uid for uid in start}
    found: Picked = {}
    frontier = sorted(origin)
    level = 0
    while frontier and (depth is None or level < depth):
        step: list[str] = []
        for uid in frontier:
            for other in edges[uid]:
                if other not in found:
                    found[other] = origin[uid]
                    origin.setdefault(other, origin[uid])
                    step.append(other)
        frontier = step
        level += 1
    return found


def _neighbours(index: SelectionIndex, criterion: Criterion, seeds: Iterable[str]) -> Picked:
    """The relatives the term's ``@``, ``N+`` and ``+N`` add."""
    graph, raw = index.graph, criterion.raw
    added: Picked = {}
    if criterion.childrens_parents:
        below = walk(graph.children, seeds, None)
        base = set(seeds) | set(below)
        for uid, via in walk(graph.parents, base, None).items():
            added.setdefault(uid, f"{raw} (ancestor of {via})")
        for uid, via in below.items():
            added.setdefault(uid, f"{raw} (descendant of {via})")
    if criterion.parents:
        for uid, via in walk(graph.parents, seeds, criterion.parents_depth).items():
            added.setdefault(uid, f"{raw} (ancestor of {via})")
    if criterion.children:
        for uid, via in walk(graph.children, seeds, criterion.children_depth).items():
            added.setdefault(uid, f"{raw} (descendant of {via})")
    return added


def _tests_below(index: SelectionIndex, selected: Iterable[str]) -> Picked:
    """Tests (data and unit) that are children of a selected id -> that parent."""
    found: Picked = {}
    for parent in sorted(selected):
        for child in index.graph.children[parent]:
            if child not in found and index.is_test(child):
                found[child] = parent
    return found


def expand(index: SelectionIndex, selected: Picked, mode: IndirectSelection) -> Outcome:
    """dbt's ``expand_selection``: add the tests of ``selected`` by ``mode``."""
    direct, held = dict(selected), {}
    upstream: set[str] = set()
    if mode is IndirectSelection.BUILDABLE:
        upstream = set(selected) | set(walk(index.graph.parents, selected, None))
        upstream |= set(index.manifest.sources)
    for test, parent in _tests_below(index, selected).items():
        if test in direct:
            continue
        needs = set(index.graph.members[test].depends_on)
        if mode is IndirectSelection.EAGER:
            direct[test] = f"eager: test of {parent}"
        elif needs <= selected.keys():
            direct[test] = f"{mode.value}: every parent of the test is selected"
        elif mode is IndirectSelection.BUILDABLE and needs <= upstream:
            direct[test] = "buildable: every parent of the test is selected or upstream"
        elif mode is not IndirectSelection.EMPTY:
            held[test] = f"{mode.value}: test of {parent}, held until all its parents are selected"
    return Outcome(direct, held)


def _criterion(index: SelectionIndex, criterion: Criterion) -> Outcome:
    seeds = matched(index, criterion)
    selected = _neighbours(index, criterion, seeds)
    selected.update(dict.fromkeys(seeds, criterion.raw))
    if criterion.indirect is IndirectSelection.EMPTY:
        return Outcome(selected, {})
    return expand(index, selected, criterion.indirect)


def _union(parts: Sequence[Picked]) -> Picked:
    merged: Picked = {}
    for part in parts:
        for uid, why in part.items():
            merged.setdefault(uid, why)
    return merged


def _intersection(parts: Sequence[Picked]) -> Picked:
    common = set(parts[0]).intersection(*parts[1:])
    return {
        uid: " & ".join(dict.fromkeys(part[uid] for part in parts))
        for uid in parts[0]
        if uid in common
    }


def _difference(parts: Sequence[Picked]) -> Picked:
    removed = set().union(*parts[1:])
    return {uid: why for uid, why in parts[0].items() if uid not in removed}


_COMBINE = {
    Operator.UNION: _union,
    Operator.INTERSECTION: _intersection,
    Operator.DIFFERENCE: _difference,
}


def _admit_held(
    index: SelectionIndex, direct: Picked, candidates: Picked, mode: IndirectSelection
) -> Picked:
    """dbt's ``incorporate_indirect_nodes``: cautious/buildable take each held
    data test (unit tests never) whose parents are now all selected (buildable:
    or upstream of the selection)."""
    if mode not in (IndirectSelection.CAUTIOUS, IndirectSelection.BUILDABLE):
        return direct
    if direct.keys() == candidates.keys():
        return direct
    selected = dict(direct)
    # cautious compares with the growing selection, buildable with a fixed reach
    reach: AbstractSet[str] = selected.keys()
    if mode is IndirectSelection.BUILDABLE:
        reach = set(direct) | set(walk(index.graph.parents, direct, None))
    for uid in sorted(candidates):
        if uid in selected or index.table_of.get(uid) is not Table.NODES:
            continue
        if set(index.graph.members[uid].depends_on) <= reach:
            selected[uid] = f"{mode.value}: every parent of the test is selected"
    return selected


def _combination(index: SelectionIndex, combination: Combination) -> Outcome:
    outcomes = [evaluate(index, part) for part in combination.components]
    if not outcomes:
        return Outcome({}, {})
    combine = _COMBINE[combination.operator]
    direct = combine([o.direct for o in outcomes])
    candidates = combine([{**o.held, **o.direct} for o in outcomes])
    direct = _admit_held(index, direct, candidates, combination.indirect)
    held = {uid: why for uid, why in candidates.items() if uid not in direct}
    unmatched = tuple(term for outcome in outcomes for term in outcome.unmatched)
    if combination.expect_exists and not direct:  # dbt: NoNodesForSelectionCriteria
        unmatched += (combination.raw,)
    return Outcome(direct, held, unmatched)


def evaluate(index: SelectionIndex, spec: Spec) -> Outcome:
    """What ``spec`` selects, before the resource-type filter."""
    if isinstance(spec, Criterion):
        return _criterion(index, spec)
    return _combination(index, spec)
