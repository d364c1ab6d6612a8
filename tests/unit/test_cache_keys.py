"""Cache keys: what each one depends on, what does not move it, and why it moved.

Keys are checked against independent oracles: descendants from ``depends_on``,
``json.dumps`` + ``hashlib`` for the canonical form, and a second Python
process with another hash seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.cache_keys import (
    KeyEnvironment,
    NodeKey,
    _scan,
    derive_cache_keys,
    first_change,
)
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import CycleError, UnknownNodeError
from prefect_dbt_orchestrator.domain.manifest import Manifest
from tests.corpus import PROJECTS
from tests.corpus import manifest as corpus_manifest
from tests.unit.builders import PROJECT, manifest_dict, model, seed, source, test, uid
from tests.unit.strategies import Project, projects

ENV = KeyEnvironment("dev", "duckdb", "1.11.16", "1.11.1", packages={"dbt_utils": "1.3.0"})
OWN_COMPONENTS = [
    "sql",
    "config",
    "relation",
    "macros",
    "full_refresh",
    "vars",
    "env vars",
    "target",
    "versions",
    "packages",
]
REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------


def macro(name: str, sql: str = "", *calls: str, package: str = PROJECT) -> dict[str, Any]:
    return {
        "unique_id": f"macro.{package}.{name}",
        "name": name,
        "package_name": package,
        "macro_sql": sql,
        "depends_on": {"macros": list(calls)},
    }


def code(node: dict[str, Any], raw_code: str, *calls: str) -> dict[str, Any]:
    """``node`` with its SQL and the macros it calls (``manifest_dict`` drops those)."""
    return {**node, "raw_code": raw_code, "calls": list(calls)}


def in_package(node: dict[str, Any], package: str) -> dict[str, Any]:
    kind = node["resource_type"]
    return {**node, "package_name": package, "unique_id": f"{kind}.{package}.{node['name']}"}


def build(*nodes: dict[str, Any], macros: tuple[dict[str, Any], ...] = ()) -> Manifest:
    data = manifest_dict(*nodes)
    for name in ("nodes", "sources", "unit_tests", "exposures", "functions"):
        for raw in data[name].values():
            raw["depends_on"]["macros"] = raw.pop("calls", [])
    data["macros"] = {m["unique_id"]: m for m in macros}
    return structure_manifest(data, source="test_cache_keys")


def keys_of(
    manifest: Manifest, environment: KeyEnvironment = ENV, **options: Any
) -> dict[str, NodeKey]:
    return derive_cache_keys(manifest, manifest.all_resources(), environment, **options)


def changed(before: Mapping[str, NodeKey], after: Mapping[str, NodeKey]) -> set[str]:
    return {u for u in before if before[u].key != after[u].key}


def why(before: Mapping[str, NodeKey], after: Mapping[str, NodeKey], unique_id: str) -> str | None:
    return first_change(before[unique_id].components, after[unique_id].components)


def canonical_sha(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def descendants_by_depends_on(manifest: Manifest, start: str) -> set[str]:
    children: dict[str, set[str]] = {}
    for node in manifest.all_resources().values():
        for parent in node.depends_on:
            children.setdefault(parent, set()).add(node.unique_id)
    found: set[str] = set()
    frontier = [start]
    while frontier:
        step = children.get(frontier.pop(), set()) - found
        found |= step
        frontier.extend(step)
    return found


def shop(**edits: dict[str, Any]) -> Manifest:
    """A small project: two sources, one read through an ephemeral model; ``edits``
    replace nodes by name."""
    nodes = {
        "orders": source("raw", "orders"),
        "customers": source("raw", "customers"),
        "countries": seed("countries"),
        "stg_orders": model("stg_orders", "raw.orders"),
        "eph_customers": model("eph_customers", "raw.customers", materialized="ephemeral"),
        "fct_orders": model("fct_orders", "stg_orders", "countries"),
        "dim_customers": model("dim_customers", "eph_customers"),
        "report": model("report", "fct_orders", "dim_customers"),
        "not_null_fct_orders": test("not_null_fct_orders", "fct_orders"),
        "lonely": model("lonely"),
    }
    nodes.update(edits)
    return build(*nodes.values())


ORDERS = "source.proj.raw.orders"
CUSTOMERS = "source.proj.raw.customers"


# --- determinism and shape ----------------------------------------------------------------


def test_the_same_inputs_give_the_same_keys_in_the_same_order() -> None:
    first, second = keys_of(shop()), keys_of(shop())

    assert first == second
    assert [list(k.components.items()) for k in first.values()] == [
        list(k.components.items()) for k in second.values()
    ]


def test_components_come_in_component_order_with_upstreams_sorted_last() -> None:
    keys = keys_of(shop(), source_state={})

    assert list(keys[uid("report")].components) == [
        *OWN_COMPONENTS,
        "source data",
        "upstream model.proj.dim_customers",
        "upstream model.proj.fct_orders",
    ]
    assert list(keys[ORDERS].components) == ["relation", "config", "source data"]


def test_without_source_state_there_is_no_source_data_component() -> None:
    keys = keys_of(shop())

    assert list(keys[uid("lonely")].components) == OWN_COMPONENTS
    assert list(keys[ORDERS].components) == ["relation", "config"]


def test_the_key_is_the_sha256_of_canonical_json_of_the_ordered_pairs() -> None:
    key = keys_of(shop())[uid("fct_orders")]

    assert key.key == canonical_sha([[n, p] for n, p in key.components.items()])
    assert key.components["config"] == canonical_sha(
        dict(shop().nodes[uid("fct_orders")].config.raw)
    )


def test_only_the_ids_asked_for_are_returned_in_the_order_asked() -> None:
    keys = derive_cache_keys(shop(), [uid("report"), uid("lonely"), uid("report")], ENV)

    assert list(keys) == [uid("report"), uid("lonely")]


def _sample_keys() -> dict[str, Any]:
    """Keys of a corpus manifest and of a project reading many vars and env vars
    (the name sets are frozensets, whose order depends on the hash seed)."""
    names = [f"v{i}" for i in range(20)]
    reads = " ".join(f"{{{{ var('{n}') }}}} {{{{ env_var('E{n}') }}}}" for n in names)
    project = build(code(model("many"), reads), model("child", "many"))
    environment = attrs.evolve(
        ENV, vars={n: i for i, n in enumerate(names)}, env={f"E{n}": n for n in names}
    )
    jaffle = corpus_manifest("jaffle_shop")
    picked = sorted(jaffle.nodes)[:10] + sorted(jaffle.sources)[:2]
    found = derive_cache_keys(jaffle, picked, ENV, source_state={s: "x" for s in jaffle.sources})
    found |= keys_of(project, environment)
    return {u: [k.key, list(k.components.items())] for u, k in found.items()}


def test_keys_are_the_same_in_another_process_with_another_hash_seed() -> None:
    probe = (
        "import json; from tests.unit.test_cache_keys import _sample_keys; "
        "print(json.dumps(_sample_keys()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO, env=env
    )

    assert json.loads(done.stdout) == json.loads(json.dumps(_sample_keys()))


# --- the node's own code, config and relation ---------------------------------------------


@given(projects(min_nodes=2), st.data())
def test_new_sql_moves_the_node_and_its_descendants_only(project: Project, data: Any) -> None:
    editable = [n for n in project.nodes if n["resource_type"] != "source"]
    assume(editable)
    target = data.draw(st.sampled_from(editable))
    edited = [code(n, "select 2") if n is target else n for n in project.nodes]
    before, after = keys_of(project.manifest), keys_of(build(*edited))

    moved = changed(before, after)
    assert moved == {target["unique_id"]} | descendants_by_depends_on(
        project.manifest, target["unique_id"]
    )
    assert why(before, after, target["unique_id"]) == "sql changed"
    for child in moved - {target["unique_id"]}:
        parents = sorted(set(project.manifest.all_resources()[child].depends_on) & moved)
        assert why(before, after, child) == f"upstream {parents[0]} changed"


def test_a_new_checksum_moves_the_node_with_the_reason_sql_changed() -> None:
    before = keys_of(shop())
    after = keys_of(shop(countries={**seed("countries"), "checksum": {"checksum": "abc"}}))

    moved = {uid("countries", "seed"), uid("fct_orders"), uid("report")}
    assert changed(before, after) == moved | {uid("not_null_fct_orders", "test")}
    assert why(before, after, uid("countries", "seed")) == "sql changed"
    assert why(before, after, uid("fct_orders")) == "upstream seed.proj.countries changed"


def test_a_new_alias_or_config_moves_the_node_with_its_reason() -> None:
    before = keys_of(shop())
    aliased = keys_of(shop(lonely={**model("lonely"), "alias": "alone"}))
    tagged = keys_of(shop(lonely=model("lonely", tags=["daily"])))

    assert changed(before, aliased) == changed(before, tagged) == {uid("lonely")}
    assert why(before, aliased, uid("lonely")) == "relation changed"
    assert why(before, tagged, uid("lonely")) == "config changed"


# --- macros -------------------------------------------------------------------------------

HELPER = "macro.dbt_utils.helper"
SAFE_DIVIDE = "macro.dbt_utils.safe_divide"
CENTS = "macro.proj.cents"


def macro_project(helper_sql: str = "a / b", calls_of_c: tuple[str, ...] = ()) -> Manifest:
    macros = (
        macro("helper", helper_sql, package="dbt_utils"),
        macro("safe_divide", "{{ helper() }}", HELPER, package="dbt_utils"),
        macro("cents", "{{ safe_divide() }} / 100", SAFE_DIVIDE),
        macro("ping", "{{ pong() }}", "macro.proj.pong"),
        macro("pong", "{{ ping() }} {{ helper() }}", "macro.proj.ping", HELPER),
    )
    return build(
        code(model("a"), "select {{ cents() }}", CENTS),
        code(model("b"), "select {{ safe_divide() }}", SAFE_DIVIDE),
        code(model("c"), "select 1", *calls_of_c),
        code(model("d"), "select {{ gone() }}", "macro.proj.gone"),
        code(model("looped"), "select {{ ping() }}", "macro.proj.ping"),
        model("e", "a"),
        macros=macros,
    )


def test_a_macro_body_moves_every_node_calling_it_even_through_another_package() -> None:
    before, after = keys_of(macro_project()), keys_of(macro_project(helper_sql="a / nullif(b, 0)"))

    assert changed(before, after) == {uid("a"), uid("b"), uid("looped"), uid("e")}
    assert why(before, after, uid("a")) == "macros changed"
    assert why(before, after, uid("b")) == "macros changed"
    assert why(before, after, uid("looped")) == "macros changed"
    assert why(before, after, uid("e")) == "upstream model.proj.a changed"


def test_the_order_macros_are_listed_in_does_not_matter() -> None:
    one = keys_of(macro_project(calls_of_c=(CENTS, HELPER)))
    other = keys_of(macro_project(calls_of_c=(HELPER, CENTS, HELPER)))

    assert one[uid("c")] == other[uid("c")]


def test_an_absent_macro_counts_by_its_id() -> None:
    one = keys_of(macro_project(calls_of_c=("macro.proj.gone",)))
    other = keys_of(macro_project(calls_of_c=("macro.proj.elsewhere",)))

    assert why(one, other, uid("c")) == "macros changed"


# --- vars and env vars --------------------------------------------------------------------


def vars_project() -> Manifest:
    return build(
        code(model("reads_x"), "select {{ var('x') }}"),
        code(model("reads_y"), 'select {{ var (  "y" , 1) }}'),
        code(model("computed"), "select {{ var(name_of_var) }}"),
        code(model("via_macro"), "select {{ read_x() }}", "macro.proj.read_x"),
        model("none"),
        in_package(code(model("pkg_x"), "select {{ var('x') }}"), "pkg2"),
        macros=(macro("read_x", "{{ var('x', 0) }}"),),
    )


def vars_moved(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    project = vars_project()
    old = keys_of(project, attrs.evolve(ENV, vars=before))
    new = keys_of(project, attrs.evolve(ENV, vars=after))
    for moved in changed(old, new):
        assert why(old, new, moved) == "vars changed"
    return {u.rsplit(".", 1)[-1] for u in changed(old, new)}


SPEC_VAR = re.compile(r"""\bvar\s*\(\s*['"]([^'"]+)['"]""")
SPEC_COMPUTED_VAR = re.compile(r"""\bvar\s*\(\s*[^'"\s)]""")
SPEC_ENV_VAR = re.compile(r"""\benv_var\s*\(\s*['"]([^'"]+)['"]""")
NAMES = st.sampled_from(["x", "y", "my_var", "DBT_ENV_SECRET_T", "HOME"])
SPACE = st.sampled_from(["", " ", "  ", "\n"])
CALLS = st.one_of(
    st.tuples(st.sampled_from(["var", "env_var"]), SPACE, SPACE, st.sampled_from("'\""), NAMES).map(
        lambda t: f"{t[0]}{t[1]}({t[2]}{t[3]}{t[4]}{t[3]}, 1)"
    ),
    st.tuples(st.sampled_from(["var", "env_var"]), SPACE, NAMES).map(
        lambda t: f"{t[0]}({t[1]}{t[2]}_name)"
    ),
    st.sampled_from(["{{ ", " }}", "select ", "cvar('x')", "var()", " , ", "var(var('y'))"]),
)
BITS = st.sampled_from(["var", "env_var", "(", ")", " ", "'", '"', "x", "DBT_ENV_SECRET_", "_"])


def spec_reads(text: str) -> tuple[frozenset[str], bool, frozenset[str]]:
    env = {n for n in SPEC_ENV_VAR.findall(text) if not n.startswith("DBT_ENV_SECRET")}
    names = frozenset(SPEC_VAR.findall(text))
    return names, SPEC_COMPUTED_VAR.search(text) is not None, frozenset(env)


@given(st.lists(CALLS, max_size=12).map("".join))
def test_the_one_pass_scan_finds_what_the_three_patterns_find_in_jinja(text: str) -> None:
    reads = _scan(text)

    assert (reads.vars, reads.any_var, reads.env) == spec_reads(text)


@given(st.lists(BITS, max_size=30).map("".join))
def test_the_one_pass_scan_never_misses_what_the_three_patterns_find(text: str) -> None:
    # It may find more when a quoted name itself holds "var(": over-invalidating is safe.
    names, any_var, env = spec_reads(text)
    reads = _scan(text)

    assert reads.vars >= names and reads.env >= env and reads.any_var >= any_var


def test_a_var_moves_the_nodes_that_read_it_or_read_a_computed_name() -> None:
    assert vars_moved({"x": 1, "y": 1}, {"x": 2, "y": 1}) == {
        "reads_x",
        "computed",
        "via_macro",
        "pkg_x",
    }
    assert vars_moved({"x": 1}, {"x": 1, "y": 2}) == {"reads_y", "computed"}
    assert vars_moved({"x": 1}, {"x": 1, "z": 3}) == {"computed"}
    assert vars_moved({}, {}) == set()


def test_a_package_scoped_var_applies_only_to_that_packages_nodes() -> None:
    assert vars_moved({"x": 1}, {"x": 1, "pkg2": {"x": 2}}) == {"pkg_x"}
    assert vars_moved({"x": 1, "pkg2": {"x": 2}}, {"x": 1, "pkg2": {"x": 3}}) == {"pkg_x"}
    assert vars_moved({"x": 1, "pkg2": {"x": 2}}, {"x": 5, "pkg2": {"x": 2}}) == {
        "reads_x",
        "computed",
        "via_macro",
    }


def test_a_dict_var_under_a_name_that_is_no_package_is_a_global_var() -> None:
    assert vars_moved({"x": {"a": 1}}, {"x": {"a": 2}}) == {
        "reads_x",
        "computed",
        "via_macro",
        "pkg_x",
    }


def env_moved(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    project = build(
        code(model("home"), "select '{{ env_var('HOME_DIR') }}'"),
        code(model("secret"), "select '{{ env_var(\"DBT_ENV_SECRET_TOKEN\") }}'"),
        code(model("via_macro"), "{{ user() }}", "macro.proj.user"),
        model("none"),
        macros=(macro("user", "{{ env_var( 'USER_NAME', 'me') }}"),),
    )
    old = keys_of(project, attrs.evolve(ENV, env=before))
    new = keys_of(project, attrs.evolve(ENV, env=after))
    for moved in changed(old, new):
        assert why(old, new, moved) == "env vars changed"
    return {u.rsplit(".", 1)[-1] for u in changed(old, new)}


def test_an_env_var_moves_only_the_nodes_that_read_it_and_secrets_never() -> None:
    assert env_moved({"HOME_DIR": "/a"}, {"HOME_DIR": "/b"}) == {"home"}
    assert env_moved({}, {"USER_NAME": "you"}) == {"via_macro"}
    assert env_moved({"DBT_ENV_SECRET_TOKEN": "s1"}, {"DBT_ENV_SECRET_TOKEN": "s2"}) == set()
    assert env_moved({}, {"UNREAD": "1"}) == set()


# --- the environment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"full_refresh": True}, "full_refresh changed"),
        ({"target_name": "prod"}, "target changed"),
        ({"adapter_type": "postgres"}, "target changed"),
        ({"adapter_version": "1.11.2"}, "dbt or adapter version changed"),
        ({"dbt_version": "1.10.0"}, "dbt or adapter version changed"),
        ({"packages": {"dbt_utils": "1.4.0"}}, "packages changed"),
    ],
)
def test_the_environment_moves_every_node_key_with_its_reason(
    edit: dict[str, Any], reason: str
) -> None:
    before, after = keys_of(shop()), keys_of(shop(), attrs.evolve(ENV, **edit))

    nodes = set(shop().nodes)
    assert changed(before, after) == nodes
    assert {why(before, after, u) for u in nodes} == {reason}


# --- upstreams: ephemeral, absent, deep, cyclic -------------------------------------------


def test_an_ephemeral_models_sql_moves_its_downstream_models() -> None:
    edited = code(model("eph_customers", "raw.customers", materialized="ephemeral"), "select 9")
    before, after = keys_of(shop()), keys_of(shop(eph_customers=edited))

    assert changed(before, after) == {uid("eph_customers"), uid("dim_customers"), uid("report")}
    assert why(before, after, uid("dim_customers")) == "upstream model.proj.eph_customers changed"


def test_an_upstream_absent_from_the_manifest_counts_by_its_id() -> None:
    one = keys_of(build(model("a", "model.proj.disabled_one")))
    other = keys_of(build(model("a", "model.proj.disabled_two")))

    absent = "model.proj.disabled_one"
    assert one[uid("a")].components[f"upstream {absent}"] == canonical_sha(absent)
    assert why(one, other, uid("a")) == "upstream model.proj.disabled_two added"


def test_a_chain_deeper_than_the_recursion_limit_is_keyed() -> None:
    depth = sys.getrecursionlimit() + 500
    chain = [model("m0")] + [model(f"m{i}", f"m{i - 1}") for i in range(1, depth)]

    keys = derive_cache_keys(build(*chain), [uid(f"m{depth - 1}")], ENV)

    assert len(keys) == 1


def test_a_cycle_is_refused_naming_the_nodes_on_it() -> None:
    manifest = build(model("a", "b"), model("b", "a"), model("c", "a"))

    with pytest.raises(CycleError) as raised:
        derive_cache_keys(manifest, [uid("c")], ENV)
    assert raised.value.stuck == (uid("a"), uid("b"))


def test_an_unknown_id_is_refused_with_a_hint() -> None:
    with pytest.raises(UnknownNodeError, match="model.proj.lonely"):
        derive_cache_keys(shop(), ["model.other.lonely"], ENV)


# --- source data --------------------------------------------------------------------------


def test_source_state_moves_only_what_is_downstream_of_that_source() -> None:
    state = {ORDERS: "2026-12-01T00:00", CUSTOMERS: "2026-12-01T00:00"}
    before = keys_of(shop(), source_state=state)
    after = keys_of(shop(), source_state={**state, ORDERS: "2026-12-02T00:00"})

    assert changed(before, after) == {ORDERS} | descendants_by_depends_on(shop(), ORDERS)
    assert why(before, after, ORDERS) == "source data changed"
    assert why(before, after, uid("stg_orders")) == "source data changed"
    # fct_orders reads the source through a table, whose key moved
    assert why(before, after, uid("fct_orders")) == "upstream model.proj.stg_orders changed"


def test_a_source_read_through_an_ephemeral_model_is_read_directly() -> None:
    state = {ORDERS: "t1", CUSTOMERS: "t1"}
    before = keys_of(shop(), source_state=state)
    after = keys_of(shop(), source_state={**state, CUSTOMERS: "t2"})

    moved = {CUSTOMERS, uid("eph_customers"), uid("dim_customers"), uid("report")}
    assert changed(before, after) == moved
    # the ephemeral model is inlined: component 11 comes before the upstream components
    assert why(before, after, uid("dim_customers")) == "source data changed"
    assert why(before, after, uid("report")) == "upstream model.proj.dim_customers changed"


def test_a_source_missing_from_the_state_is_unset_until_it_appears() -> None:
    before = keys_of(shop(), source_state={})
    after = keys_of(shop(), source_state={ORDERS: "t1"})

    assert changed(before, after) == {ORDERS} | descendants_by_depends_on(shop(), ORDERS)


# --- first_change -------------------------------------------------------------------------


def test_first_change_names_the_first_differing_component_in_the_current_order() -> None:
    previous = {"sql": "1", "vars": "1", "upstream model.p.a": "1"}

    assert first_change(previous, dict(previous)) is None
    assert first_change(previous, {**previous, "vars": "2", "sql": "2"}) == "sql changed"
    assert first_change(previous, {**previous, "upstream model.p.a": "2"}) == (
        "upstream model.p.a changed"
    )
    assert first_change(previous, {**previous, "upstream model.p.b": "1"}) == (
        "upstream model.p.b added"
    )
    assert first_change({**previous, "upstream model.p.c": "1"}, previous) == (
        "upstream model.p.c removed"
    )
    assert first_change({**previous, "source data": "1"}, previous) == "source data changed"


# --- the corpus ---------------------------------------------------------------------------

KEYED_TYPES = {"model", "seed", "snapshot", "test"}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("project", PROJECTS)
def test_every_corpus_node_is_keyed_and_keyed_the_same_twice(
    project: str, with_state: bool
) -> None:
    manifest = corpus_manifest(project)
    ids = [u for u, n in manifest.nodes.items() if n.resource_type.value in KEYED_TYPES]
    state = {s: "2026-12-01" for s in manifest.sources} if with_state else None

    first = derive_cache_keys(manifest, ids, ENV, source_state=state)

    assert list(first) == ids
    assert first == derive_cache_keys(manifest, ids, ENV, source_state=state)
    assert all(len(k.key) == 64 and int(k.key, 16) >= 0 for k in first.values())
