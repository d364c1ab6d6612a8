"""Cross-run caching on real dbt-duckdb and a real Prefect server.

A copy of the demo project, built twice or more into one DuckDB file, with a
cache directory of the test's own. An executor that counts what dbt ran
proves a hit runs nothing; ``plan()`` is asked first each time, and its
predictions must be what the build then does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect import flow

from prefect_dbt_orchestrator import (
    DbtCoreExecutor,
    ExecutionMode,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
)
from prefect_dbt_orchestrator.adapters.cli.main import main
from prefect_dbt_orchestrator.adapters.prefect._caching import CacheConfig
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.integration

MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
SEEDS = {f"seed.demo.raw_{n}" for n in ("bikes", "rides", "stations")}
STAGING = {f"model.demo.stg_{n}" for n in ("bikes", "rides", "stations")}
DIM = "model.demo.dim_stations"
FCT = "model.demo.fct_rides"  # incremental: never cached
MARTS = {"model.demo.mart_bike_usage", "model.demo.mart_station_daily"}  # read fct_rides
CACHEABLE = SEEDS | STAGING | {DIM}


class CountingExecutor(DbtCoreExecutor):
    """A real executor that records every node dbt was asked to run."""

    def __init__(self, settings: PrefectDbtSettings) -> None:
        super().__init__(settings)
        self.ran: list[str] = []
        self._ran_lock = threading.Lock()

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        with self._ran_lock:
            self.ran.append(node.unique_id)
        return super().run_node(node, options=options)

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        with self._ran_lock:
            self.ran.extend(n.unique_id for n in nodes)
        return super().run_wave(nodes, options=options, around_node=around_node)


class Builds:
    """Builds of one project copy, sharing one cache directory."""

    def __init__(
        self,
        project: Path,
        cache_dir: Path,
        mode: ExecutionMode,
        expiration: timedelta | None = None,
    ) -> None:
        self.project, self.cache_dir, self.mode = project, cache_dir, mode
        self.expiration = expiration
        self.executor: CountingExecutor | None = None

    def orchestrator(self) -> PrefectDbtOrchestrator:
        settings = PrefectDbtSettings(project_dir=self.project, profiles_dir=self.project)
        self.executor = CountingExecutor(settings)
        cache = CacheConfig(key_storage=self.cache_dir, expiration=self.expiration)
        return PrefectDbtOrchestrator(
            settings=settings, executor=self.executor, execution_mode=self.mode,
            cache=cache, create_summary_artifact=False, raise_on_failure=False,
        )  # fmt: skip

    def build(self, **run: Any) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        """(predicted, reasons) from plan(), then the build's results."""
        orchestrator = self.orchestrator()
        planned = orchestrator.plan(**run)
        assert planned.cache_predictions is not None

        @flow(name="caching-test")
        def build() -> dict[str, Any]:
            return orchestrator.run_build(**run)

        results = build()
        return dict(planned.cache_predictions), dict(planned.cache_reasons), results

    @property
    def ran(self) -> set[str]:
        assert self.executor is not None
        return set(self.executor.ran)


def _cached(results: Mapping[str, Any]) -> set[str]:
    return {uid for uid, r in results.items() if r["status"] == "cached"}


def _hits(predicted: Mapping[str, str]) -> set[str]:
    return {uid for uid, kind in predicted.items() if kind == "hit"}


@pytest.fixture
def builds(demo_project: Path, tmp_path: Path) -> Callable[[ExecutionMode], Builds]:
    return lambda mode: Builds(demo_project, tmp_path / "cache", mode)


@MODES
def test_a_second_identical_build_serves_every_cacheable_node_and_runs_none_of_them(
    builds: Callable[[ExecutionMode], Builds], mode: ExecutionMode
) -> None:
    project = builds(mode)
    predicted, reasons, first = project.build()
    assert _hits(predicted) == set()
    assert {reasons[uid] for uid in CACHEABLE} == {"no previous run"}
    assert all(r["status"] == "success" for r in first.values())
    assert all(first[uid]["cache_key"] for uid in CACHEABLE)

    predicted, reasons, second = project.build()

    assert _hits(predicted) == CACHEABLE == _cached(second)
    assert project.ran.isdisjoint(CACHEABLE)  # dbt ran none of them
    assert FCT in project.ran and MARTS <= project.ran
    assert reasons[FCT] == "incremental models are not cached"
    assert {reasons[uid] for uid in MARTS} == {f"upstream {FCT} runs"}
    tests = {uid for uid in second if uid.startswith(("test.", "unit_test."))}
    assert tests and tests <= project.ran  # tests always run
    for uid in CACHEABLE:
        assert second[uid]["cache_key"] == first[uid]["cache_key"]
        assert second[uid]["cached_at"]


@MODES
def test_editing_a_models_sql_reruns_exactly_it_and_its_descendants(
    builds: Callable[[ExecutionMode], Builds], mode: ExecutionMode, demo_project: Path
) -> None:
    project = builds(mode)
    project.build()
    sql = demo_project / "models" / "staging" / "stg_stations.sql"
    sql.write_text(sql.read_text() + "\n-- edited\n")

    predicted, reasons, results = project.build()

    changed = {"model.demo.stg_stations", DIM}
    assert _cached(results) == _hits(predicted) == CACHEABLE - changed
    assert reasons["model.demo.stg_stations"] == "sql changed"
    assert reasons[DIM] == "upstream model.demo.stg_stations changed"
    assert changed <= project.ran
    assert results["model.demo.stg_stations"]["status"] == "success"


