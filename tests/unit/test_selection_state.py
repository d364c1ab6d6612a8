"""``state:``, ``result:`` and ``source_status:`` on small hand-built projects.

The previous run's artifacts are plain dicts, as the caller would parse them
from disk. Each state check is pinned to what dbt-core 1.11's
``StateSelectorMethod`` answers for the same change (checked against dbt
itself while writing these cases).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.selection import (
    InvalidMethodValueError,
    MissingSelectionDataError,
    SelectionContext,
    SelectionRequest,
    StateRequiredError,
    select,
)

SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"


def _node(kind: str, name: str, *parents: str, **extra: Any) -> dict[str, Any]:
    return {
        "unique_id": f"{kind}.proj.{name}",
        "name": name,
        "resource_type": kind,
        "package_name": "proj",
        "fqn": ["proj", name],
        "original_file_path": f"models/{name}.sql",
        "raw_code": f"select * from {name}",
        "config": {"enabled": True, "materialized": "table", **extra.pop("config", {})},
        "unrendered_config": extra.pop("unrendered_config", {}),
        "depends_on": {"nodes": list(parents), "macros": extra.pop("macros", [])},
        "description": "",
        "columns": {},
        **extra,
    }


def _macro(name: str, *calls: str, sql: str = "{{ return(1) }}") -> dict[str, Any]:
    return {
        "unique_id": f"macro.proj.{name}",
        "name": name,
        "package_name": "proj",
        "macro_sql": sql,
        "depends_on": {"macros": [f"macro.proj.{c}" for c in calls]},
    }


def _source(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "unique_id": f"source.proj.raw.{name}",
        "name": name,
        "source_name": "raw",
        "resource_type": "source",
        "package_name": "proj",
        "fqn": ["proj", "raw", name],
        "config": {"enabled": True},
        "unrendered_config": {},
        "database": "db",
        "schema": "raw",
        "identifier": name,
        **extra,
    }


def _document(*nodes: dict[str, Any], sources: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    macros = (_macro("outer", "inner"), _macro("inner"), _macro("unused"))
    return {
        "metadata": {"dbt_schema_version": SCHEMA, "project_name": "proj"},
        "nodes": {n["unique_id"]: n for n in nodes},
        "sources": {s["unique_id"]: s for s in sources},
        "macros": {m["unique_id"]: m for m in macros},
    }


CONTRACT = {"enforced": True, "alias_types": True, "checksum": "abc"}
CURRENT = _document(
    _node("model", "body", "source.proj.raw.orders"),
    _node("model", "via_macro", "model.proj.body", macros=["macro.proj.outer"]),
    _node(
        "model", "configured", "model.proj.via_macro", unrendered_config={"materialized": "view"}
    ),
    _node("model", "retagged", unrendered_config={"tags": ["b"]}),
    _node("model", "moved", unrendered_config={"schema": "other"}),
    _node(
        "model",
        "described",
        config={"persist_docs": {"relation": True}},
        description="new words",
    ),
    _node("model", "undescribed", description="new words"),
    _node("model", "contracted", contract=CONTRACT),
    _node("model", "brand_new"),
    _node("model", "same"),
    _node("seed", "seed_file", checksum={"name": "sha256", "checksum": "2"}),
    _node(
        "test",
        "severity_test",
        "model.proj.same",
        unrendered_config={"severity": "warn"},
        test_metadata={"name": "not_null"},
    ),
    _node(
        "test",
        "tagged_test",
        "model.proj.same",
        unrendered_config={"tags": ["new"]},
        test_metadata={"name": "unique"},
    ),
    sources=(_source("orders"), _source("fresh_source")),
)


def _previous() -> dict[str, Any]:
    previous = copy.deepcopy(CURRENT)
    nodes = previous["nodes"]
    del nodes["model.proj.brand_new"]
    del previous["sources"]["source.proj.raw.fresh_source"]
    nodes["model.proj.body"]["raw_code"] = "select 1"
    nodes["model.proj.configured"]["unrendered_config"] = {"materialized": "table"}
    nodes["model.proj.retagged"]["unrendered_config"] = {"tags": ["a"]}
    nodes["model.proj.moved"]["unrendered_config"] = {"schema": "main"}
    nodes["model.proj.described"]["description"] = "old words"
    nodes["model.proj.undescribed"]["description"] = "old words"
    nodes["model.proj.contracted"]["contract"] = {**CONTRACT, "checksum": "def"}
    nodes["seed.proj.seed_file"]["checksum"] = {"name": "sha256", "checksum": "1"}
    nodes["test.proj.severity_test"]["unrendered_config"] = {"severity": "error"}
    nodes["test.proj.tagged_test"]["unrendered_config"] = {"tags": ["old"]}
    nodes["model.proj.deleted"] = _node("model", "deleted")
    previous["macros"]["macro.proj.inner"]["macro_sql"] = "{{ return(2) }}"
    return previous


PREVIOUS = _previous()


def state_context(**fields: Any) -> SelectionContext:
    defaults: dict[str, Any] = {
        "state_manifest": structure_manifest(PREVIOUS),
        "manifest_json": CURRENT,
        "state_manifest_json": PREVIOUS,
    }
    return SelectionContext(**{**defaults, **fields})


def selected(term: str, context: SelectionContext | None = None) -> set[str]:
    request = SelectionRequest(select=(term,), resource_types=("all",), indirect_selection="empty")
    found = select(structure_manifest(CURRENT), request, context or state_context())
    return {uid.split(".", 2)[2] for uid in found.unique_ids}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("state:new", {"brand_new", "raw.fresh_source"}),
        ("state:modified.body", {"body", "seed_file", "brand_new"}),
        ("state:modified.macros", {"via_macro"}),
        (
            "state:modified.configs",
            {"configured", "severity_test", "brand_new", "raw.fresh_source"},
        ),
        ("state:modified.relation", {"moved", "brand_new", "raw.fresh_source"}),
        ("state:modified.persisted_descriptions", {"described", "brand_new"}),
        # a new node of any parsed type counts as a contract change, as in dbt
        ("state:modified.contract", {"contracted", "brand_new"}),
    ],
)
def test_each_state_check_selects_the_changed_resources(term: str, expected: set[str]) -> None:
    assert selected(term) == expected


def test_state_modified_is_every_change_but_a_new_source() -> None:
    changed = {
        "body",
        "via_macro",
        "configured",
        "moved",
        "described",
        "contracted",
        "brand_new",
        "seed_file",
        "severity_test",
    }

    # retagged: tags are not config; undescribed: descriptions only count when persisted;
    # tagged_test: a test's config compares only how it judges; fresh_source: dbt does
    # not count a new source as modified
    assert selected("state:modified") == changed


def test_unmodified_and_old_complete_modified_and_new() -> None:
    everything = selected("*") | selected("source:*")

    assert selected("state:unmodified") == everything - selected("state:modified")
    assert selected("state:old") == everything - selected("state:new")
    assert "deleted" not in everything


def test_graph_operators_apply_to_state_matches() -> None:
    assert selected("state:modified.body+") == {
        "body",
        "via_macro",
        "configured",
        "seed_file",
        "brand_new",
    }


def test_new_old_body_and_macros_need_no_json() -> None:
    context = state_context(manifest_json=None, state_manifest_json=None)

    for term in ("state:new", "state:old", "state:modified.body", "state:modified.macros"):
        assert selected(term, context) == selected(term)


@pytest.mark.parametrize("term", ["state:modified", "state:modified.configs", "state:unmodified"])
def test_field_comparisons_without_the_json_name_the_fix(term: str) -> None:
    context = state_context(state_manifest_json=None)

    with pytest.raises(MissingSelectionDataError) as caught:
        selected(term, context)

    assert f"cannot answer selector {term!r}" in str(caught.value)
    assert "SelectionContext(manifest_json=..., state_manifest_json=...)" in str(caught.value)


def test_state_without_a_state_manifest_names_the_fix() -> None:
    with pytest.raises(StateRequiredError, match=r"state_path=Path\(\.\.\.\)\), or --state DIR"):
        selected("state:new", SelectionContext())


def test_an_unknown_state_lists_the_known_ones() -> None:
    with pytest.raises(InvalidMethodValueError) as caught:
        selected("state:changed")

    assert "'changed' is not a state" in str(caught.value)
    assert "modified.body" in str(caught.value)


# --- result: -------------------------------------------------------------------

RUN_RESULTS = {
    "results": [
        {"unique_id": "model.proj.body", "status": "error"},
        {"unique_id": "model.proj.same", "status": "success"},
        {"unique_id": "test.proj.severity_test", "status": "fail"},
        {"unique_id": "model.proj.gone", "status": "error"},
    ]
}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("result:error", {"body"}),
        ("result:error+", {"body", "via_macro", "configured"}),
        ("result:fail", {"severity_test"}),
        ("result:success", {"same"}),
        ("result:skipped", set()),
    ],
)
def test_result_selects_by_the_previous_status(term: str, expected: set[str]) -> None:
    assert selected(term, SelectionContext(run_results=RUN_RESULTS)) == expected


def test_result_without_run_results_names_the_fix() -> None:
    with pytest.raises(StateRequiredError, match=r"run_results.json; point the state directory"):
        selected("result:error", SelectionContext())


# --- source_status: --------------------------------------------------------------


def _freshness(*entries: tuple[str, str | None]) -> dict[str, Any]:
    results = []
    for name, loaded_at in entries:
        result: dict[str, Any] = {"unique_id": f"source.proj.raw.{name}", "status": "pass"}
        if loaded_at is None:
            result["status"] = "runtime error"
        else:
            result["max_loaded_at"] = loaded_at
        results.append(result)
    return {"results": results}


def test_source_status_fresher_selects_sources_loaded_since() -> None:
    previous = _freshness(("orders", "2024-01-01T00:00:00Z"), ("fresh_source", None))
    current = _freshness(
        ("orders", "2024-01-02T00:00:00+00:00"), ("fresh_source", "2024-01-01T00:00:00")
    )
    context = SelectionContext(previous_sources=previous, current_sources=current)

    # orders loaded later; fresh_source had no freshness result before
    assert selected("source_status:fresher", context) == {"raw.orders", "raw.fresh_source"}


def test_source_status_skips_unchanged_and_failing_sources() -> None:
    previous = _freshness(
        ("orders", "2024-01-02T00:00:00Z"), ("fresh_source", "2024-01-01T00:00:00Z")
    )
    current = _freshness(("orders", "2024-01-02T00:00:00Z"), ("fresh_source", None))
    context = SelectionContext(previous_sources=previous, current_sources=current)

    assert selected("source_status:fresher", context) == set()
    assert selected(
        "source_status:fresher+",
        SelectionContext(
            previous_sources=_freshness(),
            current_sources=_freshness(("orders", "2024-01-01T00:00:00Z")),
        ),
    ) == {"raw.orders", "body", "via_macro", "configured"}


def test_source_status_without_both_files_names_the_fix() -> None:
    with pytest.raises(StateRequiredError, match="previous run's sources.json; point the state"):
        selected("source_status:fresher", SelectionContext(current_sources=_freshness()))
    with pytest.raises(MissingSelectionDataError, match="run `dbt source freshness` first"):
        selected("source_status:fresher", SelectionContext(previous_sources=_freshness()))


def test_source_status_knows_only_fresher() -> None:
    context = SelectionContext(previous_sources=_freshness(), current_sources=_freshness())

    with pytest.raises(InvalidMethodValueError, match="expected fresher"):
        selected("source_status:stale", context)
