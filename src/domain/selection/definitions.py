"""YAML selector definitions (selectors.yml or ``manifest.selectors``) to specs; pure.

Matches dbt-core 1.11: a definition is a CLI-style string, a ``union`` or
``intersection`` list (whose one ``exclude`` entry is subtracted), a one-key
``{method: value}`` dict, or a ``method``/``value`` dict with graph keys
(``parents``, ``children``, ``childrens_parents``, ``*_depth``),
``indirect_selection`` and ``exclude``; ``method: selector`` reuses a
selector defined earlier. Unions and intersections of a YAML selector keep
dbt's eager default: only terms carry an indirect-selection mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.selection.errors import (
    InvalidFlagError,
    SelectorDefinitionError,
)
from prefect_dbt_orchestrator.domain.selection.parse import (
    Combination,
    IndirectSelection,
    Operator,
    Spec,
    depth,
    make_criterion,
    parse_term,
    split_method,
)

MODES = tuple(m.value for m in IndirectSelection)


@attrs.frozen
class NamedSelector:
    """One YAML selector: its parsed spec and whether it is the default."""

    name: str
    spec: Spec
    default: bool = False


def indirect_mode(value: Any, where: str) -> IndirectSelection:
    """An IndirectSelection from its name.

    Raises:
        InvalidFlagError: not eager, cautious, buildable or empty.
    """
    try:
        return IndirectSelection(str(value).lower())
    except ValueError:
        raise InvalidFlagError(where, str(value), MODES) from None


@attrs.frozen
class _Reader:
    """Parses one selector's definition; ``earlier`` are the selectors before it."""

    name: str
    earlier: Mapping[str, Spec]
    indirect: IndirectSelection

    def fail(self, problem: str) -> SelectorDefinitionError:
        return SelectorDefinitionError(self.name, problem)

    def read(self, definition: Any, root: bool = False) -> Spec:
        if isinstance(definition, str):
            return parse_term(definition, self.indirect)
        if not isinstance(definition, Mapping):
            raise self.fail(f"expected a string or a mapping, got {type(definition).__name__}")
        if root and ("union" in definition or "intersection" in definition):
            if len(definition) > 1:
                keys = ", ".join(map(str, definition))
                raise self.fail(
                    f"a root definition takes a single union or intersection, got {keys}"
                )
        if "union" in definition:
            return self.combine(Operator.UNION, definition, "union")
        if "intersection" in definition:
            return self.combine(Operator.INTERSECTION, definition, "intersection")
        return self.term(definition)

    def items(self, definition: Mapping[str, Any], key: str) -> Sequence[Any]:
        values = definition[key]
        if not isinstance(values, list):
            raise self.fail(f"{key!r} must be a list")
        for value in values:
            if not isinstance(value, (str, Mapping)):
                raise self.fail(f"{key!r} entries must be strings or mappings, got {value!r}")
        return values

    def exclusions(self, definition: Mapping[str, Any]) -> Spec | None:
        parts = tuple(self.read(item) for item in self.items(definition, "exclude"))
        if len(parts) > 1:
            return Combination(Operator.UNION, parts, raw="exclude")
        return parts[0] if parts else None

    def combine(self, operator: Operator, definition: Mapping[str, Any], key: str) -> Spec:
        included: list[Spec] = []
        excluded: Spec | None = None
        for item in self.items(definition, key):
            if isinstance(item, Mapping) and "exclude" in item:
                if excluded is not None:
                    raise self.fail(f"one {key} holds more than one exclude")
                excluded = self.exclusions(item)
            else:
                included.append(self.read(item))
        spec = Combination(operator, tuple(included), raw=key)
        if excluded is None:
            return spec
        return Combination(Operator.DIFFERENCE, (spec, excluded), raw=f"{key} with exclude")

    def term(self, definition: Mapping[str, Any]) -> Spec:
        if len(definition) == 1:
            ((method, value),) = definition.items()
            return self.criterion({"method": method, "value": value})
        if definition.get("method") == "selector":
            reused = str(definition.get("value"))
            if reused not in self.earlier:
                raise self.fail(f"it reuses selector {reused!r}, which is not defined before it")
            return self.earlier[reused]
        if "method" not in definition or "value" not in definition:
            raise self.fail(f"expected one key or method and value keys, got {list(definition)}")
        base = self.criterion(definition)
        if "exclude" not in definition:
            return base
        excluded = self.exclusions(definition)
        parts = (base,) if excluded is None else (base, excluded)
        return Combination(Operator.DIFFERENCE, parts, raw="method with exclude")

    def criterion(self, fields: Mapping[str, Any]) -> Spec:
        method_text, value = fields["method"], fields["value"]
        if not isinstance(method_text, str):
            raise self.fail(f"method must be a string, got {method_text!r}")
        method, arguments = split_method(method_text, method_text)
        raw = _raw_term(method_text, value, fields)
        mode = self.indirect
        if "indirect_selection" in fields:
            mode = indirect_mode(fields["indirect_selection"], f"{self.name}: indirect_selection")
        return make_criterion(
            raw,
            method,
            arguments,
            value if isinstance(value, (str, bool, int, float)) else str(value),
            graph=(
                bool(fields.get("childrens_parents")),
                bool(fields.get("parents")),
                bool(fields.get("children")),
            ),
            depths=(
                depth(raw, fields.get("parents_depth")),
                depth(raw, fields.get("children_depth")),
            ),
            indirect=mode,
        )


def _raw_term(method: str, value: Any, fields: Mapping[str, Any]) -> str:
    """The CLI spelling of a YAML term, for reasons and errors."""
    text = f"{method}:{value}"
    if fields.get("parents"):
        text = f"{fields.get('parents_depth') or ''}+{text}"
    if fields.get("childrens_parents"):
        text = f"@{text}"
    if fields.get("children"):
        text = f"{text}+{fields.get('children_depth') or ''}"
    return text


def _entries(selectors: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, entry) pairs from either selectors.yml's shape or manifest.selectors'."""
    listed = selectors.get("selectors")
    if isinstance(listed, list):
        pairs = []
        for entry in listed:
            if not isinstance(entry, Mapping) or "name" not in entry or "definition" not in entry:
                raise SelectorDefinitionError(
                    str(entry), "each selector needs a name and a definition"
                )
            pairs.append((str(entry["name"]), entry))
        return pairs
    for name, entry in selectors.items():
        if not isinstance(entry, Mapping) or "definition" not in entry:
            raise SelectorDefinitionError(str(name), "the selector has no definition")
    return [(str(name), entry) for name, entry in selectors.items()]


def parse_selectors(
    selectors: Mapping[str, Any], indirect: IndirectSelection = IndirectSelection.EAGER
) -> dict[str, NamedSelector]:
    """Every selector, parsed in order (dbt fails on any malformed one).

    Raises:
        SelectorDefinitionError: a definition is malformed, or two are ``default: true``.
        UnknownMethodError, SelectorSyntaxError, InvalidFlagError: a term is invalid.
    """
    parsed: dict[str, NamedSelector] = {}
    default_name: str | None = None
    for name, entry in _entries(selectors):
        reader = _Reader(name, {n: s.spec for n, s in parsed.items()}, indirect)
        is_default = entry.get("default") is True
        if is_default and default_name is not None:
            raise SelectorDefinitionError(
                name, f"{default_name!r} is already the default; only one may set default: true"
            )
        default_name = name if is_default else default_name
        parsed[name] = NamedSelector(name, reader.read(entry["definition"], root=True), is_default)
    return parsed
