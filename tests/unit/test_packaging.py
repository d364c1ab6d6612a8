"""One import name: every public name imports from ``prefect_dbt_orchestrator``,
every package folder is published under it, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import prefect_dbt_orchestrator

REPO = Path(__file__).resolve().parents[2]
# The names the seed documents and the issues promise at the top level.
PROMISED = (
    "BuildPlan",
    "DbtBuildFailed",
    "DbtCoreExecutor",
    "DbtExecutor",
    "ExecutionMode",
    "PrefectDbtOrchestrator",
    "PrefectDbtSettings",
    "TestStrategy",
)


def _published_packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"prefect_dbt_orchestrator": "src"}
    return list(setuptools["packages"])


def test_every_package_folder_under_src_is_published_under_the_one_import_name() -> None:
    folders = sorted(
        ".".join(("prefect_dbt_orchestrator", *init.parent.relative_to(REPO / "src").parts))
        for init in (REPO / "src").rglob("__init__.py")
    )

    assert sorted(_published_packages()) == folders


def test_nothing_is_published_as_a_generic_top_level_package() -> None:
    tops = {name.split(".")[0] for name in _published_packages()}

    assert tops == {"prefect_dbt_orchestrator"}


@pytest.mark.parametrize("name", PROMISED)
def test_each_promised_name_imports_from_the_top_level(name: str) -> None:
    assert name in prefect_dbt_orchestrator.__all__
    assert getattr(prefect_dbt_orchestrator, name).__name__ == name


def test_the_top_level_names_are_the_ones_the_subpackages_define() -> None:
    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator
    from prefect_dbt_orchestrator.domain.placement import TestStrategy

    assert prefect_dbt_orchestrator.PrefectDbtOrchestrator is PrefectDbtOrchestrator
    assert prefect_dbt_orchestrator.TestStrategy is TestStrategy


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        prefect_dbt_orchestrator.NoSuchThing  # noqa: B018


def _loaded_after(statement: str) -> set[str]:
    probe = (
        f"{statement}\nimport sys\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "print(' '.join(m for m in sys.modules if m.startswith('prefect.server')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    tops, server = (done.stdout + "\n").splitlines()[:2]
    return set(tops.split()) | ({"prefect.server"} if server.strip() else set())


def test_importing_the_package_loads_neither_dbt_nor_prefect() -> None:
    loaded = _loaded_after("import prefect_dbt_orchestrator")

    assert "prefect_dbt_orchestrator" in loaded
    assert not loaded & {"dbt", "dbt_common", "prefect", "httpx", "duckdb"}


def test_importing_the_orchestrator_loads_prefect_but_not_dbt_or_prefects_server() -> None:
    loaded = _loaded_after("from prefect_dbt_orchestrator import PrefectDbtOrchestrator")

    assert "prefect" in loaded
    assert not loaded & {"dbt", "dbt_common", "duckdb", "prefect.server"}
