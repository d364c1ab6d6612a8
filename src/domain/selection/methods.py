"""One matcher per dbt selector method; pure.

Each matcher yields the graph members a ``method:value`` term selects, over
the manifest tables dbt-core 1.11 searches for that method. Wildcards use
``fnmatch`` case-sensitively, as dbt does on POSIX.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from prefect_dbt_orchestrator.domain.manifest import Node, ResourceType, Source
from prefect_dbt_orchestrator.domain.selection import state
from prefect_dbt_orchestrator.domain.selection.configs import match_config
from prefect_dbt_orchestrator.domain.selection.errors import (
    InvalidMethodValueError,
    MissingSelectionDataError,
)
from prefect_dbt_orchestrator.domain.selection.fqn import node_matches_fqn
from prefect_dbt_orchestrator.domain.selection.index import (
    ALL_TABLES,
    GROUPABLE,
    NODES_AND_UNIT_TESTS,
    NODES_ONLY,
    NON_SOURCE,
    SelectionIndex,
    Table,
)
from prefect_dbt_orchestrator.domain.selection.parse import Criterion, Method
from prefect_dbt_orchestrator.domain.selection.paths import glob, node_in_paths

Matcher = Callable[[SelectionIndex, Criterion], Iterator[str]]

# Every value dbt's NodeType accepts for ``resource_type:``.
NODE_TYPES = tuple(t.value for t in ResourceType) + ("rpc", "doc", "macro", "group", "fixture")
_VERSION_VALUES = "one of latest, prerelease, old, none"


def _text(criterion: Criterion) -> str:
    value = criterion.value
    return value if isinstance(value, str) else str(value)


def match_fqn(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """fqn (and bare names): every member except sources."""
    value = _text(criterion)
    for uid, node in index.members(NON_SOURCE):
        if node_matches_fqn(node, value):
            yield uid


def match_tag(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """tag: a unit test's tags are its config tags, as in dbt."""
    value = _text(criterion)
    for uid, node in index.members(ALL_TABLES):
        tags = node.config.tags if index.table_of[uid] is Table.UNIT_TESTS else node.tags
        if any(fnmatchcase(tag, value) for tag in tags):
            yield uid


