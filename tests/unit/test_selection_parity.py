"""The selector engine lists exactly what real ``dbt ls`` listed, case by case.

Every case of every ``selectors.jsonl`` in the corpus (real dbt-core 1.11
output over five public projects) is one test, named ``project/case_id``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionRequest,
    select,
)
from tests.corpus import PROJECTS, jsonl, manifest, root_project_files


def _cases() -> list[Any]:
    return [
        pytest.param(project, case, id=f"{project}/{case['id']}")
        for project in PROJECTS
        for case in jsonl(project, "selectors.jsonl")
    ]


@cache
def _context(project: str) -> SelectionContext:
    return SelectionContext(root_project_files=frozenset(root_project_files(project)))


def request_of(case: dict[str, Any]) -> SelectionRequest:
    """The flags of a corpus case; ``["default"]`` resource types means not passed."""
    resource_types = tuple(case["resource_types"])
    return SelectionRequest(
        select=() if case["select"] is None else (case["select"],),
        exclude=() if case["exclude"] is None else (case["exclude"],),
        resource_types=() if resource_types == ("default",) else resource_types,
        exclude_resource_types=tuple(case["exclude_resource_types"]),
        indirect_selection=case["indirect_selection"],
    )


def _run(project: str, case: dict[str, Any]) -> Selection:
    return select(manifest(project), request_of(case), _context(project))


def test_the_corpus_has_every_case() -> None:
    assert len(_cases()) == 247


@pytest.mark.parametrize(("project", "case"), _cases())
def test_selection_equals_dbt_ls(project: str, case: dict[str, Any]) -> None:
    selection = _run(project, case)

    assert selection.sorted_ids() == tuple(case["expected"])
    assert len(selection.unique_ids) == case["expected_count"]


@pytest.mark.parametrize(("project", "case"), _cases()[::12])
def test_every_selected_id_has_a_reason(project: str, case: dict[str, Any]) -> None:
    selection = _run(project, case)

    assert set(selection.reasons) == set(selection.unique_ids)
    assert all(reason for reason in selection.reasons.values())
