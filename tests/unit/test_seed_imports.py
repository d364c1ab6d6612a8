"""Every import line of the seed documents works with ``prefect_dbt`` read as
``prefect_dbt_orchestrator``, for the names this library has so far.

The lines are read from ``../shared/seeds`` (beside ``../shared/corpus``),
not copied here, so a seed example this library cannot import fails.
"""

from __future__ import annotations

import ast
import re

import pytest

from tests.corpus import corpus_dir

# Names the seeds import that later issues bring (caching, dbt Cloud) or that
# belong to the seeds' older internal API (000's ManifestParser, DbtNode).
NOT_YET = frozenset(
    {
        "CacheConfig",
        "DbtCloudCredentials",
        "DbtCloudExecutor",
        "DbtNode",
        "ManifestParser",
        "create_freshness_aware_cache_policy",
    }
)
_IMPORT = re.compile(r"^[ \t]*from (prefect_dbt[\w.]*) import (\([^)]*\)|[^\n]*)", re.MULTILINE)
_NOT_YET_MODULES = ("prefect_dbt.cloud", "prefect_dbt.core.cache", "prefect_dbt.core.manifest")


def _seed_imports() -> list[tuple[str, tuple[str, ...]]]:
    found: set[tuple[str, tuple[str, ...]]] = set()
    for seed in sorted((corpus_dir().parent / "seeds").glob("*.txt")):
        for module, names in _IMPORT.findall(seed.read_text(encoding="utf-8")):
            statement = ast.parse(f"from {module} import {names.split('#')[0]}").body[0]
            assert isinstance(statement, ast.ImportFrom)
            found.add((module, tuple(alias.name for alias in statement.names)))
    return sorted(found)


SEED_IMPORTS = _seed_imports()
# The lines with at least one name this library has today.
AVAILABLE = [
    (module, names)
    for module, names in SEED_IMPORTS
    if not module.startswith(_NOT_YET_MODULES) and not set(names) <= NOT_YET
]


def test_the_seeds_hold_the_import_lines_users_copy() -> None:
    modules = {module for module, _ in SEED_IMPORTS}

    assert {
        "prefect_dbt",
        "prefect_dbt.core._orchestrator",
        "prefect_dbt.core._executor",
    } <= modules
    assert len(SEED_IMPORTS) >= 10


@pytest.mark.parametrize(("module", "names"), AVAILABLE, ids=[m for m, _ in AVAILABLE])
def test_a_seed_import_line_works_under_the_new_name(module: str, names: tuple[str, ...]) -> None:
    wanted = [name for name in names if name not in NOT_YET]
    target = module.replace("prefect_dbt", "prefect_dbt_orchestrator", 1)
    namespace: dict[str, object] = {}

    exec(f"from {target} import {', '.join(wanted)}", namespace)  # noqa: S102

    assert all(namespace[name] is not None for name in wanted)
