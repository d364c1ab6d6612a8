"""What a selection is asked, what it may read, and what it answers; pure value objects.

``SelectionRequest`` holds the flags of ``dbt ls``/``dbt build``;
``SelectionContext`` holds data from outside the manifest (the root
project's file list, YAML selectors, previous-run artifacts) as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.manifest import Manifest, frozen_mapping


def _strings(value: Any) -> tuple[str, ...]:
    """``None`` is "not passed"; a string, even an empty one, is one flag value."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _optional_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else MappingProxyType(dict(value))


def _optional_files(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class SelectionRequest:
    """The selection flags of ``dbt ls`` (and ``dbt build``).

    Attributes:
        select: ``--select`` values; each is a space-separated union, as on the CLI.
            Empty (or None) means the flag was not passed (dbt's default selection).
            An empty or blank string is a value, not "not passed": as in dbt
            1.11 (``dbt ls --select ''``), it selects nothing and warns
            ``The selection criterion '' does not match any enabled nodes``;
            it never means the whole project.
        exclude: ``--exclude`` values, same format (``''`` excludes nothing, and warns).
        selector: a YAML selector name (``--selector``); when given, dbt ignores
            ``select`` and ``exclude``.
        resource_types: ``--resource-type`` values (repeats are unioned; ``all`` and
            ``default`` allowed); empty means not passed, i.e. ``dbt ls``'s default set.
        exclude_resource_types: ``--exclude-resource-type`` values.
        indirect_selection: ``eager`` (dbt's default), ``cautious``, ``buildable`` or ``empty``.
    """

    select: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    selector: str | None = None
    resource_types: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    exclude_resource_types: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    indirect_selection: str = "eager"


@attrs.frozen
class SelectionContext:
    """Data from outside the manifest that some selector methods read.

    Attributes:
        root_project_files: every file and directory of the root project,
            relative to it (``models``, ``models/orders.sql``...). ``path:`` globs
            these, as dbt globs the project directory. A directory may be written
            with a trailing ``/``; an entry with entries below it is a directory.
        selectors: YAML selectors, either as ``selectors.yml`` parses
            (``{"selectors": [{"name", "definition", "default"}...]}``) or as dbt
            stores them in ``manifest.json`` (``{name: {"definition", "default"}}``).
            Empty means: use ``manifest.selectors``.
        state_manifest: the manifest to compare with (``--state``); ``state:`` needs it.
        manifest_json: the current ``manifest.json`` as parsed JSON, and
        state_manifest_json: the state one: ``state:modified`` and its
            ``.configs``/``.relation``/``.persisted_descriptions``/``.contract``
            sub-selectors compare fields (``unrendered_config``, descriptions,
            contracts...) that the ``Manifest`` value objects do not keep.
        run_results: a previous ``run_results.json`` as parsed JSON (``result:``).
        previous_sources: the previous ``sources.json`` (``source_status:``), and
        current_sources: the current one.
        state_dir: the state directory those artifacts were read from, if any;
            errors quote it (None: no state directory was set).
    """

    root_project_files: frozenset[str] | None = attrs.field(default=None, converter=_optional_files)
    selectors: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    state_manifest: Manifest | None = None
    manifest_json: Mapping[str, Any] | None = attrs.field(default=None, converter=_optional_mapping)
    state_manifest_json: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_optional_mapping
    )
    run_results: Mapping[str, Any] | None = attrs.field(default=None, converter=_optional_mapping)
    previous_sources: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_optional_mapping
    )
    current_sources: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_optional_mapping
    )
    state_dir: str | None = None


def no_match_warning(term: str) -> str:
    """dbt's warning (``NoNodesForSelectionCriteria``, M030) for a term that matched nothing."""
    return f"The selection criterion '{term}' does not match any enabled nodes"


@attrs.frozen
class Selection:
    """What the selection answered.

    Attributes:
        unique_ids: the selected unique_ids (what ``dbt ls`` lists).
        reasons: for each selected id, the term that matched it or the
            indirect-selection rule that pulled it in.
        unmatched: the ``--select``/``--exclude`` terms (each space-separated
            piece) that matched no enabled node, in the order dbt warns about them.
    """

    unique_ids: frozenset[str]
    reasons: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    unmatched: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """One dbt warning per unmatched term, worded as dbt words it."""
        return tuple(no_match_warning(term) for term in self.unmatched)

    def sorted_ids(self) -> tuple[str, ...]:
        """The selected ids in ``dbt ls`` order (sorted)."""
        return tuple(sorted(self.unique_ids))
