"""``plan_selection``: one pure step from a selection request to a BuildPlan; dbt's
"does not match any enabled nodes" warnings; the state error; one table list."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest

from prefect_dbt_orchestrator.adapters.cli._ls_format import resources
from prefect_dbt_orchestrator.domain.build_plan import plan_selection
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import MANIFEST_TABLES, Manifest
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionRequest,
    StateRequiredError,
    no_match_warning,
    select,
)
from prefect_dbt_orchestrator.domain.selection.index import Table, build_index
from tests.corpus import PROJECTS, jsonl, manifest, raw_manifest, root_project_files
from tests.unit.builders import manifest_of, model, seed, test, uid
from tests.unit.test_selection_parity import request_of


def _context(project: str) -> SelectionContext:
    return SelectionContext(root_project_files=frozenset(root_project_files(project)))


def _some_cases() -> list[Any]:
    return [
        pytest.param(project, case, id=f"{project}/{case['id']}")
        for project in PROJECTS
        for case in list(jsonl(project, "selectors.jsonl"))[::9]
    ]


# --- one planning function ----------------------------------------------------------


@pytest.mark.parametrize(("project", "case"), _some_cases())
def test_plan_selection_equals_selecting_then_planning_on_the_corpus(
    project: str, case: dict[str, Any]
) -> None:
    request, context = request_of(case), _context(project)
    graph = build_graph(manifest(project))
    selection = select(manifest(project), request, context)
    expected = plan_build(graph, selection.unique_ids, TestStrategy.DEFERRED)

    build_plan = plan_selection(manifest(project), request, context, TestStrategy.DEFERRED)

    assert build_plan.plan == expected
    assert build_plan.selected == selection.unique_ids == frozenset(case["expected"])
    assert dict(build_plan.reasons) == {uid: selection.reasons[uid] for uid in expected.nodes}
    assert dict(build_plan.nodes) == {uid: graph.members[uid] for uid in expected.nodes}


def test_the_build_plan_carries_every_planned_node_so_drivers_need_no_graph() -> None:
    built = manifest_of(seed("raw"), model("stg", "raw"), test("t", "stg"))

    build_plan = plan_selection(built, SelectionRequest(select=("+stg",)))

    planned = {uid("raw", "seed"), uid("stg"), uid("t", "test")}
    assert set(build_plan.nodes) == set(build_plan.plan.nodes) == planned
    assert build_plan.nodes[uid("stg")] == built.nodes[uid("stg")]
    assert build_plan.reasons[uid("raw", "seed")] == "+stg (ancestor of model.proj.stg)"


def test_selection_reuses_a_graph_it_is_given() -> None:
    built = manifest_of(model("a"), model("b"))
    only_a = build_graph(manifest_of(model("a")))

    assert select(built, SelectionRequest(), graph=only_a).unique_ids == {uid("a")}
    assert build_index(built, SelectionContext(), only_a).graph is only_a


@attrs.define
class _RecordingSelector:
    """A selection engine that answers with fixed ids and records its calls."""

    answer: Selection
    calls: list[tuple[Manifest, SelectionRequest, SelectionContext]] = attrs.Factory(list)

    def __call__(
        self, manifest: Manifest, request: SelectionRequest, context: SelectionContext
    ) -> Selection:
        self.calls.append((manifest, request, context))
        return self.answer


def test_another_selection_engine_answers_the_selection() -> None:
    built = manifest_of(seed("raw"), model("stg", "raw"))
    engine = _RecordingSelector(Selection(frozenset({uid("stg")}), {uid("stg"): "dbt ls"}))
    request, context = SelectionRequest(select=("raw",)), SelectionContext(selectors={})

    build_plan = plan_selection(built, request, context, selector=engine)

    assert engine.calls == [(built, request, context)]
    assert set(build_plan.plan.nodes) == {uid("stg")}
    assert build_plan.reasons == {uid("stg"): "dbt ls"}
    assert build_plan.warnings == ()


# --- dbt's "does not match any enabled nodes" warning ------------------------------


def _warnings(**flags: Any) -> tuple[str, ...]:
    built = manifest_of(seed("raw"), model("stg", "raw"), test("t", "stg"))
    return plan_selection(built, SelectionRequest(**flags)).warnings


def test_the_warning_is_worded_as_dbt_words_it() -> None:
    # dbt-core's NoNodesForSelectionCriteria (M030)
    expected = "The selection criterion 'nope' does not match any enabled nodes"
    assert no_match_warning("nope") == expected


def test_each_select_and_exclude_term_that_matches_nothing_warns_once_in_order() -> None:
    warnings = _warnings(select=("stg nope tag:none", "raw"), exclude=("gone",))

    assert warnings == tuple(no_match_warning(t) for t in ("nope", "tag:none", "gone"))


def test_an_intersection_warns_as_one_term_when_it_is_empty() -> None:
    assert _warnings(select=("stg,raw",)) == (no_match_warning("stg,raw"),)


def test_the_default_selection_and_matching_terms_do_not_warn() -> None:
    assert _warnings() == ()
    assert _warnings(select=("+stg",), exclude=("t",)) == ()


def test_a_term_the_resource_type_filter_empties_does_not_warn_like_dbt() -> None:
    # dbt checks each term before --resource-type filters the selection
    assert _warnings(select=("raw",), resource_types=("model",)) == ()


def test_yaml_selectors_do_not_warn_like_dbt() -> None:
    selectors = {"none": {"definition": "nope", "default": False}}
    built = attrs.evolve(manifest_of(model("a")), selectors=selectors)

    assert plan_selection(built, SelectionRequest(selector="none")).warnings == ()


def test_the_selection_lists_the_unmatched_terms_and_the_warnings() -> None:
    selection = select(manifest_of(model("a")), SelectionRequest(select=("a b",)))

    assert selection.unmatched == ("b",)
    assert selection.warnings == (no_match_warning("b"),)


# --- state: without a state directory ----------------------------------------------


@pytest.mark.parametrize("term", ["state:modified", "result:error", "source_status:fresher"])
def test_a_state_term_without_state_names_the_public_option(term: str) -> None:
    with pytest.raises(StateRequiredError) as caught:
        plan_selection(manifest_of(model("a")), SelectionRequest(select=(term,)))

    text = str(caught.value)
    assert f"cannot answer selector {term!r}" in text
    assert "PrefectDbtOrchestrator(state_path=Path(...))" in text
    assert "--state DIR" in text
    assert "SelectionContext" not in text
    assert isinstance(caught.value, ValueError)


def test_a_state_directory_without_the_file_is_named_in_the_message() -> None:
    context = SelectionContext(state_dir="/runs/prod")

    with pytest.raises(StateRequiredError, match="the state directory /runs/prod has none"):
        plan_selection(manifest_of(model("a")), SelectionRequest(select=("result:error",)), context)


def test_the_state_error_pickles_with_its_message() -> None:
    error = StateRequiredError("state:new", "a manifest", "pass --state DIR")

    copy = pickle.loads(pickle.dumps(error))

    assert copy == error and str(copy) == str(error)
    assert str(error) == "cannot answer selector 'state:new': it needs a manifest; pass --state DIR"


# --- one list of manifest tables ------------------------------------------------------


def test_every_manifest_table_is_a_manifest_field_and_a_selection_table() -> None:
    fields = {field.name for field in attrs.fields(Manifest)}

    assert set(MANIFEST_TABLES) <= fields
    assert [table.value for table in Table] == list(MANIFEST_TABLES)


def test_ls_reads_every_member_table_of_the_manifest_json() -> None:
    data = raw_manifest("jaffle_shop")
    listed = resources(data)

    assert set(listed) == set(manifest("jaffle_shop").all_resources())
    assert set(listed) == {uid for table in MANIFEST_TABLES for uid in data.get(table) or {}}
