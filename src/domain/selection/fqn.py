"""The ``fqn`` method (also dbt's method for bare names); pure.

Matches dbt-core 1.11: a value matches a member when it equals the fqn's
leaf (for a versioned model, the model name or ``name.vN``/``name_vN``), or
when its dot-separated parts equal the fqn's leading parts, with a wildcard
part matching the rest of the fqn (or, for a value without dots, the leaf).
Every value is tried against the fqn with and without its package.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from prefect_dbt_orchestrator.domain.manifest import Node, ResourceType

_WILDCARDS = ("*", "?", "[", "]")


def is_versioned(node: Node) -> bool:
    """dbt versions models only."""
    return node.resource_type is ResourceType.MODEL and node.version is not None


def _leaf_matches(fqn: tuple[str, ...], value: str, versioned: bool) -> bool:
    if not versioned:
        return fqn[-1] == value
    if fqn[-2] == value:
        return True
    return "_".join(fqn[-2:]) == "_".join(value.split(".")[-2:])


def _wildcard_tail(
    fqn: tuple[str, ...], flat: list[str], wanted: list[str], start: int, versioned: bool
) -> bool:
    """From the first wildcard part on, the rest of the fqn must match the
    rest of the value; a dotless value may also match the leaf alone."""
    if fnmatchcase(".".join(flat[start:]), ".".join(wanted[start:])):
        return True
    if len(wanted) == 1:
        return fnmatchcase(fqn[-2] if versioned else fqn[-1], wanted[0])
    return False


def fqn_matches(fqn: tuple[str, ...], value: str, versioned: bool) -> bool:
    """dbt's match of one fqn (with or without its package) against a value."""
    if len(fqn) < (2 if versioned else 1):
        return False
    if _leaf_matches(fqn, value, versioned):
        return True
    flat = [piece for segment in fqn for piece in segment.split(".")]
    wanted = value.split(".")
    if len(flat) < len(wanted):
        return False
    for position, part in enumerate(wanted):
        if any(w in part for w in _WILDCARDS):
            return _wildcard_tail(fqn, flat, wanted, position, versioned)
        if flat[position] != part:
            return False
    return True


def node_matches_fqn(node: Node, value: str) -> bool:
    """The fqn method: match the full fqn, or the fqn without its package."""
    versioned = is_versioned(node)
    return fqn_matches(node.fqn, value, versioned) or fqn_matches(node.fqn[1:], value, versioned)
