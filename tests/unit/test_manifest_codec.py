"""``structure_manifest`` on the five corpus manifests, on hand-built dicts, and on
bad input; ``read_manifest`` on bad files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from prefect_dbt_orchestrator.adapters.local.manifest_file import read_manifest
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import (
    ManifestKeyError,
    ManifestMalformedError,
    ManifestVersionError,
)
from prefect_dbt_orchestrator.domain.graph import build_graph, is_executable
from prefect_dbt_orchestrator.domain.manifest import (
    FreshnessRule,
    FreshnessThreshold,
    ResourceType,
    Source,
    UnknownResourceType,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from tests.corpus import manifest
from tests.unit.builders import manifest_dict, model, seed, source, test, uid

SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v{}.json"
SOURCE = "target/manifest.json"

CORPUS_COUNTS = {
    "jaffle_shop_duckdb": {"model": 5, "seed": 3, "test": 20},
    "jaffle_shop": {
        "model": 13,
        "test": 27,
        "source": 6,
        "unit_test": 3,
        "semantic_model": 6,
        "metric": 19,
        "saved_query": 3,
    },
    "dbt_project_evaluator": {
        "model": 84,
        "test": 72,
        "seed": 28,
        "source": 8,
        "exposure": 1,
        "metric": 2,
        "semantic_model": 1,
    },
    "nba_monte_carlo": {"model": 67, "test": 57, "source": 12, "operation": 1},
    "tuva": {
        "model": 737,
        "test": 1067,
        "seed": 132,
        "snapshot": 4,
        "unit_test": 3,
        "operation": 4,
    },
}


@pytest.mark.parametrize("project", sorted(CORPUS_COUNTS))
def test_each_corpus_manifest_counts_exactly_the_readme_table(project: str) -> None:
    loaded = manifest(project)

    assert dict(loaded.count_by_type()) == CORPUS_COUNTS[project]
    assert loaded.metadata.schema_version == 12


def test_the_evaluator_manifest_spans_three_packages() -> None:
    assert len(manifest("dbt_project_evaluator").packages) == 3


def test_the_tuva_manifest_spans_tuva_elementary_and_its_integration_tests() -> None:
    assert manifest("tuva").packages == {"the_tuva_project", "elementary", "integration_tests"}


def test_the_evaluator_has_one_versioned_model_with_three_versions_and_a_latest() -> None:
    versioned = [n for n in manifest("dbt_project_evaluator").nodes.values() if n.version]

    assert {n.name for n in versioned} == {"int_model_5"}
    assert sorted(n.version or "" for n in versioned) == ["1", "2", "3"]
    assert {n.latest_version for n in versioned} == {"2"}


def test_jaffle_shops_disabled_seeds_are_kept_as_disabled_entries_and_not_counted() -> None:
    loaded = manifest("jaffle_shop")

    assert set(loaded.disabled) == {
        "seed.jaffle_shop.raw_customers",
        "seed.jaffle_shop.raw_products",
        "seed.jaffle_shop.raw_stores",
        "seed.jaffle_shop.raw_supplies",
    }
    for entries in loaded.disabled.values():
        (entry,) = entries
        assert entry.resource_type is ResourceType.SEED
        assert entry.config.enabled is False
    assert "seed" not in loaded.count_by_type()


def test_tuvas_disabled_tests_stay_in_nodes_but_are_not_graph_members() -> None:
    loaded = manifest("tuva")
    off = {u for u, n in loaded.nodes.items() if not n.config.enabled}

    assert len(off) == 16
    assert not off & build_graph(loaded).members.keys()


def test_tuvas_severities_keep_the_casing_the_project_wrote() -> None:
    severities = {n.config.severity for n in manifest("tuva").nodes.values()}

    assert {"warn", "ERROR", "error"} <= severities


def test_a_source_keeps_its_freshness_rule_and_loaded_at_field() -> None:
    data = manifest_dict(source("raw", "orders"))
    raw = data["sources"]["source.proj.raw.orders"]
    raw.update(
        loaded_at_field="_loaded_at",
        identifier="orders_table",
        freshness={
            "warn_after": {"count": 12, "period": "hour"},
            "error_after": {"count": 1, "period": "day"},
            "filter": "_loaded_at > '2020-01-01'",
        },
    )

    orders = structure_manifest(data).sources["source.proj.raw.orders"]

    assert isinstance(orders, Source)
    assert orders.source_name == "raw"
    assert orders.identifier == "orders_table"
    assert orders.loaded_at_field == "_loaded_at"
    assert orders.freshness == FreshnessRule(
        FreshnessThreshold(12, "hour"),
        FreshnessThreshold(1, "day"),
        "_loaded_at > '2020-01-01'",
    )


def test_a_freshness_threshold_without_a_count_reads_as_no_threshold() -> None:
    data = manifest_dict(source("raw", "orders"))
    data["sources"]["source.proj.raw.orders"]["freshness"] = {
        "warn_after": {"count": None, "period": None},
        "error_after": {},
    }

    orders = structure_manifest(data).sources["source.proj.raw.orders"]

    assert orders.freshness == FreshnessRule(None, None, None)
    assert orders.loaded_at_field is None


def test_descriptions_and_both_copies_of_meta_are_read_from_the_corpus() -> None:
    orders = manifest("jaffle_shop_duckdb").nodes["model.jaffle_shop.orders"]
    schedule = manifest("nba_monte_carlo").sources["source.sports_sims.nba.nba_schedule"]
    location = {"external_location": "../data/nba/{identifier}.csv"}

    assert orders.description.startswith("This table has basic information about orders")
    assert dict(orders.meta) == {} and dict(orders.config.meta) == {}
    assert schedule.description == "this is the nba schedule"
    assert dict(schedule.meta) == location and dict(schedule.config.meta) == location


def test_a_node_without_description_or_meta_reads_as_empty_and_meta_is_read_only() -> None:
    data = manifest_dict(model("a"))
    data["nodes"][uid("a")].update(description=None)
    node = structure_manifest(data).nodes[uid("a")]

    assert node.description == "" and dict(node.meta) == {}
    data["nodes"][uid("a")].update(description="Orders.", meta={"owner": "ana"})
    node = structure_manifest(data).nodes[uid("a")]
    assert node.description == "Orders." and dict(node.meta) == {"owner": "ana"}
    with pytest.raises(TypeError):
        node.meta["owner"] = "bo"  # type: ignore[index]


def test_an_unknown_resource_type_is_kept_as_written_and_never_taken_for_a_model() -> None:
    widget = model("widget")
    widget.update(resource_type="widget", unique_id="widget.proj.widget")
    loaded = structure_manifest(manifest_dict(model("a"), widget))
    node = loaded.nodes["widget.proj.widget"]

    assert node.resource_type == UnknownResourceType("widget")
    assert node.resource_type is not ResourceType.MODEL
    assert not node.is_ephemeral
    assert not is_executable(node)
    assert loaded.count_by_type() == {"model": 1, "widget": 1}
    plan = plan_build(build_graph(loaded), ["widget.proj.widget"], TestStrategy.IMMEDIATE)
    assert plan.nodes == {}
    assert "widget" in plan.left_out["widget.proj.widget"]


@pytest.mark.parametrize("version", [10, 11])
def test_older_manifests_without_unit_tests_functions_or_saved_queries_are_accepted(
    version: int,
) -> None:
    data = manifest_dict(seed("s"), model("a", "s"), test("t", "a"))
    data["metadata"]["dbt_schema_version"] = SCHEMA.format(version)
    for key in ("unit_tests", "functions", "saved_queries"):
        data.pop(key, None)

    loaded = structure_manifest(data)

    assert loaded.metadata.schema_version == version
    assert loaded.unit_tests == {} and loaded.functions == {} and loaded.saved_queries == {}
    assert loaded.count_by_type() == {"seed": 1, "model": 1, "test": 1}


def test_the_manifest_tables_are_read_only() -> None:
    loaded = structure_manifest(manifest_dict(model("a")))

    with pytest.raises(TypeError):
        loaded.nodes["model.proj.b"] = loaded.nodes[uid("a")]  # type: ignore[index]


@pytest.mark.parametrize("data", [[], "manifest", None, 12])
def test_a_document_that_is_not_an_object_is_malformed(data: Any) -> None:
    with pytest.raises(ManifestMalformedError) as raised:
        structure_manifest(data, source="target/manifest.json")

    assert raised.value.source == "target/manifest.json"
    assert "expected a JSON object" in str(raised.value)
    assert "dbt parse" in str(raised.value)


def test_schema_v13_is_refused_naming_the_version_and_the_fix() -> None:
    data = manifest_dict(model("a"))
    data["metadata"]["dbt_schema_version"] = SCHEMA.format(13)

    with pytest.raises(ManifestVersionError) as raised:
        structure_manifest(data, source="m.json")

    message = str(raised.value)
    assert "v13" in message
    assert "v10, v11, v12" in message
    assert "pip install 'dbt-core>=1.6,<1.12'" in message and "dbt parse" in message


@pytest.mark.parametrize("written", [SCHEMA.format(9), "not a schema url", "v12"])
def test_an_unsupported_or_unreadable_schema_version_is_refused(written: str) -> None:
    data = manifest_dict(model("a"))
    data["metadata"]["dbt_schema_version"] = written

    with pytest.raises(ManifestVersionError) as raised:
        structure_manifest(data)

    assert raised.value.version == written


@pytest.mark.parametrize("metadata", [{}, {"dbt_schema_version": ""}, None, "v12"])
def test_a_missing_schema_version_is_a_missing_key(metadata: Any) -> None:
    data = manifest_dict(model("a"))
    data["metadata"] = metadata

    with pytest.raises(ManifestKeyError) as raised:
        structure_manifest(data)

    assert raised.value.key == "metadata.dbt_schema_version"
    assert "metadata.dbt_schema_version" in str(raised.value)


def test_a_node_without_resource_type_is_a_missing_key_named_with_its_path() -> None:
    data = manifest_dict(model("a"), model("b", "a"))
    del data["nodes"][uid("b")]["resource_type"]

    with pytest.raises(ManifestKeyError) as raised:
        structure_manifest(data, source="m.json")

    assert raised.value.key == 'nodes["model.proj.b"].resource_type'
    assert 'nodes["model.proj.b"].resource_type' in str(raised.value)
    assert "dbt parse" in str(raised.value)


def test_a_source_without_a_name_is_a_missing_key_named_with_its_path() -> None:
    data = manifest_dict(source("raw", "orders"))
    data["sources"]["source.proj.raw.orders"]["name"] = None

    with pytest.raises(ManifestKeyError) as raised:
        structure_manifest(data)

    assert raised.value.key == 'sources["source.proj.raw.orders"].name'


def test_a_disabled_entry_without_resource_type_is_a_missing_key_named_with_its_path() -> None:
    data = manifest_dict(model("a"))
    data["disabled"] = {
        "model.proj.off": [{"unique_id": "model.proj.off", "name": "off", "package_name": "proj"}]
    }

    with pytest.raises(ManifestKeyError) as raised:
        structure_manifest(data)

    assert "model.proj.off" in raised.value.key
    assert raised.value.key.endswith("resource_type")


@pytest.mark.parametrize("table", ["nodes", "sources"])
def test_a_manifest_without_nodes_or_sources_is_a_missing_key(table: str) -> None:
    data = manifest_dict(model("a"))
    del data[table]

    with pytest.raises(ManifestKeyError) as raised:
        structure_manifest(data)

    assert raised.value.key == table


def test_a_table_that_is_not_an_object_is_malformed_and_says_what_it_should_be() -> None:
    data = manifest_dict(model("a"))
    data["nodes"] = [data["nodes"][uid("a")]]

    with pytest.raises(ManifestMalformedError) as raised:
        structure_manifest(data)

    assert "nodes should be an object keyed by unique_id" in str(raised.value)


def _set(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A manifest of ``seed s -> model a -> test t`` with ``value`` written at ``path``."""
    data = manifest_dict(seed("s"), model("a", "s"), test("t", "a"))
    here: Any = data
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value
    return data


