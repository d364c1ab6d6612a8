"""Errors of node selection; pure, no I/O.

Each is a frozen ``attrs`` class with positional fields whose ``__str__``
names the problem and the fix. All subclass ``PlanError`` (a ``ValueError``).

::

    PlanError
    └── SelectionError                       a selection cannot be answered
        ├── SelectorSyntaxError              a term does not parse (``@a+``)
        ├── UnknownMethodError               ``foo:bar``
        ├── InvalidMethodValueError          ``resource_type:nope``, ``version:x``
        ├── UnknownSelectorError             ``--selector`` names no YAML selector
        ├── SelectorDefinitionError          a YAML selector definition is malformed
        ├── InvalidFlagError                 a bad ``--resource-type`` / ``--indirect-selection``
        └── MissingSelectionDataError        ``path:`` without the root project's files...
            └── StateRequiredError           ``state:``/``result:``/``source_status:`` without
                                             the previous run's artifacts (``--state``)
"""

from __future__ import annotations

import attrs

from prefect_dbt_orchestrator.domain.errors import PlanError


class SelectionError(PlanError):
    """A node selection cannot be answered; the message says how to fix it."""


@attrs.frozen
class SelectorSyntaxError(SelectionError):
    """A selector term does not follow dbt's grammar."""

    term: str
    problem: str

    def __str__(self) -> str:
        return (
            f"invalid selector {self.term!r}: {self.problem}; write it as "
            "[@][N+][method:]value[+N], e.g. `+orders`, `tag:daily+1` or `@stg_orders`"
        )


@attrs.frozen
class UnknownMethodError(SelectionError):
    """A ``method:value`` term names a method dbt does not have."""

    term: str
    method: str
    known: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"unknown selector method {self.method!r} in {self.term!r}; "
            f"use one of {', '.join(self.known)}"
        )


@attrs.frozen
class InvalidMethodValueError(SelectionError):
    """A known method was given a value it cannot use."""

    term: str
    problem: str
    expected: str

    def __str__(self) -> str:
        return f"invalid selector {self.term!r}: {self.problem}; expected {self.expected}"


@attrs.frozen
class UnknownSelectorError(SelectionError):
    """``--selector NAME`` names no YAML selector."""

    name: str
    known: tuple[str, ...]

    def __str__(self) -> str:
        if self.known:
            fix = f"use one of {', '.join(self.known)}"
        else:
            fix = "no selectors are defined: add it to selectors.yml"
        return f"unknown selector {self.name!r}; {fix}"


@attrs.frozen
class SelectorDefinitionError(SelectionError):
    """A YAML selector definition cannot be read."""

    name: str
    problem: str

    def __str__(self) -> str:
        return (
            f"selector {self.name!r} is malformed: {self.problem}; fix its definition in "
            "selectors.yml (see https://docs.getdbt.com/reference/node-selection/yaml-selectors)"
        )


@attrs.frozen
class InvalidFlagError(SelectionError):
    """A selection flag has a value dbt does not accept."""

    flag: str
    value: str
    choices: tuple[str, ...]

    def __str__(self) -> str:
        return f"invalid value {self.value!r} for {self.flag}; use one of {', '.join(self.choices)}"


@attrs.frozen
class MissingSelectionDataError(SelectionError):
    """A selector needs data from outside the manifest that the caller did not pass."""

    term: str
    needs: str
    fix: str

    def __str__(self) -> str:
        return f"cannot answer selector {self.term!r}: it needs {self.needs}; {self.fix}"


@attrs.frozen
class StateRequiredError(MissingSelectionDataError):
    """A ``state:``, ``result:`` or ``source_status:`` term, but the previous run's
    artifacts are missing: no state directory was set, or it lacks the file."""
