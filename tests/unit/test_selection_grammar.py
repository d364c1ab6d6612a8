"""The selector grammar, YAML selectors, flags and bad input.

Parsing is checked on spec objects; meaning is checked on the corpus's
jaffle_shop_duckdb manifest (28 nodes) and on small hand-built manifests,
often by comparing two spellings that dbt treats as equal. Every bad input
raises a typed error whose message names the problem and the fix.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.selection import (
    Combination,
    Criterion,
    IndirectSelection,
    InvalidFlagError,
    InvalidMethodValueError,
    Method,
    MissingSelectionDataError,
    Operator,
    SelectionContext,
    SelectionError,
    SelectionRequest,
    SelectorDefinitionError,
    SelectorSyntaxError,
    StateRequiredError,
    UnknownMethodError,
    UnknownSelectorError,
    parse_term,
    parse_union,
    resource_types,
    select,
)
from prefect_dbt_orchestrator.domain.selection.paths import file_tree, glob
from tests.corpus import manifest, root_project_files

PROJECT = "jaffle_shop_duckdb"
PKG = "jaffle_shop"
SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"


def duckdb_context(**fields: Any) -> SelectionContext:
    return SelectionContext(root_project_files=frozenset(root_project_files(PROJECT)), **fields)


def ids(*select_: str, manifest_: Manifest | None = None, **flags: Any) -> frozenset[str]:
    """What ``select`` answers on jaffle_shop_duckdb with every resource type."""
    context = flags.pop("context", duckdb_context())
    flags.setdefault("resource_types", ("all",))
    request = SelectionRequest(select=select_, **flags)
    return select(manifest_ or manifest(PROJECT), request, context).unique_ids


def model(name: str) -> str:
    return f"model.{PKG}.{name}"


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("orders", Criterion("orders", Method.FQN, (), "orders")),
        ("+orders", Criterion("+orders", Method.FQN, (), "orders", parents=True)),
        (
            "2+tag:nightly+3",
            Criterion(
                "2+tag:nightly+3",
                Method.TAG,
                (),
                "nightly",
                parents=True,
                parents_depth=2,
                children=True,
                children_depth=3,
            ),
        ),
        ("@orders", Criterion("@orders", Method.FQN, (), "orders", childrens_parents=True)),
        (
            "config.meta.owner:alice",
            Criterion("config.meta.owner:alice", Method.CONFIG, ("meta", "owner"), "alice"),
        ),
        ("models/staging", Criterion("models/staging", Method.PATH, (), "models/staging")),
        ("stg_orders.sql", Criterion("stg_orders.sql", Method.FILE, (), "stg_orders.sql")),
        ("nfl_elo.PY", Criterion("nfl_elo.PY", Method.FILE, (), "nfl_elo.PY")),
        ("raw_orders.csv", Criterion("raw_orders.csv", Method.FILE, (), "raw_orders.csv")),
        (
            "jaffle_shop.staging",
            Criterion("jaffle_shop.staging", Method.FQN, (), "jaffle_shop.staging"),
        ),
        (
            "source:ecom.raw+1",
            Criterion(
                "source:ecom.raw+1", Method.SOURCE, (), "ecom.raw", children=True, children_depth=1
            ),
        ),
    ],
)
def test_a_term_parses_into_its_parts(raw: str, expected: Criterion) -> None:
    assert parse_term(raw) == expected


def test_a_term_carries_the_indirect_selection_mode() -> None:
    assert parse_term("orders", IndirectSelection.CAUTIOUS).indirect is IndirectSelection.CAUTIOUS


def test_spaces_make_a_union_of_comma_intersections() -> None:
    spec = parse_union(("a b,tag:x", "c"))

    assert spec.operator is Operator.UNION
    parts = spec.components
    assert [p.raw for p in parts] == ["a", "b,tag:x", "c"]
    assert all(isinstance(p, Combination) and p.operator is Operator.INTERSECTION for p in parts)
    second = parts[1]
    assert isinstance(second, Combination)
    assert [c.raw for c in second.components] == ["b", "tag:x"]


# --- bad input ---------------------------------------------------------------


def test_an_unknown_method_names_the_method_and_the_known_ones() -> None:
    with pytest.raises(UnknownMethodError) as caught:
        ids("foo:bar")

    text = str(caught.value)
    assert "unknown selector method 'foo' in 'foo:bar'" in text
    assert "use one of fqn, tag," in text


def test_at_with_a_children_suffix_is_malformed() -> None:
    with pytest.raises(SelectorSyntaxError) as caught:
        parse_term("@a+")

    text = str(caught.value)
    assert "invalid selector '@a+'" in text
    assert '"@" prefix and a "+" suffix cannot be combined' in text
    assert "write it as [@][N+][method:]value[+N]" in text


def test_an_unknown_selector_lists_the_defined_ones() -> None:
    selectors = {"selectors": [{"name": "daily", "definition": "tag:daily"}]}
    request = SelectionRequest(selector="nightly")

    with pytest.raises(UnknownSelectorError) as caught:
        select(manifest(PROJECT), request, SelectionContext(selectors=selectors))

    assert str(caught.value) == "unknown selector 'nightly'; use one of daily"


def test_an_unknown_selector_without_any_selectors_says_where_to_add_it() -> None:
    with pytest.raises(UnknownSelectorError, match="add it to selectors.yml"):
        select(manifest(PROJECT), SelectionRequest(selector="nightly"))


def test_state_without_a_state_manifest_names_the_public_fix() -> None:
    with pytest.raises(StateRequiredError) as caught:
        ids("state:modified+")

    text = str(caught.value)
    assert "cannot answer selector 'state:modified+'" in text
    assert "needs the manifest.json of a previous run" in text
    assert "PrefectDbtOrchestrator(state_path=Path(...))" in text
    assert "--state DIR" in text
    assert "SelectionContext" not in text


@pytest.mark.parametrize(
    ("term", "problem", "expected"),
    [
        ("resource_type:nope", "'nope' is not a resource type", "one of model,"),
        ("version:newest", "'newest' is not a version", "one of latest, prerelease, old"),
        ("test_type:integration", "'integration' is not a test type", "generic, singular, unit"),
        ("source:a.b.c.d", "4 dot-separated parts", "package.source.table"),
        ("exposure:a.b.c", "3 dot-separated parts", "package.exposure_name"),
        ("config:table", "config needs a key", "config.<key>:<value>"),
        ("path:../elsewhere", "'..' leaves the root project", "a path inside the root project"),
        ("path:/abs/models", "absolute paths are not supported", "relative to the project root"),
        ("path:models/a**b", "'**' must be a whole path component", "models/**/*.sql"),
        ("path:./", "the path names no file or directory", "`path:models`"),
    ],
)
def test_a_bad_method_value_names_term_problem_and_fix(
    term: str, problem: str, expected: str
) -> None:
    with pytest.raises(InvalidMethodValueError) as caught:
        ids(term)

    text = str(caught.value)
    assert text.startswith(f"invalid selector {term!r}: {problem}")
    assert expected in text.split("; expected ", 1)[1]


def test_path_without_the_root_project_files_names_the_fix() -> None:
    with pytest.raises(MissingSelectionDataError, match=r"root_project_files=\.\.\."):
        ids("models/staging", context=SelectionContext())


@pytest.mark.parametrize(
    ("flags", "flag", "value"),
    [
        ({"resource_types": ("modle",)}, "--resource-type", "modle"),
        ({"exclude_resource_types": ("default",)}, "--exclude-resource-type", "default"),
        ({"exclude_resource_types": ("all",)}, "--exclude-resource-type", "all"),
        ({"indirect_selection": "lazy"}, "--indirect-selection", "lazy"),
    ],
)
def test_a_bad_flag_value_lists_the_choices(flags: dict[str, Any], flag: str, value: str) -> None:
    with pytest.raises(InvalidFlagError) as caught:
        select(manifest(PROJECT), SelectionRequest(select=("orders",), **flags))

    assert str(caught.value).startswith(f"invalid value {value!r} for {flag}; use one of ")


def test_selection_errors_are_plan_errors_and_value_errors_that_pickle() -> None:
    error = UnknownMethodError("foo:bar", "foo", ("fqn", "tag"))
    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(error, SelectionError)
    assert isinstance(error, PlanError)
    assert isinstance(error, ValueError)
    assert copy == error
    assert str(copy) == str(error)


# --- meaning -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("implicit", "explicit"),
    [
        ("models/staging", "path:models/staging"),
        ("stg_orders.sql", "file:stg_orders.sql"),
        ("stg_orders", "fqn:stg_orders"),
        ("test_type:d", "test_type:data"),  # dbt reads any part of "data" as data
        ("test_type:schema", "test_type:generic"),
        ("package:this", f"package:{PKG}"),
        ("config.enabled:TRUE", "config.enabled:true"),
        ("config.materialized:view", "config.materialized:view,resource_type:model"),
    ],
)
def test_two_spellings_select_the_same(implicit: str, explicit: str) -> None:
    assert ids(implicit) == ids(explicit)
    assert ids(implicit)


def test_an_empty_intersection_member_selects_nothing() -> None:
    assert ids("stg_orders") and not ids("stg_orders,")


def test_star_skips_sources_but_no_select_lists_them() -> None:
    jaffle = manifest("jaffle_shop")
    request = SelectionRequest(resource_types=("source",))

    assert not select(
        jaffle, SelectionRequest(select=("*",), resource_types=("source",))
    ).unique_ids
    assert len(select(jaffle, request).unique_ids) == 6


def test_graph_operators_count_depth_in_edges() -> None:
    one = ids("1+customers", indirect_selection="empty")
    two = ids("2+customers", indirect_selection="empty")

    assert one == {
        model("customers"),
        model("stg_customers"),
        model("stg_orders"),
        model("stg_payments"),
    }
    assert two == one | {
        f"seed.{PKG}.raw_customers",
        f"seed.{PKG}.raw_orders",
        f"seed.{PKG}.raw_payments",
    }


def test_at_adds_the_parents_of_every_child() -> None:
    at = ids("@stg_customers", indirect_selection="empty")

    assert model("stg_orders") in at  # a parent of customers, a child of stg_customers
    assert f"seed.{PKG}.raw_customers" in at


def test_reasons_name_the_term_and_the_rule() -> None:
    reasons = select(
        manifest(PROJECT), SelectionRequest(select=("+customers",)), duckdb_context()
    ).reasons

    assert reasons[model("customers")] == "+customers"
    assert reasons[model("stg_customers")] == f"+customers (ancestor of {model('customers')})"
    test_id = next(
        uid for uid in reasons if uid.startswith("test.") and "not_null_customers" in uid
    )
    assert reasons[test_id] == f"eager: test of {model('customers')}"


def test_resource_type_flags_union_and_subtract() -> None:
    assert resource_types(SelectionRequest()) == resource_types(
        SelectionRequest(resource_types=("default",))
    )
    assert "analysis" not in resource_types(SelectionRequest())
    assert "analysis" in resource_types(SelectionRequest(resource_types=("all",)))
    assert resource_types(SelectionRequest(resource_types=("MODEL", "seed"))) == {"model", "seed"}
    assert resource_types(
        SelectionRequest(resource_types=("all",), exclude_resource_types=("test", "seed"))
    ) == resource_types(SelectionRequest(resource_types=("all",))) - {"test", "seed"}


# --- small hand-built manifests -----------------------------------------------


def _node(kind: str, name: str, *parents: str, **extra: Any) -> dict[str, Any]:
    config = {"enabled": True, **extra.pop("config", {})}
    return {
        "unique_id": f"{kind}.proj.{name}",
        "name": name,
        "resource_type": kind,
        "package_name": "proj",
        "fqn": ["proj", name],
        "original_file_path": f"models/{name}.sql",
        "config": config,
        "depends_on": {"nodes": list(parents), "macros": []},
        **extra,
    }


def small_manifest(*nodes: dict[str, Any]) -> Manifest:
    """A manifest of ``nodes``; those of resource type source go to ``sources``."""
    tables: dict[str, dict[str, Any]] = {"nodes": {}, "sources": {}}
    for node in nodes:
        table = "sources" if node["resource_type"] == "source" else "nodes"
        tables[table][node["unique_id"]] = node
    return structure_manifest(
        {"metadata": {"dbt_schema_version": SCHEMA, "project_name": "proj"}, **tables}
    )


CONFIGURED = small_manifest(
    _node(
        "model",
        "a",
        config={"materialized": "table", "meta": {"owner": "alice"}, "tags": ["x", "y"]},
    ),
    _node(
        "model",
        "b",
        config={"materialized": "view", "meta": {"owner": "bob"}, "contract": {"enforced": True}},
    ),
    _node("model", "c", config={"materialized": "view", "limit": 5, "flags": [True, "z"]}),
    _node(
        "test",
        "t_warn",
        "model.proj.a",
        config={"severity": "warn"},
        test_metadata={"name": "unique"},
    ),
    _node(
        "test",
        "t_error",
        "model.proj.b",
        config={"severity": "ERROR"},
        test_metadata={"name": "not_null"},
    ),
)


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("config.meta.owner:alice", {"model.proj.a"}),
        ("config.tags:y", {"model.proj.a"}),
        ("config.contract.enforced:true", {"model.proj.b"}),
        ("config.contract.enforced:True", {"model.proj.b"}),
        ("config.limit:5", set()),  # dbt compares the text "5" with the number 5
        ("config.flags:TRUE", {"model.proj.c"}),
        ("config.severity:WARN", {"test.proj.t_warn"}),
        ("config.severity:error", {"test.proj.t_error"}),
        ("config.materialized:view", {"model.proj.b", "model.proj.c"}),
        ("config.no_such_key:x", set()),
    ],
)
def test_config_values_compare_as_dbt_compares_them(term: str, expected: set[str]) -> None:
    request = SelectionRequest(select=(term,), indirect_selection="empty")

    assert select(CONFIGURED, request).unique_ids == expected


def test_a_yaml_config_value_keeps_its_type() -> None:
    selectors = {"n": {"definition": {"method": "config.limit", "value": 5}}}
    context = SelectionContext(selectors=selectors)

    assert select(CONFIGURED, SelectionRequest(selector="n"), context).unique_ids == {
        "model.proj.c"
    }


# A relationships test from a model to a source that is not upstream of it.
TO_SOURCE = small_manifest(
    _node("source", "src"),
    _node("model", "m"),
    _node(
        "test", "rel", "model.proj.m", "source.proj.src", test_metadata={"name": "relationships"}
    ),
)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("eager", {"model.proj.m", "test.proj.rel"}),
        ("buildable", {"model.proj.m", "test.proj.rel"}),  # every source counts as buildable
        ("cautious", {"model.proj.m"}),
        ("empty", {"model.proj.m"}),
    ],
)
def test_indirect_modes_on_a_test_of_a_model_and_a_source(mode: str, expected: set[str]) -> None:
    request = SelectionRequest(select=("m",), indirect_selection=mode)

    assert select(TO_SOURCE, request).unique_ids == expected


# --- YAML selectors ----------------------------------------------------------


def yaml_ids(definition: Any, **flags: Any) -> frozenset[str]:
    selectors = {"selectors": [{"name": "s", "definition": definition}]}
    context = duckdb_context(selectors=selectors)
    request = SelectionRequest(selector="s", resource_types=("all",), **flags)
    return select(manifest(PROJECT), request, context).unique_ids


@pytest.mark.parametrize(
    ("definition", "cli"),
    [
        ("+customers", "+customers"),
        ({"tag": "nightly"}, "tag:nightly"),
        ({"method": "fqn", "value": "customers", "parents": True}, "+customers"),
        (
            {"method": "fqn", "value": "stg_orders", "children": True, "children_depth": 1},
            "stg_orders+1",
        ),
        ({"method": "fqn", "value": "stg_orders", "childrens_parents": True}, "@stg_orders"),
        (
            {"method": "fqn", "value": "customers", "parents": True, "parents_depth": "2"},
            "2+customers",
        ),
        (
            {"union": ["stg_orders", {"method": "resource_type", "value": "seed"}]},
            "stg_orders resource_type:seed",
        ),
        ({"intersection": ["+customers", "resource_type:seed"]}, "+customers,resource_type:seed"),
        (
            {"union": ["+customers", {"exclude": ["stg_payments"]}]},
            "+customers --exclude stg_payments",
        ),
        (
            {
                "method": "fqn",
                "value": "orders",
                "parents": True,
                "exclude": [{"method": "resource_type", "value": "test"}],
            },
            "+orders --exclude resource_type:test",
        ),
    ],
)
def test_a_yaml_definition_selects_what_its_cli_spelling_selects(definition: Any, cli: str) -> None:
    select_, _, exclude = cli.partition(" --exclude ")
    expected = ids(select_, exclude=(exclude,) if exclude else ())

    assert yaml_ids(definition) == expected


def test_manifest_and_selectors_yml_shapes_agree() -> None:
    definition = {"union": [{"method": "fqn", "value": "customers", "parents": True}]}
    from_yml = {"selectors": [{"name": "s", "definition": definition}]}
    from_manifest = {"s": {"name": "s", "definition": definition, "default": False}}
    request = SelectionRequest(selector="s")

    first = select(manifest(PROJECT), request, SelectionContext(selectors=from_yml))
    second = select(manifest(PROJECT), request, SelectionContext(selectors=from_manifest))

    assert first.unique_ids == second.unique_ids == ids("+customers", resource_types=())


def test_a_selector_reuses_one_defined_before_it() -> None:
    selectors = {
        "selectors": [
            {"name": "base", "definition": "+customers"},
            {
                "name": "more",
                "definition": {"union": [{"method": "selector", "value": "base"}, "raw_orders"]},
            },
        ]
    }
    context = duckdb_context(selectors=selectors)
    request = SelectionRequest(selector="more", resource_types=("all",))

    assert select(manifest(PROJECT), request, context).unique_ids == ids("+customers raw_orders")


def test_the_default_selector_applies_only_without_select_and_exclude() -> None:
    selectors = {"selectors": [{"name": "d", "definition": "stg_orders", "default": True}]}
    context = duckdb_context(selectors=selectors)

    assert ids(context=context) == ids("stg_orders")
    assert ids("customers", context=context) == ids("customers")


def test_a_term_indirect_selection_overrides_the_flag() -> None:
    definition = {"method": "fqn", "value": "orders", "indirect_selection": "empty"}

    assert yaml_ids(definition) == {model("orders")}
    assert yaml_ids("orders", indirect_selection="empty") == {model("orders")}
    assert yaml_ids("orders") == ids("orders") > {model("orders")}


def test_selector_wins_over_select_as_in_dbt() -> None:
    selectors = {"selectors": [{"name": "s", "definition": "raw_orders"}]}
    request = SelectionRequest(select=("customers",), selector="s")

    assert select(manifest(PROJECT), request, SelectionContext(selectors=selectors)).unique_ids == {
        f"seed.{PKG}.raw_orders"
    }


@pytest.mark.parametrize(
    ("selectors", "problem"),
    [
        (
            {"selectors": [{"name": "s", "definition": {"union": ["a"], "tag": "x"}}]},
            "a single union or intersection",
        ),
        ({"selectors": [{"name": "s", "definition": {"union": "a"}}]}, "'union' must be a list"),
        (
            {"selectors": [{"name": "s", "definition": {"method": "tag", "parents": True}}]},
            "expected one key or method and value keys",
        ),
        (
            {"selectors": [{"name": "s", "definition": {"method": "selector", "value": "later"}}]},
            "'later', which is not defined before it",
        ),
        (
            {
                "selectors": [
                    {"name": "a", "definition": "x", "default": True},
                    {"name": "b", "definition": "y", "default": True},
                ]
            },
            "'a' is already the default",
        ),
        (
            {
                "selectors": [
                    {
                        "name": "s",
                        "definition": {"union": ["a", {"exclude": ["b"]}, {"exclude": ["c"]}]},
                    }
                ]
            },
            "more than one exclude",
        ),
        ({"selectors": [{"name": "s", "definition": 42}]}, "expected a string or a mapping"),
    ],
)
def test_a_malformed_selector_definition_names_the_problem(
    selectors: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SelectorDefinitionError) as caught:
        select(manifest(PROJECT), SelectionRequest(), SelectionContext(selectors=selectors))

    assert problem in str(caught.value)
    assert "fix its definition in selectors.yml" in str(caught.value)


def test_a_yaml_term_with_an_unknown_method_is_refused() -> None:
    selectors = {"selectors": [{"name": "s", "definition": {"method": "bogus", "value": "x"}}]}

    with pytest.raises(UnknownMethodError, match="'bogus'"):
        select(
            manifest(PROJECT), SelectionRequest(selector="s"), SelectionContext(selectors=selectors)
        )


# --- set algebra, as properties -------------------------------------------------

TERMS = (
    "customers",
    "orders",
    "stg_orders",
    "stg_payments",
    "raw_orders",
    "+customers",
    "stg_orders+",
    "1+orders",
    "@stg_customers",
    "tag:nightly",
    "resource_type:seed",
    "resource_type:test",
    "test_name:unique",
    "test_name:relationships",
    "config.materialized:view",
    "path:models/staging",
    "path:seeds",
    "file:schema.yml",
    "stg_*",
    "*",
)
terms = st.sampled_from(TERMS)


@settings(max_examples=60, deadline=None)
@given(terms, terms, st.sampled_from(("eager", "cautious", "buildable", "empty")))
def test_a_union_holds_both_sides(left: str, right: str, mode: str) -> None:
    both = ids(f"{left} {right}", indirect_selection=mode)
    sides = ids(left, indirect_selection=mode) | ids(right, indirect_selection=mode)

    # cautious and buildable may admit a test whose parents each side holds one of
    assert both == sides if mode in ("eager", "empty") else both >= sides


@settings(max_examples=60, deadline=None)
@given(terms, terms)
def test_eager_intersection_and_exclusion_are_set_algebra(left: str, right: str) -> None:
    assert ids(f"{left},{right}") == ids(left) & ids(right)
    assert ids(left, exclude=(right,)) == ids(left) - ids(right)


@settings(max_examples=40, deadline=None)
@given(terms, st.sampled_from(("model", "seed", "test", "source")))
def test_the_resource_type_flag_filters_the_result(term: str, kind: str) -> None:
    everything = ids(term)

    assert ids(term, resource_types=(kind,)) == {
        uid for uid in everything if uid.startswith(f"{kind}.")
    }


# --- path globbing on a file listing -------------------------------------------

LISTING = file_tree(
    [
        "dbt_project.yml",
        "models/staging/stg_a.sql",
        "models/staging/_schema.yml",
        "models/marts/orders.sql",
        "models/.hidden.sql",
        "seeds/empty_dir/",
        "seeds/raw.csv",
    ]
)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("models", {"models"}),
        ("models/", {"models"}),
        ("./models//staging", {"models/staging"}),
        ("models/*", {"models/staging", "models/marts", "models/.hidden.sql"}),
        ("models/*/", {"models/staging", "models/marts"}),
        ("models/[s]*/*.sql", {"models/staging/stg_a.sql"}),
        ("models/st?ging", {"models/staging"}),
        ("**", {".", "models", "models/staging", "models/marts", "seeds", "seeds/empty_dir"}),
        ("**/*.sql", {"models/staging/stg_a.sql", "models/marts/orders.sql", "models/.hidden.sql"}),
        ("seeds/empty_dir/", {"seeds/empty_dir"}),
        ("dbt_project.yml/", set()),
        ("Models", set()),
    ],
)
def test_path_globs_like_pathlib_on_python_3_11(pattern: str, expected: set[str]) -> None:
    assert glob(LISTING, f"path:{pattern}", pattern) == expected
