"""The usage examples of the seed document (shared/seeds/000_44719b237b393bc1.txt),
run for real on copies of the demo project.

Examples 1, 2, 3, 6, 7, 8, 10 and 11 are written as in the document, with
only these changes, each marked where it is made:

* ``from prefect_dbt_orchestrator import ...`` instead of ``from prefect_dbt import ...``;
* type annotations, for ``mypy --strict``; ``Path`` is imported once here
  (examples 6, 7, 8 and 10 use it without importing it);
* example 2 without its caching options (enable_caching, result_storage,
  cache_key_storage), which this library does not have;
* example 7's model names adapted to the demo's;
* example 10 takes ``raise_on_failure`` (default True, as documented) so the
  flow's own failure handling can be reached.

Each test runs in ``tmp_path`` (the current directory), which holds the demo
copy at ``./analytics`` (``./my_dbt_project`` for example 1) and its
profiles.yml at ``./profiles``, so the examples' relative paths work as
written. The demo's profile reads its DuckDB path from ``DEMO_DUCKDB_PATH``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectNotFound

from prefect_dbt_orchestrator import (  # changed: was `from prefect_dbt import (...)`
    DbtBuildFailed,
    ExecutionMode,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
    TestStrategy,
)
from tests.integration.conftest import (
    DEMO_DIR,
    DEMO_NODE_COUNT,
    PlainDbt,
    contract_statuses,
    copy_project,
)
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration

Results = dict[str, dict[str, Any]]
WAREHOUSE_LIMIT = "dbt-warehouse"  # the global concurrency limit examples 2 and 11 name


# ---------------------------------------------------------------- Example 1


@flow
def run_dbt_build() -> Results:
    settings = PrefectDbtSettings(
        project_dir=Path("./my_dbt_project"),
        profiles_dir=Path("./my_dbt_project"),  # changed: was ~/.dbt; the demo ships its own
    )

    orchestrator = PrefectDbtOrchestrator(settings=settings)
    results = orchestrator.run_build()

    success = sum(1 for r in results.values() if r["status"] == "success")
    failed = sum(1 for r in results.values() if r["status"] == "error")
    print(f"Completed: {success} succeeded, {failed} failed")

    return results


# ---------------------------------------------------------------- Example 2


@flow
def run_production_dbt() -> Results:
    settings = PrefectDbtSettings(
        project_dir=Path("./analytics"),
        profiles_dir=Path("./profiles"),
    )

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        concurrency_limit_name="dbt-warehouse",
        threads=2,
        # changed: enable_caching, result_storage and cache_key_storage left out
        retries=3,
        retry_delay_seconds=60,
        test_strategy=TestStrategy.IMMEDIATE,
    )

    return orchestrator.run_build()


# ---------------------------------------------------------------- Example 3


@flow
def run_ci_incremental() -> Results:
    settings = PrefectDbtSettings(
        project_dir=Path("./analytics"),
        profiles_dir=Path("./profiles"),
    )

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        state_path=Path("./prod_artifacts"),
        defer=True,
        execution_mode=ExecutionMode.PER_WAVE,
    )

    return orchestrator.run_build(select="state:modified+")


# ---------------------------------------------------------------- Example 6


@flow
def run_with_deferred_tests() -> Results:
    """Run all models first, then all tests in a separate phase."""
    settings = PrefectDbtSettings(project_dir=Path("./analytics"))

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        test_strategy=TestStrategy.DEFERRED,  # Tests run after all models
    )

    results = orchestrator.run_build()
    return results


@flow
def run_models_only() -> Results:
    """Run models without any tests (useful for dev iterations)."""
    settings = PrefectDbtSettings(project_dir=Path("./analytics"))

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        test_strategy=TestStrategy.SKIP,  # No tests
    )

    results = orchestrator.run_build()
    return results


# ---------------------------------------------------------------- Example 7


@flow
def run_selective() -> Results:
    settings = PrefectDbtSettings(project_dir=Path("./analytics"))
    orchestrator = PrefectDbtOrchestrator(settings=settings)

    # Run only mart models
    results = orchestrator.run_build(select="marts")

    # Run staging models and everything downstream
    results = orchestrator.run_build(select="staging+")

    # Run everything upstream of a specific model (inclusive)
    # changed: the demo's mart_station_daily stands in for company_summary
    results = orchestrator.run_build(select="+mart_station_daily")

    # Run models matching a pattern
    results = orchestrator.run_build(select="stg_*")

    # Run models with a specific tag
    results = orchestrator.run_build(select="tag:daily")

    # Exclude specific models
    # changed: the demo has no stg_legacy_* models; stg_ride* matches stg_rides
    results = orchestrator.run_build(exclude="stg_ride*")

    # Full refresh incremental models
    results = orchestrator.run_build(full_refresh=True)

    return results


# ---------------------------------------------------------------- Example 8


@flow
def run_fast() -> Results:
    """Lower overhead mode - one dbt invocation per wave instead of per node.

    Trade-offs:
    - Faster execution (fewer dbt process startups)
    - No per-node retries (entire wave retries on failure)
    - No per-node caching (wave-level only)
    - Useful for CI or when nodes rarely fail
    """
    settings = PrefectDbtSettings(project_dir=Path("./analytics"))

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        execution_mode=ExecutionMode.PER_WAVE,
    )

    results = orchestrator.run_build()
    return results


# ---------------------------------------------------------------- Example 10


@flow
def run_and_report(raise_on_failure: bool = True) -> Results:  # changed: raise_on_failure
    logger = get_run_logger()
    settings = PrefectDbtSettings(project_dir=Path("./analytics"))
    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        raise_on_failure=raise_on_failure,  # changed: passed through
    )

    results = orchestrator.run_build()

    # Categorize results
    succeeded = [k for k, v in results.items() if v["status"] == "success"]
    failed = [k for k, v in results.items() if v["status"] == "error"]
    skipped = [k for k, v in results.items() if v["status"] == "skipped"]

    logger.info(f"Succeeded ({len(succeeded)}): {succeeded}")
    logger.info(f"Skipped ({len(skipped)}): {skipped}")

    if failed:
        logger.error(f"Failed ({len(failed)}): {failed}")
        for node_id in failed:
            error = results[node_id].get("error", "Unknown error")
            logger.error(f"  {node_id}: {error}")

        # Optionally raise to mark flow as failed
        raise RuntimeError(f"{len(failed)} nodes failed")

    return results


# ---------------------------------------------------------------- Example 11


@flow(name="dbt-orchestrated-build")
def run_dbt(
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    test_strategy: str = "immediate",
    execution_mode: str = "per_node",
    concurrency_limit: str | None = "dbt-warehouse",
    state_path: str | None = None,
    defer: bool = False,
) -> dict[str, int]:
    """Parameterized dbt build flow for deployment.

    Deploy with:
        prefect deploy run_dbt.py:run_dbt -n dbt-build

    Trigger with:
        prefect deployment run dbt-orchestrated-build/dbt-build \
            --param select="marts" \
            --param full_refresh=true
    """
    settings = PrefectDbtSettings(
        project_dir=Path("./analytics"),
        profiles_dir=Path("./profiles"),
    )

    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        concurrency_limit_name=concurrency_limit,
        test_strategy=test_strategy,
        execution_mode=execution_mode,
        state_path=Path(state_path) if state_path else None,
        defer=defer,
    )

    results = orchestrator.run_build(
        select=select,
        exclude=exclude,
        full_refresh=full_refresh,
    )

    # Return summary for visibility in UI
    return {
        "total": len(results),
        "succeeded": sum(1 for r in results.values() if r["status"] == "success"),
        "failed": sum(1 for r in results.values() if r["status"] == "error"),
        "skipped": sum(1 for r in results.values() if r["status"] == "skipped"),
    }


# ================================================================ the tests


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current directory, with ``./analytics`` (a demo copy),
    ``./profiles`` (its profiles.yml) and the database at ``./db/demo.duckdb``."""
    copy_project(DEMO_DIR, tmp_path / "analytics")
    (tmp_path / "profiles").mkdir()
    shutil.copy(DEMO_DIR / "profiles.yml", tmp_path / "profiles" / "profiles.yml")
    use_fresh_database(tmp_path / "db", monkeypatch)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def use_fresh_database(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the demo's profile at a new, empty database file (always named
    ``demo.duckdb``: DuckDB names the catalog after the file)."""
    folder.mkdir(parents=True)
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(folder / "demo.duckdb"))


def set_demo_var(project: Path, fail_model: bool) -> None:
    dbt_project = project / "dbt_project.yml"
    text = dbt_project.read_text(encoding="utf-8")
    assert "fail_model: false" in text
    dbt_project.write_text(text.replace("fail_model: false", f"fail_model: {fail_model}".lower()))


@flow
def build_everything(project: Path, profiles: Path) -> Results:
    """Setup: a full build, so a database already holds what examples select from."""
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=profiles)
    return PrefectDbtOrchestrator(settings=settings).run_build()


@pytest.fixture(scope="module")
def warehouse_limit() -> str:
    """The ``dbt-warehouse`` global concurrency limit production would have (4 slots)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=WAREHOUSE_LIMIT, limit=4)
            )
    return WAREHOUSE_LIMIT


