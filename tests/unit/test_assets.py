"""Asset keys, lineage through ephemeral models, owners and descriptions.

Oracles: Prefect's own key validator and description limit, the quoted
``relation_name`` dbt wrote, a decoder for the escape scheme written here,
and a recursive walk over the raw manifest's ``parent_map``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from prefect.assets.core import MAX_ASSET_DESCRIPTION_LENGTH, AssetProperties
from prefect.types.names import (
    MAX_ASSET_KEY_LENGTH,
    RESTRICTED_ASSET_CHARACTERS,
    validate_valid_asset_key,
)

from prefect_dbt_orchestrator.domain import assets
from prefect_dbt_orchestrator.domain.assets import (
    AssetDescription,
    asset_key,
    describe_asset,
    is_valid_asset_key,
    relation_key,
    upstream_asset_keys,
)
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Group, Manifest, Node, ResourceType, Source
from tests.corpus import PROJECTS, manifest, raw_manifest
from tests.unit.builders import manifest_dict, manifest_of, model, seed, source, test, uid

EVAL = "dbt_project_evaluator_integration_tests"
QUOTED = re.compile(r'^"([^"]*)"\."([^"]*)"\."([^"]*)"$')
ESCAPES = re.compile(r"(?:~[0-9A-F]{2})+")
HASHED = re.compile(r"~~[0-9a-f]{16}$")


def _prefect_accepts(key: str) -> bool:
    try:
        validate_valid_asset_key(key)
    except ValueError:
        return False
    return True


def _decode(key: str) -> tuple[str, tuple[str, ...]]:
    """The protocol and the parts of an untruncated key: the inverse of the escape."""
    protocol, _, path = key.partition("://")

    def unescape(run: re.Match[str]) -> str:
        return bytes.fromhex(run.group().replace("~", "")).decode("utf-8", "surrogatepass")

    return protocol, tuple(ESCAPES.sub(unescape, segment) for segment in path.split("/"))


def _relations(loaded: Manifest) -> dict[str, Node]:
    """Every graph member that dbt gave a relation and that is not ephemeral."""
    kinds = {ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT, ResourceType.SOURCE}
    return {
        uid: node
        for uid, node in build_graph(loaded).members.items()
        if node.resource_type in kinds and node.relation_name and not node.is_ephemeral
    }


# --- keys on the corpus ---------------------------------------------------------------------


@pytest.mark.parametrize("project", PROJECTS)
def test_every_corpus_relation_gets_a_key_that_prefect_accepts(project: str) -> None:
    loaded = manifest(project)
    adapter = loaded.metadata.adapter_type
    relations = _relations(loaded)

    keys = {uid: asset_key(adapter, node) for uid, node in relations.items()}

    assert relations and all(k is not None for k in keys.values())
    for key in keys.values():
        assert key is not None and is_valid_asset_key(key) and _prefect_accepts(key)
    assert {u for u in relations if u.startswith("source.")} == {
        u for u in loaded.sources if loaded.sources[u].config.enabled
    }


@pytest.mark.parametrize("project", PROJECTS)
def test_corpus_keys_are_the_unquoted_parts_of_the_relation_dbt_quoted(project: str) -> None:
    loaded = manifest(project)
    quoted = 0
    for node in _relations(loaded).values():
        key = asset_key("duckdb", node)
        assert node.relation_name is not None and key is not None
        parts = QUOTED.match(node.relation_name)
        if parts is None:  # dbt-duckdb's external sources name a file instead
            assert isinstance(node, Source) and node.config.meta.get("external_location")
            assert key == f"duckdb://{node.database}/{node.schema}/{node.identifier}"
            continue
        quoted += 1
        assert key == "duckdb://" + "/".join(parts.groups())
    assert quoted > 0


def test_tuva_keys_use_the_alias_and_the_evaluators_sources_their_identifier() -> None:
    tuva, evaluator = manifest("tuva"), manifest("dbt_project_evaluator")
    patient = tuva.nodes["model.the_tuva_project.core__patient"]
    renamed = evaluator.sources[f"source.{EVAL}.source_1.raw_table_5"]

    assert asset_key("duckdb", patient) == "duckdb://tuva/core/patient"
    assert asset_key("duckdb", renamed) == "duckdb://duck/real_schema/table_5"


@pytest.mark.parametrize("project", PROJECTS)
def test_two_corpus_nodes_share_a_key_only_when_they_share_a_relation(project: str) -> None:
    by_key: dict[str, set[str]] = {}
    for node in _relations(manifest(project)).values():
        key = asset_key("duckdb", node)
        assert key is not None and node.relation_name is not None
        by_key.setdefault(key, set()).add(node.relation_name)

    assert all(len(relations) == 1 for relations in by_key.values())
    assert len({r for rs in by_key.values() for r in rs}) == len(by_key)


def test_the_evaluators_two_sources_of_one_table_are_one_asset() -> None:
    sources = manifest("dbt_project_evaluator").sources
    keys = {
        asset_key("duckdb", sources[f"source.{EVAL}.source_1.{n}"])
        for n in ("table_5", "raw_table_5")
    }

    assert keys == {"duckdb://duck/real_schema/table_5"}


@pytest.mark.parametrize("project", PROJECTS)
def test_tests_ephemeral_models_exposures_operations_and_semantics_get_no_key(
    project: str,
) -> None:
    loaded = manifest(project)
    relations = _relations(loaded)
    others = [n for u, n in loaded.all_resources().items() if u not in relations]

    assert others
    assert all(asset_key("duckdb", node) is None for node in others if node.config.enabled)


def test_the_corpus_has_thirty_ephemeral_models_without_keys_in_the_evaluator() -> None:
    nodes = manifest("dbt_project_evaluator").nodes.values()
    ephemeral = [n for n in nodes if n.is_ephemeral]

    assert len(ephemeral) == 30
    assert all(n.relation_name is None and asset_key("duckdb", n) is None for n in ephemeral)


# --- lineage through ephemeral models ------------------------------------------------------


def test_dim_model_7_reads_the_two_sources_behind_three_ephemeral_models() -> None:
    # dim_model_7 -> int_model_5.v2 -> int_model_4 -> table_2, stg_model_1 -> table_1;
    # and -> stg_model_4 -> stg_model_2 -> table_1, table_2 (all four are ephemeral).
    graph = build_graph(manifest("dbt_project_evaluator"))
    node = graph.members[f"model.{EVAL}.dim_model_7"]

    assert upstream_asset_keys("duckdb", node, graph.members) == (
        "duckdb://duck/real_schema/table_1",
        "duckdb://duck/real_schema/table_2",
    )


def test_fct_model_6_and_the_exposure_resolve_through_their_ephemeral_parents() -> None:
    graph = build_graph(manifest("dbt_project_evaluator"))
    fct_6 = graph.members[f"model.{EVAL}.fct_model_6"]
    exposure = graph.members[f"exposure.{EVAL}.exposure_1"]

    assert upstream_asset_keys("duckdb", fct_6, graph.members) == (
        "duckdb://duck/real_schema_2/table_3",
    )
    assert upstream_asset_keys("duckdb", exposure, graph.members) == (
        "duckdb://duck/main/dim_model_7",
        "duckdb://duck/main/fct_model_6",
        "duckdb://duck/real_schema/table_1",
        "duckdb://duck/real_schema/table_5",
    )


def _raw_upstream_relations(project: str) -> dict[str, frozenset[str]]:
    """Per node, the ``relation_name``s it reads: a recursive walk of ``parent_map``
    over the raw JSON, descending into each parent whose config says ephemeral."""
    raw = raw_manifest(project)
    table = {**raw["nodes"], **raw["sources"]}

    @cache
    def reads(uid: str) -> frozenset[str]:
        found: set[str] = set()
        for parent in raw["parent_map"].get(uid, []):
            entry = table.get(parent, {})
            if entry.get("config", {}).get("materialized") == "ephemeral":
                found |= reads(parent)
            elif entry.get("resource_type") in ("model", "seed", "snapshot", "source"):
                found |= {entry["relation_name"]} if entry.get("relation_name") else set()
        return frozenset(found)

    return {u: reads(u) - {table.get(u, {}).get("relation_name")} for u in raw["parent_map"]}


@pytest.mark.parametrize("project", PROJECTS)
def test_upstream_keys_match_a_walk_of_the_raw_parent_map(project: str) -> None:
    loaded = manifest(project)
    graph = build_graph(loaded)
    relation_of = {asset_key("duckdb", n): n.relation_name for n in _relations(loaded).values()}
    expected = _raw_upstream_relations(project)
    through_ephemeral = 0

    for member, node in graph.members.items():
        keys = upstream_asset_keys("duckdb", node, graph.members)
        assert list(keys) == sorted(set(keys))
        assert {relation_of[k] for k in keys} == expected[member], member
        through_ephemeral += any(graph.members[p].is_ephemeral for p in graph.parents[member])
    assert (through_ephemeral > 0) is (project in ("dbt_project_evaluator", "tuva"))


def _placed(node: dict[str, Any]) -> dict[str, Any]:
    """A builder dict with the relation dbt would give it in ``db.main`` (none if ephemeral)."""
    if node["config"].get("materialized") == "ephemeral" or node["resource_type"] == "test":
        return node
    name = node["name"]
    where = {"database": "db", "schema": "main", "relation_name": f'"db"."main"."{name}"'}
    return {**node, **where, ("identifier" if "source_name" in node else "alias"): name}


def _members(*nodes: dict[str, Any]) -> Mapping[str, Node]:
    return build_graph(manifest_of(*map(_placed, nodes))).members


def test_a_loop_of_ephemeral_models_is_walked_once() -> None:
    members = dict(_members(seed("s"), model("e1", "s", materialized="ephemeral")))
    e1 = members[uid("e1")]  # dbt refuses a cycle at parse; the walk must not hang on one
    members[uid("e2")] = attrs.evolve(e1, unique_id=uid("e2"), name="e2", depends_on=(uid("e1"),))
    members[uid("e1")] = attrs.evolve(e1, depends_on=(uid("e2"), "seed.proj.s"))
    reader = Node(uid("a"), "a", ResourceType.MODEL, "proj", depends_on=(uid("e2"),))

    assert upstream_asset_keys("duckdb", reader, members) == (
        asset_key("duckdb", members["seed.proj.s"]),
    )


def test_unknown_parents_are_ignored_and_shared_parents_appear_once() -> None:
    members = _members(
        source("raw", "orders"),
        model("e1", "raw.orders", materialized="ephemeral"),
        model("e2", "raw.orders", materialized="ephemeral"),
        model("a", "e1", "e2", "raw.orders", "model.proj.gone"),
    )
    orders = asset_key("duckdb", members["source.proj.raw.orders"])

    assert orders is not None
    assert upstream_asset_keys("duckdb", members[uid("a")], members) == (orders,)


# --- escaping -------------------------------------------------------------------------------


def _node(database: str | None, schema: str, alias: str, kind: str = "model") -> Node:
    return Node(
        f"{kind}.proj.x",
        "x",
        ResourceType(kind),
        "proj",
        relation_name="(set)",
        database=database,
        schema=schema,
        alias=alias,
    )


@pytest.mark.parametrize(
    ("adapter", "parts", "key"),
    [
        ("duckdb", ("demo", "main", "stg_users"), "duckdb://demo/main/stg_users"),
        ("postgres", ("db", "schema", "table"), "postgres://db/schema/table"),
        ("Postgres", ("My DB", "Sch.ema", 'Or"ders'), "postgres://My~20DB/Sch.ema/Or~22ders"),
        ("snowflake", ("ANALYTICS", "PUBLIC", "it's"), "snowflake://ANALYTICS/PUBLIC/it~27s"),
        ("bigquery", ("my-proj", "a/b", "50%~off"), "bigquery://my-proj/a~2Fb/50~25~7Eoff"),
        ("dbt-spark", (None, "default", "t"), "dbtspark://default/t"),
        (None, ("d", "s", "t"), "dbt://d/s/t"),
        ("___", ("d", "s", "t"), "dbt://d/s/t"),
        ("duckdb", ("", "s", "t"), "duckdb:///s/t"),
        ("duckdb", ("d", "s", "café\u200d"), "duckdb://d/s/café~E2~80~8D"),
    ],
)
def test_keys_keep_case_and_dots_and_escape_what_prefect_refuses(
    adapter: str | None, parts: tuple[str | None, str, str], key: str
) -> None:
    assert asset_key(adapter, _node(*parts)) == key
    assert _prefect_accepts(key)


def test_the_domain_copies_prefects_limits() -> None:
    assert assets.RESTRICTED_ASSET_CHARACTERS == frozenset(RESTRICTED_ASSET_CHARACTERS)
    assert assets.MAX_ASSET_KEY_LENGTH == MAX_ASSET_KEY_LENGTH
    assert assets.MAX_ASSET_DESCRIPTION_LENGTH == MAX_ASSET_DESCRIPTION_LENGTH


TRICKY = st.text(
    st.sampled_from([*RESTRICTED_ASSET_CHARACTERS, "/", "~", ".", ":", "A", "é", "\u00a0", "7"])
    | st.characters(),
    max_size=40,
)


@given(st.text(max_size=600) | st.from_regex(r"[a-z0-9]+://.*", fullmatch=True))
def test_is_valid_asset_key_agrees_with_prefect(key: str) -> None:
    assert is_valid_asset_key(key) is _prefect_accepts(key)


@given(st.none() | st.text(max_size=40), st.none() | TRICKY, TRICKY, TRICKY)
def test_any_parts_make_a_valid_key_that_decodes_back_to_them(
    adapter: str | None, database: str | None, schema: str, identifier: str
) -> None:
    key = relation_key(adapter, database, schema, identifier)
    parts = (schema, identifier) if database is None else (database, schema, identifier)

    assert is_valid_asset_key(key) and _prefect_accepts(key)
    assert _decode(key) == (assets.key_protocol(adapter), parts)


@given(st.tuples(st.none() | TRICKY, TRICKY, TRICKY), st.tuples(st.none() | TRICKY, TRICKY, TRICKY))
def test_different_parts_make_different_keys(
    one: tuple[str | None, str, str], other: tuple[str | None, str, str]
) -> None:
    assume(one != other)

    assert relation_key("pg", *one) != relation_key("pg", *other)


@given(st.none() | st.text(max_size=300), st.text(max_size=300), TRICKY | st.text(min_size=400))
def test_a_long_key_is_cut_to_512_with_a_stable_hash_and_no_half_escape(
    database: str | None, schema: str, identifier: str
) -> None:
    key = relation_key("duckdb", database, schema, identifier)

    assert key == relation_key("duckdb", database, schema, identifier)
    assert is_valid_asset_key(key)
    if HASHED.search(key):  # at most 2 characters short: a cut escape is dropped whole
        assert MAX_ASSET_KEY_LENGTH - 2 <= len(key) <= MAX_ASSET_KEY_LENGTH
        assert re.fullmatch(r"(?:[^~]|~[0-9A-F]{2})*", key[: -len("~~") - 16])
    else:
        assert "~~" not in key and len(key) <= MAX_ASSET_KEY_LENGTH


def test_long_names_that_differ_only_past_the_cut_get_different_keys() -> None:
    base = '"' * 300
    one = relation_key("duckdb", "db", "s", base + "a")
    other = relation_key("duckdb", "db", "s", base + "b")

    assert one != other
    assert one[:-16] == other[:-16] and len(one) <= MAX_ASSET_KEY_LENGTH
    assert HASHED.search(one) and HASHED.search(other)


# --- owners, descriptions, metadata -------------------------------------------------------


def _loaded(node: dict[str, Any], **top: Any) -> Manifest:
    data = manifest_dict(_placed(seed("s")), _placed(node))
    data["nodes"][node["unique_id"]].update(top)
    data["groups"] = {
        "group.proj.finance": {
            "unique_id": "group.proj.finance",
            "name": "finance",
            "package_name": "proj",
            "owner": {"name": "Finance Team", "email": "fin@example.com"},
        },
        "group.proj.ops": {
            "unique_id": "group.proj.ops",
            "name": "ops",
            "package_name": "proj",
            "owner": {"name": None, "email": "ops@example.com"},
        },
    }
    return structure_manifest(data, source="test_assets")


def _described(loaded: Manifest, name: str = "a", **options: Any) -> AssetDescription:
    graph = build_graph(loaded)
    described = describe_asset(
        "duckdb", graph.members[uid(name)], graph.members, loaded.groups, **options
    )
    assert described is not None
    return described


@pytest.mark.parametrize(
    ("config_meta", "meta", "group", "owners"),
    [
        ({"owner": "ana"}, {}, None, ("ana",)),
        ({}, {"owner": "bo"}, None, ("bo",)),
        ({"owner": "ana"}, {"owner": "bo"}, "finance", ("ana",)),
        ({"owner": ["ana", "bo", "ana", ""]}, {}, None, ("ana", "bo")),
        ({}, {}, "finance", ("Finance Team",)),
        ({}, {}, "ops", ("ops@example.com",)),
        ({"owner": {"team": "x"}}, {}, "ops", ("ops@example.com",)),
        ({}, {}, None, ()),
        ({}, {}, "nobody", ()),
    ],
)
def test_owners_come_from_config_meta_then_meta_then_the_group(
    config_meta: dict[str, Any], meta: dict[str, Any], group: str | None, owners: tuple[str, ...]
) -> None:
    node = model("a", "s", meta=config_meta)
    loaded = _loaded(node, meta=meta, group=group)

    assert _described(loaded).owners == owners


def test_the_evaluators_grouped_model_is_owned_by_its_groups_email() -> None:
    loaded = manifest("dbt_project_evaluator")
    graph = build_graph(loaded)
    report = graph.members[f"model.{EVAL}.report_2"]

    described = describe_asset("duckdb", report, graph.members, loaded.groups)

    assert described is not None
    assert described.owners == ("thegoat@jaffleshop.com",)
    assert described.description == "the colbert report"
    assert described.upstream_keys == ("duckdb://duck/main/fct_model_6",)


def test_compiled_code_is_appended_in_a_sql_block_only_when_asked() -> None:
    loaded = _loaded(model("a", "s"), description="Orders, one per row.\n")
    sql = "select * from orders\n"

    with_code = _described(loaded, compiled_code=sql, include_compiled_code=True)
    without = _described(loaded, compiled_code=sql)
    no_code = _described(loaded, include_compiled_code=True)

    assert with_code.description == "Orders, one per row.\n\n```sql\nselect * from orders\n```"
    assert without.description == no_code.description == "Orders, one per row.\n"


def test_a_node_without_description_gets_just_the_sql_block() -> None:
    described = _described(
        _loaded(model("a", "s")), compiled_code="select 1", include_compiled_code=True
    )

    assert described.description == "```sql\nselect 1\n```"


def test_too_long_a_description_drops_the_code_first_then_is_cut() -> None:
    short = _loaded(model("a", "s"), description="short")
    long = _loaded(model("a", "s"), description="x" * 3000)
    code = "select 1 -- " + "y" * 2600

    dropped = _described(short, compiled_code=code, include_compiled_code=True)
    cut = _described(long, compiled_code=code, include_compiled_code=True)

    assert dropped.description == "short"
    assert len(cut.description) == MAX_ASSET_DESCRIPTION_LENGTH
    assert cut.description == "x" * 2499 + "…"
    AssetProperties(description=cut.description)  # Prefect's own limit accepts it


@given(st.text(max_size=3000), st.none() | st.text(max_size=3000))
def test_every_description_fits_prefects_limit(description: str, code: str | None) -> None:
    clamped = assets.clamp_description(description, code)

    assert len(clamped) <= MAX_ASSET_DESCRIPTION_LENGTH
    assert clamped == description or clamped.startswith(description.rstrip()[:2400])


def test_metadata_is_json_safe_and_names_the_relation() -> None:
    loaded = manifest("jaffle_shop_duckdb")
    graph = build_graph(loaded)
    orders = graph.members["model.jaffle_shop.orders"]

    described = describe_asset("duckdb", orders, graph.members, loaded.groups)

    assert described is not None
    metadata = dict(described.metadata)
    assert json.loads(json.dumps(metadata)) == metadata
    assert metadata == {
        "unique_id": "model.jaffle_shop.orders",
        "resource_type": "model",
        "materialized": "table",
        "tags": [],
        "package_name": "jaffle_shop",
        "database": "jaffle_shop",
        "schema": "main",
        "relation_name": '"jaffle_shop"."main"."orders"',
    }
    assert described.key == "duckdb://jaffle_shop/main/orders"
    assert described.name == "orders"
    assert described.description.startswith("This table has basic information about orders")
    assert described.upstream_keys == (
        "duckdb://jaffle_shop/main/stg_orders",
        "duckdb://jaffle_shop/main/stg_payments",
    )


def test_nodes_without_a_relation_are_not_described() -> None:
    nodes = (seed("s"), model("e", "s", materialized="ephemeral"), test("t", "s"))
    loaded = manifest_of(*map(_placed, nodes))
    graph = build_graph(loaded)

    for member in (graph.members[uid("e")], graph.members[uid("t", "test")]):
        assert describe_asset("duckdb", member, graph.members, loaded.groups) is None


def test_a_group_is_found_by_name_in_another_package() -> None:
    groups = {
        "group.other.finance": Group("group.other.finance", "finance", "other", {"email": "f@x"})
    }
    node = Node(
        uid("a"), "a", ResourceType.MODEL, "proj", relation_name="r", schema="s", group="finance"
    )

    assert assets.asset_owners(node, groups) == ("f@x",)
