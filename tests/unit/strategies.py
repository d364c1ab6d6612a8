"""Hypothesis strategies: random dbt projects, selections and outcomes.

Projects are drawn as builder dicts (``tests.unit.builders``) and go through
the real codec. They look like what ``dbt parse`` writes:

* seeds and sources are roots; models (some ephemeral, some disabled) and
  snapshots read from 0 to 3 earlier seeds, sources, models or snapshots;
* data tests read 1 to 3 of them (two or three parents make a
  relationships-style test), with severity ``ERROR``, ``error``, ``warn`` or
  ``WARN``;
* unit tests test one enabled, materialized model;
* exposures read models.

With ``semantic=True`` a semantic layer follows: semantic models on models,
metrics on semantic models or earlier metrics, saved queries on metrics,
more exposures on models, sources and metrics, and (what dbt cannot parse,
asked of the planner anyway) models reading an exposure or saved query.

As in dbt, nothing enabled reads a disabled model, and a test of a disabled
model is disabled itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, contract_status
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from tests.unit.builders import (
    exposure,
    manifest_of,
    metric,
    model,
    saved_query,
    seed,
    semantic_model,
    snapshot,
    source,
    test,
    unit_test,
)

SEVERITIES = ("ERROR", "error", "warn", "WARN")

# Success first: hypothesis shrinks towards the first element.
STATUSES = (
    DbtStatus.SUCCESS,
    DbtStatus.PASS,
    DbtStatus.WARN,
    DbtStatus.NO_OP,
    DbtStatus.ERROR,
    DbtStatus.FAIL,
    DbtStatus.RUNTIME_ERROR,
    DbtStatus.SKIPPED,
)

_ROOTS = ("seed", "source")
_KINDS = (
    "model",
    "model",
    "seed",
    "source",
    "ephemeral",
    "disabled",
    "snapshot",
    "test",
    "test",
    "unit_test",
    "exposure",
)


@attrs.frozen
class Project:
    """A drawn project: the builder dicts, their manifest and its graph."""

    nodes: tuple[dict[str, Any], ...]
    manifest: Manifest
    graph: DbtGraph

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.graph.members))


@attrs.frozen
class Scenario:
    """A project, what is selected, the test strategy and every node's outcome."""

    project: Project
    selected: tuple[str, ...]
    strategy: TestStrategy
    outcomes: Mapping[str, DbtStatus]

    @property
    def graph(self) -> DbtGraph:
        return self.project.graph


def result_of(unique_id: str, status: DbtStatus) -> NodeResult:
    """The result an executor reports for a node that ended with dbt's ``status``."""
    return NodeResult(unique_id, contract_status(status), status)


def _pick(draw: st.DrawFn, names: list[str], low: int, high: int) -> list[str]:
    if not names:
        return []
    return draw(st.lists(st.sampled_from(names), min_size=low, max_size=high, unique=True))


@st.composite
def project_nodes(
    draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 14
) -> tuple[dict[str, Any], ...]:
    """Builder dicts of a random acyclic project (parents always come earlier)."""
    count = draw(st.integers(min_nodes, max_nodes))
    nodes: list[dict[str, Any]] = []
    readable: list[str] = []  # enabled seeds, sources, models, snapshots
    materialized: list[str] = []  # enabled, non-ephemeral models (unit-testable)
    disabled: list[str] = []
    for index in range(count):
        name = f"n{index}"
        kind = draw(st.sampled_from(_KINDS if readable else _ROOTS))
        if kind == "seed":
            nodes.append(seed(name))
            readable.append(name)
        elif kind == "source":
            nodes.append(source("src", name))
            readable.append(name)
        elif kind in ("model", "ephemeral", "disabled"):
            parents = _pick(draw, readable, draw(st.sampled_from((1, 0))), 3)
            if kind == "disabled":
                nodes.append(model(name, *parents, enabled=False))
                disabled.append(name)
                continue
            flavour = (
                "ephemeral"
                if kind == "ephemeral"
                else draw(st.sampled_from(("table", "view", "incremental")))
            )
            nodes.append(model(name, *parents, materialized=flavour))
            readable.append(name)
            if kind == "model":
                materialized.append(name)
        elif kind == "snapshot":
            nodes.append(snapshot(name, *_pick(draw, readable, 1, 1)))
            readable.append(name)
        elif kind == "test":
            parents = _pick(draw, readable + disabled, 1, 3)
            node = test(name, *parents, severity=draw(st.sampled_from(SEVERITIES)))
            if set(parents) & set(disabled):
                node["config"]["enabled"] = False
            nodes.append(node)
        elif kind == "unit_test" and materialized:
            nodes.append(unit_test(name, draw(st.sampled_from(materialized))))
        elif kind == "exposure":
            nodes.append(exposure(name, *_pick(draw, readable, 1, 2)))
    return tuple(nodes)


