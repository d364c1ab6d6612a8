"""The dbt Core executor runs exactly the node asked for, however tricky its name.

The ``tricky`` project has a model named like the project, a versioned model,
tests that share a YAML file, a seed and a model that share a name across
packages, and a local package (installed by the executor's ``dbt deps``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject
from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.commands import InvocationOptions, exact_selector
from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph, topological_order
from prefect_dbt_orchestrator.domain.manifest import Manifest, ResourceType
from prefect_dbt_orchestrator.domain.outcomes import NodeStatus
from prefect_dbt_orchestrator.domain.selection import SelectionRequest, select

PROJECT = Path(__file__).parent / "projects" / "tricky"
OPTIONS = InvocationOptions()

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("tricky") / "tricky"
    shutil.copytree(PROJECT, root)
    patch = pytest.MonkeyPatch()
    patch.setenv("TRICKY_DUCKDB_PATH", str(root / "tricky.duckdb"))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def parsed(tricky: Path) -> tuple[DbtCoreExecutor, Manifest, DbtGraph]:
    executor = DbtCoreExecutor(DbtProject(tricky, tricky))
    manifest = executor.load_manifest()
    return executor, manifest, build_graph(manifest)


def _relations(database: Path) -> set[tuple[str, str]]:
    if not database.exists():
        return set()
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    return {(str(schema), str(name)) for schema, name in rows}


def test_the_tricky_project_has_the_names_that_trip_selectors(
    parsed: tuple[DbtCoreExecutor, Manifest, DbtGraph],
) -> None:
    _, manifest, graph = parsed
    ids = set(graph.executable_ids())
    assert {"model.tricky.tricky", "model.tricky.orders.v1", "model.tricky.orders.v2"} <= ids
    assert {"seed.tricky.customers", "model.helpers.customers", "seed.helpers.tricky"} <= ids
    shared_yaml = [n for n in graph.members.values() if n.original_file_path == "models/schema.yml"]
    assert len(shared_yaml) >= 5
    assert manifest.packages == {"tricky", "helpers"}


def test_each_node_runs_alone_and_builds_only_its_own_relation(
    tricky: Path, parsed: tuple[DbtCoreExecutor, Manifest, DbtGraph]
) -> None:
    executor, _, graph = parsed
    database = tricky / "tricky.duckdb"
    buildable = {
        uid: node
        for uid, node in graph.members.items()
        if node.resource_type in (ResourceType.SEED, ResourceType.MODEL) and not node.is_ephemeral
    }
    order, _ = topological_order(buildable, graph.parents)
    for uid in order:
        node = buildable[uid]
        before = _relations(database)
        executor.start_run([node], options=OPTIONS)
        try:
            result = executor.run_node(node, options=OPTIONS)
        finally:
            executor.finish_run()
        assert result.status is NodeStatus.SUCCESS, (uid, result.message)
        assert _relations(database) - before == {(str(node.schema), str(node.alias))}, uid


def _dbt_ls(tricky: Path, dbt_manifest: Any, selector: str) -> set[str]:
    from dbt.cli.main import dbtRunner

    args = [
        "ls",
        "--project-dir",
        str(tricky),
        "--profiles-dir",
        str(tricky),
        "--quiet",
        "--log-level-file",
        "none",
        "--select",
        selector,
        "--indirect-selection",
        "empty",
        "--resource-type",
        "all",
        "--output",
        "json",
        "--output-keys",
        "unique_id",
    ]
    outcome = dbtRunner(manifest=dbt_manifest).invoke(args)
    assert outcome.success, outcome.exception
    return {json.loads(line)["unique_id"] for line in outcome.result}


def test_each_nodes_exact_selector_picks_it_alone_in_dbt_ls_and_in_our_engine(
    tricky: Path, parsed: tuple[DbtCoreExecutor, Manifest, DbtGraph]
) -> None:
    from dbt.cli.main import dbtRunner

    _, manifest, graph = parsed
    args = [
        "parse",
        "--project-dir",
        str(tricky),
        "--profiles-dir",
        str(tricky),
        "--quiet",
        "--log-level-file",
        "none",
    ]
    dbt_manifest = dbtRunner().invoke(args).result
    for uid in sorted(graph.executable_ids()):
        selector = exact_selector(graph.members[uid], manifest.project_name)
        assert _dbt_ls(tricky, dbt_manifest, selector) == {uid}, selector
        request = SelectionRequest(
            select=selector, indirect_selection="empty", resource_types=("all",)
        )
        ours = select(manifest, request, selection_context(tricky))
        assert ours.unique_ids == {uid}, selector