def all_success(results: Results) -> bool:
    return set(contract_statuses(results).values()) == {"success"}


def test_example_1_basic_per_node_orchestration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_project(DEMO_DIR, tmp_path / "my_dbt_project")
    use_fresh_database(tmp_path / "db", monkeypatch)
    monkeypatch.chdir(tmp_path)

    results = run_dbt_build()

    assert len(results) == DEMO_NODE_COUNT and all_success(results)
    assert f"Completed: {DEMO_NODE_COUNT} succeeded, 0 failed" in capsys.readouterr().out


def test_example_2_production_setup_with_concurrency_and_retries(
    workdir: Path, warehouse_limit: str
) -> None:
    results = run_production_dbt()

    assert len(results) == DEMO_NODE_COUNT and all_success(results)
    assert all("retries" not in r for r in results.values())
    # threads=2 reached dbt: every wave ran with --threads 2.
    assert all(r["invocation"]["args"][-2:] == ["--threads", "2"] for r in results.values())


CHANGED_MART = {
    "model.demo.mart_bike_usage",
    "test.demo.unique_mart_bike_usage_bike_id.344ba5ac73",
}


def production_state(folder: Path) -> None:
    """Setup for example 3: a production build, its manifest.json copied to ``folder``."""
    analytics = Path("analytics")
    assert all_success(build_everything(analytics, Path("profiles")))
    folder.mkdir()
    shutil.copy(analytics / "target" / "manifest.json", folder / "manifest.json")