_SEMANTIC_KINDS = (
    "semantic_model",
    "metric",
    "metric",
    "saved_query",
    "saved_query",
    "exposure",
    "exposure",
    "reader",
)


def _enabled(nodes: tuple[dict[str, Any], ...], *kinds: str) -> list[str]:
    return [
        n["name"] for n in nodes if n["resource_type"] in kinds and n["config"].get("enabled", True)
    ]


@st.composite
def semantic_layer(
    draw: st.DrawFn, base: tuple[dict[str, Any], ...], max_nodes: int = 8
) -> tuple[dict[str, Any], ...]:
    """``base`` with a random semantic layer on its enabled models (see the module doc)."""
    models = _enabled(base, "model")
    readable = _enabled(base, "model", "seed", "source", "snapshot")
    if not models:
        return base
    semantic: list[str] = []
    metrics: list[str] = []
    no_ops: list[str] = []
    added: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, max_nodes))):
        name, kind = f"s{index}", draw(st.sampled_from(_SEMANTIC_KINDS))
        if kind == "semantic_model" or not semantic:
            added.append(semantic_model(name, draw(st.sampled_from(models))))
            semantic.append(name)
        elif kind == "metric":
            added.append(metric(name, *_pick(draw, semantic + metrics, 1, 2)))
            metrics.append(name)
        elif kind == "saved_query" and metrics:
            added.append(saved_query(name, *_pick(draw, metrics, 1, 3)))
            no_ops.append(name)
        elif kind == "exposure":
            added.append(exposure(name, *_pick(draw, readable + metrics, 1, 3)))
            no_ops.append(name)
        elif kind == "reader" and no_ops:
            parents = [draw(st.sampled_from(no_ops)), *_pick(draw, readable, 0, 1)]
            added.append(model(name, *parents))
    return base + tuple(added)


@st.composite
def projects(
    draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 14, semantic: bool = False
) -> Project:
    """A random project, structured by the real codec."""
    nodes = draw(project_nodes(min_nodes, max_nodes))
    if semantic:
        nodes = draw(semantic_layer(nodes))
    manifest = manifest_of(*nodes)
    return Project(nodes, manifest, build_graph(manifest))


def selections(project: Project) -> st.SearchStrategy[tuple[str, ...]]:
    """Everything, or any subset of the enabled members (in any order)."""
    ids = project.member_ids
    if not ids:
        return st.just(())
    subsets = st.lists(st.sampled_from(ids), unique=True).map(tuple)
    return st.one_of(st.just(ids), subsets)


def outcomes_for(ids: tuple[str, ...]) -> st.SearchStrategy[dict[str, DbtStatus]]:
    """dbt's status for every id: success, pass, warn, no-op, error, fail, runtime error,
    skipped."""
    return st.fixed_dictionaries({uid: st.sampled_from(STATUSES) for uid in ids})


strategy_choices = st.sampled_from(tuple(TestStrategy))


@st.composite
def scenarios(
    draw: st.DrawFn,
    min_nodes: int = 1,
    max_nodes: int = 14,
    strategy: TestStrategy | None = None,
    semantic: bool = False,
) -> Scenario:
    """A project, a selection of it, a test strategy and an outcome for each member."""
    project = draw(projects(min_nodes, max_nodes, semantic))
    selected = draw(selections(project))
    chosen = strategy if strategy is not None else draw(strategy_choices)
    outcomes = draw(outcomes_for(project.member_ids))
    return Scenario(project, selected, chosen, outcomes)