def test_editing_a_macro_a_model_calls_reruns_it(
    builds: Callable[[ExecutionMode], Builds], demo_project: Path
) -> None:
    macros = demo_project / "macros"
    macros.mkdir()
    (macros / "docks.sql").write_text("{% macro docks(c) %}{{ c }}{% endmacro %}\n")
    dim = demo_project / "models" / "marts" / "dim_stations.sql"
    dim.write_text(
        dim.read_text().replace("s.dock_count,", "{{ docks('s.dock_count') }} as dock_count,")
    )
    project = builds(ExecutionMode.PER_NODE)
    project.build()
    (macros / "docks.sql").write_text("{% macro docks(c) %}({{ c }} + 0){% endmacro %}\n")

    predicted, reasons, results = project.build()

    assert reasons[DIM] == "macros changed"
    assert _cached(results) == _hits(predicted) == CACHEABLE - {DIM}
    assert DIM in project.ran


def test_changing_a_var_a_model_reads_reruns_it_and_others_stay_cached(
    builds: Callable[[ExecutionMode], Builds], demo_project: Path
) -> None:
    dim = demo_project / "models" / "marts" / "dim_stations.sql"
    dim.write_text(
        dim.read_text().replace("s.district,", "s.district, {{ var('tier', 1) }} as tier,")
    )
    project = builds(ExecutionMode.PER_WAVE)
    project.build(extra_cli_args=["--vars", "{tier: 1, unrelated: 1}"])

    _, _, unrelated = project.build(extra_cli_args=["--vars", "{tier: 1, unrelated: 2}"])
    predicted, reasons, results = project.build(
        extra_cli_args=["--vars", "{tier: 2, unrelated: 2}"]
    )

    assert _cached(unrelated) == CACHEABLE  # a var nothing reads changes nothing
    assert reasons[DIM] == "vars changed"
    assert _cached(results) == _hits(predicted) == CACHEABLE - {DIM}


@MODES
def test_a_dropped_table_is_rebuilt_with_the_reason_relation_missing(
    builds: Callable[[ExecutionMode], Builds], mode: ExecutionMode, tmp_path: Path
) -> None:
    project = builds(mode)
    project.build()
    with duckdb.connect(str(tmp_path / "demo.duckdb")) as connection:
        connection.execute("drop table main.dim_stations")

    predicted, reasons, results = project.build()

    assert predicted[DIM] == "miss" and reasons[DIM] == "relation missing"
    assert results[DIM]["status"] == "success" and DIM in project.ran
    assert _cached(results) == _hits(predicted) == CACHEABLE - {DIM}
    with duckdb.connect(str(tmp_path / "demo.duckdb")) as connection:
        assert connection.execute("select count(*) from main.dim_stations").fetchone() != (0,)


def test_a_failed_node_writes_no_entry_and_its_old_entry_is_dropped(
    builds: Callable[[ExecutionMode], Builds], demo_project: Path
) -> None:
    project = builds(ExecutionMode.PER_NODE)
    project.build()
    dim = demo_project / "models" / "marts" / "dim_stations.sql"
    good = dim.read_text()
    dim.write_text(good.replace("s.district,", "s.no_such_column,"))
    _, _, failed = project.build()
    assert failed[DIM]["status"] == "error"
    dim.write_text(good)  # back to the key of the stored run: it must not be a hit

    predicted, reasons, results = project.build()

    assert predicted[DIM] == "miss" and reasons[DIM] == "no previous run"
    assert results[DIM]["status"] == "success"


def test_a_full_refresh_misses_every_cacheable_node(
    builds: Callable[[ExecutionMode], Builds],
) -> None:
    project = builds(ExecutionMode.PER_WAVE)
    project.build()

    predicted, reasons, results = project.build(full_refresh=True)

    assert _hits(predicted) == set() == _cached(results)
    assert {reasons[uid] for uid in SEEDS} == {"full_refresh changed"}


def test_an_expired_entry_misses_with_the_reason_expired(
    demo_project: Path, tmp_path: Path
) -> None:
    expiration = timedelta(microseconds=1)
    project = Builds(demo_project, tmp_path / "cache", ExecutionMode.PER_NODE, expiration)
    project.build()

    predicted, reasons, results = project.build()

    assert _hits(predicted) == set() == _cached(results)
    assert {reasons[uid] for uid in CACHEABLE} == {"expired"}


def test_the_cli_caches_with_cache_dir_and_plan_predicts_it(
    demo_project: Path, tmp_path: Path, prefect_api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "cli-cache", tmp_path / "results.json"
    common = ["--project-dir", str(demo_project), "--profiles-dir", str(demo_project)]
    database = tmp_path / "demo.duckdb"
    first = run_cli(*common, "--cache-dir", str(cache), api_url=prefect_api_url,
                    database=database, cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]

    assert main(["plan", *common, "--cache-dir", str(cache), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["nodes"]
    again = run_cli(*common, "--cache-dir", str(cache), "--results-json", str(out),
                    api_url=prefect_api_url, database=database, cwd=tmp_path)  # fmt: skip

    assert again.returncode == 0, again.stderr[-3000:]
    results = json.loads(out.read_text())
    assert _cached(results) == CACHEABLE
    assert {uid for uid, n in predicted.items() if n["cache"] == "hit"} == CACHEABLE
    assert predicted[FCT]["cache_reason"] == "incremental models are not cached"
