"""dbt's node selector language as pure domain code: what ``dbt ls`` lists.

``select(manifest, SelectionRequest(...), SelectionContext(...))`` answers
``--select``/``--exclude``/``--selector``/``--resource-type``/
``--indirect-selection`` as dbt-core 1.11 does. No I/O: files and previous-run
artifacts come in as data through ``SelectionContext``.
"""

from prefect_dbt_orchestrator.domain.selection.api import (
    ALL_RESOURCE_TYPES,
    DEFAULT_RESOURCE_TYPES,
    request_spec,
    resource_types,
    select,
)
from prefect_dbt_orchestrator.domain.selection.errors import (
    InvalidFlagError,
    InvalidMethodValueError,
    MissingSelectionDataError,
    SelectionError,
    SelectorDefinitionError,
    SelectorSyntaxError,
    StateRequiredError,
    UnknownMethodError,
    UnknownSelectorError,
)
from prefect_dbt_orchestrator.domain.selection.parse import (
    Combination,
    Criterion,
    IndirectSelection,
    Method,
    Operator,
    Spec,
    parse_cli,
    parse_term,
    parse_union,
)
from prefect_dbt_orchestrator.domain.selection.request import (
    Selection,
    SelectionContext,
    SelectionRequest,
    no_match_warning,
)

__all__ = [
    "ALL_RESOURCE_TYPES",
    "Combination",
    "Criterion",
    "DEFAULT_RESOURCE_TYPES",
    "IndirectSelection",
    "InvalidFlagError",
    "InvalidMethodValueError",
    "Method",
    "MissingSelectionDataError",
    "Operator",
    "Selection",
    "SelectionContext",
    "SelectionError",
    "SelectionRequest",
    "SelectorDefinitionError",
    "SelectorSyntaxError",
    "Spec",
    "StateRequiredError",
    "UnknownMethodError",
    "UnknownSelectorError",
    "no_match_warning",
    "parse_cli",
    "parse_term",
    "parse_union",
    "request_spec",
    "resource_types",
    "select",
]
