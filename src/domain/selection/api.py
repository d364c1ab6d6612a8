"""``select``: the ids ``dbt ls`` lists for a request; pure.

Follows dbt-core 1.11's order: the spec comes from ``--selector``, else from
a ``default: true`` YAML selector when neither ``--select`` nor
``--exclude`` is given, else from ``--select`` minus ``--exclude`` (with
dbt's default selection when ``--select`` is absent). The spec is evaluated
(direct matches, graph operators, indirect test selection, set algebra), then
``--resource-type``/``--exclude-resource-type`` filter the result.
"""

from __future__ import annotations

from collections.abc import Mapping

from prefect_dbt_orchestrator.domain.graph import DbtGraph
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection.definitions import indirect_mode, parse_selectors
from prefect_dbt_orchestrator.domain.selection.errors import InvalidFlagError, UnknownSelectorError
from prefect_dbt_orchestrator.domain.selection.evaluate import evaluate
from prefect_dbt_orchestrator.domain.selection.index import build_index
from prefect_dbt_orchestrator.domain.selection.parse import Spec, parse_cli
from prefect_dbt_orchestrator.domain.selection.request import (
    Selection,
    SelectionContext,
    SelectionRequest,
)

# What `dbt ls` lists without --resource-type, and what `all` adds (analyses).
DEFAULT_RESOURCE_TYPES = frozenset(
    {
        "model",
        "snapshot",
        "seed",
        "test",
        "source",
        "exposure",
        "metric",
        "saved_query",
        "semantic_model",
        "unit_test",
        "function",
    }
)
ALL_RESOURCE_TYPES = DEFAULT_RESOURCE_TYPES | {"analysis"}
_CHOICES = tuple(sorted(ALL_RESOURCE_TYPES))


def _flag_values(flag: str, values: tuple[str, ...], extra: tuple[str, ...]) -> set[str]:
    """Lower-cased flag values, each checked against dbt's choices."""
    choices = (*_CHOICES, *extra)
    found = set()
    for value in values:
        if value.lower() not in choices:
            raise InvalidFlagError(flag, value, choices)
        found.add(value.lower())
    return found


def resource_types(request: SelectionRequest) -> frozenset[str]:
    """The resource types ``dbt ls`` keeps: ``--resource-type`` (repeats unioned;
    ``all``, ``default``; none given means the default set) minus
    ``--exclude-resource-type``.

    Raises:
        InvalidFlagError: a value that is not a resource type (``default`` cannot be
            excluded: dbt fails on it too).
    """
    chosen = _flag_values("--resource-type", request.resource_types, ("all", "default"))
    kept = set(DEFAULT_RESOURCE_TYPES) if not chosen else chosen - {"all", "default"}
    if "all" in chosen:
        kept |= ALL_RESOURCE_TYPES
    if "default" in chosen:
        kept |= DEFAULT_RESOURCE_TYPES
    dropped = _flag_values("--exclude-resource-type", request.exclude_resource_types, ())
    return frozenset(kept - dropped)


def _yaml_selectors(manifest: Manifest, context: SelectionContext) -> Mapping[str, object]:
    return context.selectors if context.selectors else manifest.selectors


def request_spec(manifest: Manifest, request: SelectionRequest, context: SelectionContext) -> Spec:
    """The spec dbt evaluates for ``request``.

    Raises:
        UnknownSelectorError: ``request.selector`` names no YAML selector.
        InvalidFlagError: an unknown indirect-selection mode.
        SelectorSyntaxError, UnknownMethodError, SelectorDefinitionError: bad input.
    """
    mode = indirect_mode(request.indirect_selection, "--indirect-selection")
    selectors = parse_selectors(_yaml_selectors(manifest, context), mode)
    if request.selector is not None:
        if request.selector not in selectors:
            raise UnknownSelectorError(request.selector, tuple(selectors))
        return selectors[request.selector].spec
    if not request.select and not request.exclude:
        for named in selectors.values():
            if named.default:
                return named.spec
    return parse_cli(request.select, request.exclude, mode)


def select(
    manifest: Manifest,
    request: SelectionRequest,
    context: SelectionContext | None = None,
    *,
    graph: DbtGraph | None = None,
) -> Selection:
    """The unique_ids ``dbt ls`` would list for ``request``, each with its reason,
    and the command-line terms that matched nothing (dbt warns about each).

    Args:
        manifest: the project's manifest.
        request: the selection flags.
        context: data from outside the manifest (files, YAML selectors, artifacts).
        graph: ``build_graph(manifest)``, when the caller has it already.

    Raises:
        SelectionError: the request cannot be answered; the message names the term
            and the fix (see ``domain.selection.errors``).
    """
    context = context if context is not None else SelectionContext()
    kept = resource_types(request)
    spec = request_spec(manifest, request, context)
    index = build_index(manifest, context, graph)
    outcome = evaluate(index, spec)
    chosen = {
        uid: why
        for uid, why in outcome.direct.items()
        if index.graph.members[uid].resource_type.value in kept
    }
    return Selection(frozenset(chosen), chosen, outcome.unmatched)