def match_group(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """group: the config group of nodes and metrics."""
    value = _text(criterion)
    for uid, node in index.members(GROUPABLE):
        group = node.config.raw.get("group")
        if isinstance(group, str) and group and fnmatchcase(group, value):
            yield uid


def match_access(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """access: models whose access equals the value (no wildcards, as in dbt)."""
    for uid, node in index.members(NODES_ONLY):
        if node.resource_type is ResourceType.MODEL and node.access == criterion.value:
            yield uid


def _dotted(criterion: Criterion, sizes: tuple[int, ...], form: str) -> list[str]:
    parts = _text(criterion).split(".")
    if len(parts) not in sizes:
        raise InvalidMethodValueError(criterion.raw, f"{len(parts)} dot-separated parts", form)
    return parts


def match_source(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """source: ``source``, ``source.table`` or ``package.source.table``."""
    parts = _dotted(criterion, (1, 2, 3), "source_name[.table_name] or package.source.table")
    package, source_name, table = {1: ["*", *parts, "*"], 2: ["*", *parts], 3: parts}[len(parts)]
    for uid, node in index.members(frozenset({Table.SOURCES})):
        name_of_source = node.source_name if isinstance(node, Source) else ""
        if (
            fnmatchcase(node.package_name, package)
            and fnmatchcase(name_of_source, source_name)
            and fnmatchcase(node.name, table)
        ):
            yield uid


def _named(table: Table, kind: str) -> Matcher:
    """exposure:, metric:, semantic_model:, saved_query:, unit_test: ``[package.]name``."""

    def match(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
        parts = _dotted(criterion, (1, 2), f"{kind}_name or package.{kind}_name")
        package, name = ("*", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        for uid, node in index.members(frozenset({table})):
            if fnmatchcase(node.package_name, package) and fnmatchcase(node.name, name):
                yield uid

    return match


def match_path(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """path: globbed under the root project, compared with package-relative paths."""
    if index.tree is None:
        raise MissingSelectionDataError(
            criterion.raw,
            "the root project's file listing (dbt globs paths on disk)",
            "pass SelectionContext(root_project_files=...) with every file and "
            "directory of the root project, relative to it",
        )
    paths = glob(index.tree, criterion.raw, _text(criterion))
    for uid, node in index.members(ALL_TABLES):
        if node_in_paths(node, paths):
            yield uid


def match_file(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """file: the file name or its stem."""
    value = _text(criterion)
    for uid, node in index.members(ALL_TABLES):
        path = PurePosixPath(node.original_file_path)
        if fnmatchcase(path.name, value) or fnmatchcase(path.stem, value):
            yield uid


def match_package(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """package: ``this`` stands for the root project."""
    value = _text(criterion)
    if value == "this" and index.manifest.project_name is not None:
        value = index.manifest.project_name
    for uid, node in index.members(ALL_TABLES):
        if fnmatchcase(node.package_name, value):
            yield uid


def match_resource_type(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """resource_type: an exact dbt resource type."""
    value = _text(criterion)
    if value not in NODE_TYPES:
        raise InvalidMethodValueError(
            criterion.raw, f"{value!r} is not a resource type", f"one of {', '.join(NODE_TYPES)}"
        )
    for uid, node in index.members(ALL_TABLES):
        if node.resource_type.value == value:
            yield uid


def _is_generic(node: Node) -> bool:
    return node.resource_type is ResourceType.TEST and node.test_name is not None


def match_test_name(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """test_name: a generic test's macro name, or a unit test's name."""
    value = _text(criterion)
    for uid, node in index.members(NODES_AND_UNIT_TESTS):
        if index.table_of[uid] is Table.UNIT_TESTS:
            if fnmatchcase(node.name, value):
                yield uid
        elif _is_generic(node) and node.test_name is not None:
            if fnmatchcase(node.test_name, value):
                yield uid


def _test_kinds(criterion: Criterion) -> frozenset[str]:
    """dbt's reading of test_type values: ``generic``/``schema`` exactly, then any
    part of ``data`` (generic + singular), of ``singular``, of ``unit``."""
    value = _text(criterion)
    if value in ("generic", "schema"):
        return frozenset({"generic"})
    if value in "data":
        return frozenset({"generic", "singular"})
    if value in "singular":
        return frozenset({"singular"})
    if value in "unit":
        return frozenset({"unit"})
    raise InvalidMethodValueError(
        criterion.raw, f"{value!r} is not a test type", "generic, singular, unit or data"
    )


def match_test_type(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """test_type: generic, singular, data (generic + singular) or unit."""
    kinds = _test_kinds(criterion)
    for uid, node in index.members(NODES_AND_UNIT_TESTS):
        if index.table_of[uid] is Table.UNIT_TESTS:
            kind = "unit"
        elif node.resource_type is ResourceType.TEST:
            kind = "generic" if _is_generic(node) else "singular"
        else:
            continue
        if kind in kinds:
            yield uid


def _older(version: str, than: str) -> bool:
    """dbt's version order: numeric when both parse as numbers, else textual."""
    try:
        return float(version) < float(than)
    except ValueError:
        return version < than


def _version_matches(node: Node, value: str) -> bool:
    version, latest = node.version, node.latest_version
    if value == "none":
        return version is None
    if value == "latest":
        return version is not None and version == latest
    if not version or not latest:
        return False
    return _older(version, latest) if value == "old" else _older(latest, version)


def match_version(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """version: latest, prerelease (newer than latest), old, or none (unversioned models)."""
    value = _text(criterion)
    if value not in ("latest", "prerelease", "old", "none"):
        raise InvalidMethodValueError(criterion.raw, f"{value!r} is not a version", _VERSION_VALUES)
    for uid, node in index.members(NODES_ONLY):
        if node.resource_type is ResourceType.MODEL and _version_matches(node, value):
            yield uid


MATCHERS: Mapping[Method, Matcher] = {
    Method.FQN: match_fqn,
    Method.TAG: match_tag,
    Method.GROUP: match_group,
    Method.ACCESS: match_access,
    Method.SOURCE: match_source,
    Method.PATH: match_path,
    Method.FILE: match_file,
    Method.PACKAGE: match_package,
    Method.CONFIG: match_config,
    Method.TEST_NAME: match_test_name,
    Method.TEST_TYPE: match_test_type,
    Method.RESOURCE_TYPE: match_resource_type,
    Method.STATE: state.match_state,
    Method.EXPOSURE: _named(Table.EXPOSURES, "exposure"),
    Method.METRIC: _named(Table.METRICS, "metric"),
    Method.RESULT: state.match_result,
    Method.SOURCE_STATUS: state.match_source_status,
    Method.VERSION: match_version,
    Method.SEMANTIC_MODEL: _named(Table.SEMANTIC_MODELS, "semantic_model"),
    Method.SAVED_QUERY: _named(Table.SAVED_QUERIES, "saved_query"),
    Method.UNIT_TEST: _named(Table.UNIT_TESTS, "unit_test"),
}


def matched(index: SelectionIndex, criterion: Criterion) -> frozenset[str]:
    """The members ``criterion``'s method and value select (before graph operators)."""
    return frozenset(MATCHERS[criterion.method](index, criterion))