A = uid("a")
WRONG_TYPES: dict[str, tuple[tuple[str | int, ...], Any, str]] = {
    "nodes as an empty list": (
        ("nodes",),
        [],
        "nodes should be an object keyed by unique_id, not a list",
    ),
    "sources as a list": (
        ("sources",),
        [],
        "sources should be an object keyed by unique_id, not a list",
    ),
    "a node as a list": (("nodes", A), [], f'nodes["{A}"] should be an object, not a list'),
    "an int resource_type": (
        ("nodes", A, "resource_type"),
        3,
        f'nodes["{A}"].resource_type should be a string, not int',
    ),
    "an object resource_type": (
        ("nodes", A, "resource_type"),
        {"model": 1},
        f'nodes["{A}"].resource_type should be a string, not an object',
    ),
    "a list name": (
        ("nodes", A, "name"),
        ["a"],
        f'nodes["{A}"].name should be a string, not a list',
    ),
    "depends_on as a list": (
        ("nodes", A, "depends_on"),
        [uid("s", "seed")],
        f'nodes["{A}"].depends_on should be an object, not a list',
    ),
    "depends_on.nodes as a string": (
        ("nodes", A, "depends_on", "nodes"),
        uid("s", "seed"),
        f'nodes["{A}"].depends_on.nodes should be a list of unique_ids (strings), not a string',
    ),
    "an int in depends_on.nodes": (
        ("nodes", A, "depends_on", "nodes"),
        [1],
        f'nodes["{A}"].depends_on.nodes should be a list of unique_ids (strings), not a list',
    ),
    "config as a list": (
        ("nodes", A, "config"),
        [],
        f'nodes["{A}"].config should be an object, not a list',
    ),
    "tags as a number": (
        ("nodes", A, "tags"),
        5,
        f'nodes["{A}"].tags should be a list of strings, not int',
    ),
    "a list description": (
        ("nodes", A, "description"),
        ["x"],
        f'nodes["{A}"].description should be a string, not a list',
    ),
    "meta as a list": (
        ("nodes", A, "meta"),
        [],
        f'nodes["{A}"].meta should be an object, not a list',
    ),
    "a parent_map entry as a string": (
        ("parent_map",),
        {A: "s"},
        f'parent_map["{A}"] should be a list of unique_ids (strings)',
    ),
    "a disabled entry as a string": (
        ("disabled",),
        {A: ["x"]},
        f'disabled["{A}"][0] should be an object, not a string',
    ),
}


