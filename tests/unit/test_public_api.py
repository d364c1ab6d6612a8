"""Each public package re-exports a sorted ``__all__`` of names that exist."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = (
    "prefect_dbt_orchestrator",
    "prefect_dbt_orchestrator.domain",
    "prefect_dbt_orchestrator.ports",
    "prefect_dbt_orchestrator.adapters.local",
    "prefect_dbt_orchestrator.adapters.dbt_core",
    "prefect_dbt_orchestrator.adapters.prefect",
    "prefect_dbt_orchestrator.domain.selection",
)


@pytest.mark.parametrize("name", PACKAGES)
def test_the_public_names_are_sorted_unique_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=str.lower) or exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_the_documented_import_path_has_every_name_the_seed_examples_use() -> None:
    module = importlib.import_module("prefect_dbt_orchestrator.adapters.prefect")
    for name in (
        "PrefectDbtOrchestrator",
        "PrefectDbtSettings",
        "ExecutionMode",
        "TestStrategy",
        "DbtBuildFailed",
    ):
        assert name in module.__all__


def test_the_readme_driver_example_runs_a_real_manifest_to_the_end() -> None:
    from pathlib import Path

    from tests.corpus import corpus_dir

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Drive the planner from another scheduler", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    manifest = corpus_dir() / "jaffle_shop_duckdb" / "manifest.json"
    code = code.replace('"target/manifest.json"', repr(str(manifest))).replace("print(", "(")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["schedule"].finished  # type: ignore[attr-defined]
