"""``state:``, ``result:`` and ``source_status:``: selection by previous-run artifacts; pure.

The artifacts arrive as data in the ``SelectionContext`` (a state
``Manifest`` and, for field-level comparisons, both manifests' parsed JSON;
a ``run_results.json`` dict; two ``sources.json`` dicts). Nothing is read
from disk. A method whose data is missing raises, naming what to pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prefect_dbt_orchestrator.domain.freshness import (
    SourceLoad,
    SourcesFileError,
    fresher_sources,
    read_source_loads,
)
from prefect_dbt_orchestrator.domain.manifest import MANIFEST_TABLES, Manifest, Node, ResourceType
from prefect_dbt_orchestrator.domain.selection.comparisons import (
    HAS_CONFIG,
    HAS_RELATION,
    PARSED,
    Doc,
    Kind,
    same_body,
    same_config,
    same_contents,
    same_contract,
    same_persisted_description,
    same_relation,
)
from prefect_dbt_orchestrator.domain.selection.errors import (
    InvalidMethodValueError,
    MissingSelectionDataError,
    StateRequiredError,
)
from prefect_dbt_orchestrator.domain.selection.index import ALL_TABLES, SelectionIndex, Table
from prefect_dbt_orchestrator.domain.selection.parse import Criterion

_TABLE_KIND = {
    Table.FUNCTIONS: Kind.FUNCTION,
    Table.SOURCES: Kind.SOURCE,
    Table.EXPOSURES: Kind.EXPOSURE,
    Table.METRICS: Kind.METRIC,
    Table.SEMANTIC_MODELS: Kind.SEMANTIC_MODEL,
    Table.SAVED_QUERIES: Kind.SAVED_QUERY,
    Table.UNIT_TESTS: Kind.UNIT_TEST,
}
STATE_VALUES = (
    "new",
    "old",
    "modified",
    "unmodified",
    "modified.body",
    "modified.configs",
    "modified.persisted_descriptions",
    "modified.relation",
    "modified.macros",
    "modified.contract",
)
_NEEDS_JSON = frozenset(STATE_VALUES) - {"new", "old", "modified.body", "modified.macros"}
_SET_STATE = (
    "point the state directory at the target directory of the dbt run to compare with: "
    "PrefectDbtOrchestrator(state_path=Path(...)), or --state DIR for dbt-orchestrate"
)


def _state_missing(index: SelectionIndex, criterion: Criterion, needs: str) -> StateRequiredError:
    """The error for a state-reading term whose artifact is missing; ``needs`` names the file."""
    where = index.context.state_dir
    if where is None:
        return StateRequiredError(criterion.raw, needs, _SET_STATE)
    fix = (
        f"the state directory {where} has none: point state_path (--state) at the target "
        "directory of a dbt run that wrote it"
    )
    return StateRequiredError(criterion.raw, needs, fix)


def _kind(table: Table, node: Node) -> Kind:
    if table in _TABLE_KIND:
        return _TABLE_KIND[table]
    if node.resource_type is ResourceType.MODEL:
        return Kind.MODEL
    if node.resource_type is ResourceType.SEED:
        return Kind.SEED
    if node.resource_type is ResourceType.TEST:
        return Kind.GENERIC_TEST if node.test_name is not None else Kind.SINGULAR_TEST
    return Kind.NODE


def _documents(data: Mapping[str, Any]) -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for table in MANIFEST_TABLES:
        entries = data.get(table) or {}
        for uid, doc in entries.items():
            if isinstance(doc, Mapping):
                docs.setdefault(uid, doc)
    return docs


def _modified_macros(current: Manifest, previous: Manifest) -> frozenset[str]:
    """Macros added, removed or whose SQL changed."""
    changed = {
        uid
        for uid, macro in current.macros.items()
        if uid not in previous.macros or previous.macros[uid].macro_sql != macro.macro_sql
    }
    return frozenset(changed | (set(previous.macros) - set(current.macros)))


def _reaches(start: tuple[str, ...], manifest: Manifest, targets: frozenset[str]) -> bool:
    """True when a macro ``start`` calls, directly or not, is in ``targets``."""
    stack, seen = list(start), set()
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        if uid in targets:
            return True
        seen.add(uid)
        macro = manifest.macros.get(uid)
        stack.extend(macro.depends_on_macros if macro else ())
    return False


class _Comparer:
    """Answers one ``state:`` check for each member (dbt's StateSelectorMethod)."""

    def __init__(self, index: SelectionIndex, criterion: Criterion, previous: Manifest) -> None:
        self.index = index
        self.previous_nodes = previous.all_resources()
        self.macros = _modified_macros(index.manifest, previous)
        self.docs: tuple[dict[str, Doc], dict[str, Doc]] = ({}, {})
        if criterion.value in _NEEDS_JSON:
            self.docs = _json_documents(index, criterion)

    def macro_changed(self, uid: str, node: Node) -> bool:
        if self.index.table_of[uid] is Table.SOURCES or not self.macros:
            return False
        return _reaches(node.depends_on_macros, self.index.manifest, self.macros)

    def body_changed(self, uid: str, kind: Kind, node: Node) -> bool:
        if kind not in PARSED:
            return False
        old = self.previous_nodes.get(uid)
        if old is None:
            return True
        as_doc = {"raw_code": node.raw_code, "checksum": node.checksum}
        return not same_body(kind, as_doc, {"raw_code": old.raw_code, "checksum": old.checksum})

    def pair(self, uid: str) -> tuple[Doc, Doc | None]:
        return self.docs[0].get(uid, {}), self.docs[1].get(uid)

    def modified(self, uid: str, kind: Kind, node: Node) -> bool:
        new, old = self.pair(uid)
        if not same_contents(kind, new, old) or self.macro_changed(uid, node):
            return True
        was_model = old is not None and old.get("resource_type") == "model"
        return was_model and kind in PARSED and not same_contract(kind, new, old or {})

    def field_changed(self, uid: str, kind: Kind, check: str) -> bool:
        new, old = self.pair(uid)
        applies, same = _FIELD_CHECKS[check]
        if kind not in applies:
            return False
        return old is None or not same(kind, new, old)

    def check(self, value: str, uid: str, node: Node) -> bool:
        kind = _kind(self.index.table_of[uid], node)
        if value in ("new", "old"):
            return (uid not in self.previous_nodes) == (value == "new")
        if value == "modified.body":
            return self.body_changed(uid, kind, node)
        if value == "modified.macros":
            return self.macro_changed(uid, node)
        if value in ("modified", "unmodified"):
            return self.modified(uid, kind, node) == (value == "modified")
        return self.field_changed(uid, kind, value)


_FIELD_CHECKS: Mapping[str, tuple[frozenset[Kind], Callable[[Kind, Doc, Doc], bool]]] = {
    "modified.configs": (HAS_CONFIG, same_config),
    "modified.persisted_descriptions": (PARSED, same_persisted_description),
    "modified.relation": (HAS_RELATION, same_relation),
    "modified.contract": (PARSED, same_contract),
}


def _json_documents(
    index: SelectionIndex, criterion: Criterion
) -> tuple[dict[str, Doc], dict[str, Doc]]:
    current, previous = index.context.manifest_json, index.context.state_manifest_json
    if current is None or previous is None:
        raise MissingSelectionDataError(
            criterion.raw,
            "both manifests as parsed JSON (it compares unrendered configs, descriptions "
            "and contracts, which the Manifest value objects do not keep)",
            "pass SelectionContext(manifest_json=..., state_manifest_json=...)",
        )
    return _documents(current), _documents(previous)


def match_state(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """state:new|old|modified[.body|.configs|.relation|.persisted_descriptions|
    .macros|.contract]|unmodified, against ``context.state_manifest``."""
    previous = index.context.state_manifest
    if previous is None:
        raise _state_missing(
            index, criterion, "the manifest.json of a previous run to compare with"
        )
    if criterion.value not in STATE_VALUES:
        raise InvalidMethodValueError(
            criterion.raw,
            f"{criterion.value!r} is not a state",
            f"one of {', '.join(STATE_VALUES)}",
        )
    comparer = _Comparer(index, criterion, previous)
    for uid, node in index.members(ALL_TABLES):
        if comparer.check(criterion.value, uid, node):
            yield uid


def _results(data: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    results = (data or {}).get("results") or []
    return [r for r in results if isinstance(r, Mapping) and "unique_id" in r]


def match_result(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """result:<status>: members whose status in the previous run_results equals the value."""
    if index.context.run_results is None:
        raise _state_missing(index, criterion, "the previous run's run_results.json")
    wanted = {
        r["unique_id"]
        for r in _results(index.context.run_results)
        if r.get("status") == criterion.value
    }
    for uid, _ in index.members(ALL_TABLES):
        if uid in wanted:
            yield uid


def _source_loads(term: str, data: Mapping[str, Any], which: str) -> dict[str, SourceLoad]:
    try:
        return read_source_loads(data, source=which)
    except SourcesFileError as exc:
        raise InvalidMethodValueError(
            term, f"{exc.source}: {exc.problem}", "sources.json written by `dbt source freshness`"
        ) from exc


def match_source_status(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """source_status:fresher: sources loaded since the previous freshness check
    (or not checked then)."""
    previous, current = index.context.previous_sources, index.context.current_sources
    if previous is None:
        raise _state_missing(index, criterion, "the previous run's sources.json")
    if current is None:
        raise MissingSelectionDataError(
            criterion.raw,
            "the current sources.json in the target directory",
            "run `dbt source freshness` first, which writes it",
        )
    if criterion.value != "fresher":
        raise InvalidMethodValueError(
            criterion.raw, f"{criterion.value!r} is not a source status", "fresher"
        )
    fresher = fresher_sources(
        _source_loads(criterion.raw, current, "the current sources.json"),
        _source_loads(criterion.raw, previous, "the previous sources.json"),
    )
    for uid, _ in index.members(ALL_TABLES):
        if uid in fresher:
            yield uid