@pytest.mark.parametrize(("path", "value", "problem"), WRONG_TYPES.values(), ids=list(WRONG_TYPES))
def test_a_value_of_the_wrong_json_type_is_malformed_naming_its_key_path(
    path: tuple[str | int, ...], value: Any, problem: str
) -> None:
    with pytest.raises(ManifestMalformedError) as raised:
        structure_manifest(_set(path, value), source=SOURCE)

    assert raised.value.source == SOURCE
    assert problem in raised.value.problem
    assert "regenerate it with `dbt parse`" in str(raised.value)


def test_a_node_that_depends_on_itself_is_malformed_not_dropped() -> None:
    data = _set(("nodes", A, "depends_on", "nodes"), [uid("s", "seed"), A])

    with pytest.raises(ManifestMalformedError) as raised:
        structure_manifest(data, source=SOURCE)

    assert raised.value.problem == f'nodes["{A}"].depends_on.nodes lists the node itself ({A})'


def test_a_node_filed_under_another_unique_id_is_malformed() -> None:
    data = _set(("nodes", A, "unique_id"), uid("b"))

    with pytest.raises(ManifestMalformedError) as raised:
        structure_manifest(data, source=SOURCE)

    assert raised.value.problem == f"nodes[\"{A}\"].unique_id is '{uid('b')}', not its key"


