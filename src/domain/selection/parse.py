"""dbt's selector grammar turned into frozen spec objects; pure, no I/O.

Matches dbt-core 1.11: a space separates union members, a comma separates
intersection members, and each term is ``[@][N+][method[.arg...]:]value[+N]``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.selection.errors import SelectorSyntaxError, UnknownMethodError


class Method(enum.Enum):
    """dbt's selector methods, spelled as in ``method:value``."""

    FQN = "fqn"
    TAG = "tag"
    GROUP = "group"
    ACCESS = "access"
    SOURCE = "source"
    PATH = "path"
    FILE = "file"
    PACKAGE = "package"
    CONFIG = "config"
    TEST_NAME = "test_name"
    TEST_TYPE = "test_type"
    RESOURCE_TYPE = "resource_type"
    STATE = "state"
    EXPOSURE = "exposure"
    METRIC = "metric"
    RESULT = "result"
    SOURCE_STATUS = "source_status"
    VERSION = "version"
    SEMANTIC_MODEL = "semantic_model"
    SAVED_QUERY = "saved_query"
    UNIT_TEST = "unit_test"


METHOD_NAMES = tuple(m.value for m in Method)


class IndirectSelection(enum.Enum):
    """How tests of selected nodes are pulled in (``--indirect-selection``)."""

    EAGER = "eager"
    CAUTIOUS = "cautious"
    BUILDABLE = "buildable"
    EMPTY = "empty"


class Operator(enum.Enum):
    """How a combination joins the sets of its components."""

    UNION = "union"
    INTERSECTION = "intersection"
    DIFFERENCE = "difference"


@attrs.frozen
class Criterion:
    """One selector term: a method, its value and the graph operators around it.

    ``value`` is a string, except that YAML selectors may give a scalar
    (``config.enabled: true``), which ``config.`` compares as dbt does.
    """

    raw: str
    method: Method
    arguments: tuple[str, ...]
    value: Any
    childrens_parents: bool = False
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    indirect: IndirectSelection = IndirectSelection.EAGER

    @property
    def method_text(self) -> str:
        """``config.materialized`` for method CONFIG with argument materialized."""
        return ".".join((self.method.value, *self.arguments))


@attrs.frozen
class Combination:
    """A union, intersection or difference (first minus the rest) of specs.

    ``indirect`` is the mode used to re-admit tests whose parents only meet
    in the combined set (dbt's ``incorporate_indirect_nodes``).
    ``expect_exists`` marks a term the user wrote on the command line: dbt
    warns when it selects nothing (its ``SelectionSpec.expect_exists``).
    """

    operator: Operator
    components: tuple[Spec, ...]
    indirect: IndirectSelection = IndirectSelection.EAGER
    raw: str = ""
    expect_exists: bool = False


Spec = Criterion | Combination

# dbt's default --select when none is given (graph/cli.py DEFAULT_INCLUDES).
DEFAULT_SELECT = ("fqn:*", "source:*", "exposure:*", "metric:*", "semantic_model:*")

_TERM = re.compile(
    r"\A(?P<at>@)?"
    r"(?:(?P<up_depth>\d*)(?P<up>\+))?"
    r"(?:(?P<method>[\w.]+):)?"
    r"(?P<value>.*?)"
    r"(?:(?P<down>\+)(?P<down_depth>\d*))?\Z"
)
_FILE_SUFFIXES = (".sql", ".py", ".csv")


def default_method(value: str) -> Method:
    """The method dbt uses for a value written without one.

    A value holding a ``/`` is a path, one ending in .sql/.py/.csv a file
    name, anything else an fqn (which also matches bare names).
    """
    if "/" in value:
        return Method.PATH
    if value.lower().endswith(_FILE_SUFFIXES):
        return Method.FILE
    return Method.FQN


def split_method(term: str, text: str) -> tuple[Method, tuple[str, ...]]:
    """``config.meta.owner`` -> (CONFIG, ("meta", "owner")).

    Raises:
        UnknownMethodError: the first part is not a dbt method.
    """
    name, *arguments = text.split(".")
    try:
        return Method(name), tuple(arguments)
    except ValueError:
        raise UnknownMethodError(term, name, METHOD_NAMES) from None


def depth(term: str, text: Any) -> int | None:
    """A graph-operator depth: None when empty or absent."""
    if text is None or text == "" or text is False:
        return None
    try:
        return int(text)
    except (TypeError, ValueError):
        raise SelectorSyntaxError(term, f"depth {text!r} is not a whole number") from None


def parse_term(raw: str, indirect: IndirectSelection = IndirectSelection.EAGER) -> Criterion:
    """One CLI term such as ``2+tag:nightly+`` or ``@orders``.

    Raises:
        SelectorSyntaxError: the term does not parse, or mixes ``@`` with a ``+`` suffix.
        UnknownMethodError: ``foo:bar``.
    """
    match = _TERM.match(raw)
    if match is None:
        raise SelectorSyntaxError(raw, "it does not match the selector grammar")
    parts = match.groupdict()
    value: str = parts["value"]
    arguments: tuple[str, ...] = ()
    if parts["method"] is None:
        method = default_method(value)
    else:
        method, arguments = split_method(raw, parts["method"])
    return make_criterion(
        raw,
        method,
        arguments,
        value,
        graph=(bool(parts["at"]), bool(parts["up"]), bool(parts["down"])),
        depths=(depth(raw, parts["up_depth"]), depth(raw, parts["down_depth"])),
        indirect=indirect,
    )


def make_criterion(
    raw: str,
    method: Method,
    arguments: tuple[str, ...],
    value: Any,
    *,
    graph: tuple[bool, bool, bool],
    depths: tuple[int | None, int | None],
    indirect: IndirectSelection,
) -> Criterion:
    """A Criterion from its parts; ``graph`` is (``@``, parents ``+``, children ``+``).

    Raises:
        SelectorSyntaxError: ``@`` together with a children ``+`` (dbt refuses it).
    """
    at, parents, children = graph
    if at and children:
        raise SelectorSyntaxError(
            raw, 'the "@" prefix and a "+" suffix cannot be combined (@ already adds children)'
        )
    return Criterion(
        raw, method, arguments, value, at, parents, depths[0], children, depths[1], indirect
    )


def parse_union(
    items: Sequence[str],
    indirect: IndirectSelection = IndirectSelection.EAGER,
    *,
    expect_exists: bool = False,
) -> Combination:
    """CLI ``--select``/``--exclude`` values: each is split on spaces (union),
    each piece on commas (intersection). With ``expect_exists`` (values the
    user gave), a piece that selects nothing is reported, as dbt warns."""
    pieces = [piece for item in items for piece in item.split(" ")]
    intersections: list[Spec] = [
        Combination(
            Operator.INTERSECTION,
            tuple(parse_term(part, indirect) for part in piece.split(",")),
            indirect,
            piece,
            expect_exists,
        )
        for piece in pieces
    ]
    return Combination(Operator.UNION, tuple(intersections), indirect, " ".join(items))


def parse_cli(
    select: Sequence[str],
    exclude: Sequence[str],
    indirect: IndirectSelection = IndirectSelection.EAGER,
) -> Combination:
    """``--select`` minus ``--exclude``; no ``--select`` means dbt's default set.

    The outer difference keeps dbt's default eager mode: it never re-admits
    tests, only the unions inside do.
    """
    included = parse_union(
        select if select else DEFAULT_SELECT, indirect, expect_exists=bool(select)
    )
    excluded = parse_union(exclude, indirect, expect_exists=True)
    return Combination(Operator.DIFFERENCE, (included, excluded), raw="--select/--exclude")