def change_a_mart() -> None:
    model = Path("analytics/models/marts/mart_bike_usage.sql")
    model.write_text(model.read_text(encoding="utf-8") + "\n-- changed in CI\n", encoding="utf-8")


def test_example_3_ci_build_selects_only_what_changed_since_the_state(
    workdir: Path, plain_dbt: PlainDbt
) -> None:
    # ./prod_artifacts, where the example points (relative to the current
    # directory). Once dbt looked for it relative to the project dir instead
    # (./analytics/prod_artifacts) and the build failed: 'Could not find
    # manifest in --state path: "prod_artifacts"'.
    production_state(Path("prod_artifacts"))

    assert run_ci_incremental() == {}, "nothing changed since the state"

    change_a_mart()
    results = run_ci_incremental()

    expected = plain_dbt.ls(
        Path("analytics").resolve(),
        "--select", "state:modified+", "--state", str(Path("prod_artifacts").resolve()),
        profiles_dir=Path("profiles").resolve(),
    )  # fmt: skip
    assert set(results) == expected == CHANGED_MART
    assert all_success(results)


def test_example_6_deferred_tests_then_models_only(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deferred = run_with_deferred_tests()
    assert len(deferred) == DEMO_NODE_COUNT and all_success(deferred)
    manifest = json.loads(Path("analytics/target/manifest.json").read_text(encoding="utf-8"))
    assert manifest["metadata"]["project_name"] == "demo"

    use_fresh_database(workdir / "db2", monkeypatch)
    models_only = run_models_only()
    assert all_success(models_only)
    assert len(models_only) == 11  # 3 seeds, 7 models, 1 snapshot
    assert not any(uid.startswith(("test.", "unit_test.")) for uid in models_only)


def test_example_7_selective_execution(workdir: Path) -> None:
    # The example starts with the marts: their parents must exist already.
    assert all_success(build_everything(Path("analytics"), Path("analytics")))

    results = run_selective()

    # The last call is the full refresh of everything.
    assert len(results) == DEMO_NODE_COUNT and all_success(results)


def test_example_8_per_wave_execution(workdir: Path) -> None:
    results = run_fast()

    assert len(results) == DEMO_NODE_COUNT and all_success(results)
    waves = {tuple(r["invocation"]["args"]) for r in results.values()}
    assert len(waves) < DEMO_NODE_COUNT, "nodes of a wave share one dbt invocation"


def test_example_10_reports_results_and_raises_when_nodes_fail(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = run_and_report()
    assert len(healthy) == DEMO_NODE_COUNT and all_success(healthy)

    # fct_rides fails (the demo's fail_model var, set in the copy's dbt_project.yml).
    set_demo_var(Path("analytics"), fail_model=True)

    # The flow's own handling (needs raise_on_failure=False to see the results):
    use_fresh_database(workdir / "db2", monkeypatch)
    with pytest.raises(RuntimeError, match=r"^1 nodes failed$") as caught:
        run_and_report(raise_on_failure=False)
    assert not isinstance(caught.value, DbtBuildFailed)

    # As documented (raise_on_failure=True): run_build itself raises first, with a
    # RuntimeError subclass that carries every result.
    use_fresh_database(workdir / "db3", monkeypatch)
    with pytest.raises(DbtBuildFailed) as failed:
        run_and_report()
    assert isinstance(failed.value, RuntimeError)
    assert failed.value.failed == (FAILING_MODEL,)
    skipped = {uid for uid, r in failed.value.results.items() if r["status"] == "skipped"}
    assert skipped == SKIPPED_WHEN_FCT_RIDES_FAILS


def test_example_11_parameterized_flow_for_deployment(workdir: Path, warehouse_limit: str) -> None:
    summary = run_dbt()

    assert summary == {
        "total": DEMO_NODE_COUNT,
        "succeeded": DEMO_NODE_COUNT,
        "failed": 0,
        "skipped": 0,
    }