def test_absent_or_null_optional_tables_and_objects_read_as_empty() -> None:
    data = _set(("nodes", A, "config"), None)
    data["parent_map"] = None
    del data["exposures"]

    loaded = structure_manifest(data)

    assert loaded.nodes[A].config.materialized is None
    assert dict(loaded.parent_map) == {} and dict(loaded.exposures) == {}


def test_structuring_does_not_change_the_input_dict() -> None:
    data = manifest_dict(seed("s"), model("a", "s"), test("t", "a"))
    before = copy.deepcopy(data)

    structure_manifest(data)

    assert data == before


def test_read_manifest_on_invalid_json_is_malformed_and_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"metadata": {', encoding="utf-8")

    with pytest.raises(ManifestMalformedError) as raised:
        read_manifest(path)

    assert raised.value.source == str(path)
    assert str(path) in str(raised.value)
    assert "invalid JSON" in str(raised.value)


def test_read_manifest_on_a_missing_file_says_to_run_dbt_parse(tmp_path: Path) -> None:
    path = tmp_path / "target" / "manifest.json"

    with pytest.raises(FileNotFoundError) as raised:
        read_manifest(path)

    assert "dbt parse" in str(raised.value)
    assert str(path) in str(raised.value)


def test_read_manifest_loads_a_valid_file_and_names_it_in_later_errors(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest_dict(seed("s"), model("a", "s"))), encoding="utf-8")
    assert set(read_manifest(path).nodes) == {uid("s", "seed"), uid("a")}

    data = manifest_dict(model("a"))
    data["metadata"]["dbt_schema_version"] = SCHEMA.format(13)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestVersionError) as raised:
        read_manifest(path)
    assert raised.value.source == str(path)
