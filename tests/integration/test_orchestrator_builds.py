"""PrefectDbtOrchestrator against real dbt-duckdb and a real Prefect server.

Every build runs inside a ``@flow`` (``in_flow``), on a copy of a project
with a database of its own; plain ``dbt build`` on another copy is the
reference for what each node's status must be.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from prefect_dbt_orchestrator.adapters.prefect import (
    BlockedFlagError,
    DbtBuildFailed,
    DbtCoreExecutor,
    ExecutionMode,
    OptionsConflictError,
    PrefectDbtOrchestrator,
    PrefectDbtSettings,
    ProfileNotFoundError,
    ProjectNotFoundError,
    TestStrategy,
)
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.freshness import SourceLoad
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.ports.executor import CacheInputs, DbtExecutor
from tests.integration.conftest import (
    DEMO_NODE_COUNT,
    FLAKY_DOWNSTREAM,
    FLAKY_MODEL,
    FlakyProject,
    GenerateProject,
    PlainDbt,
    PlainDemoBuild,
    as_contract,
    contract_statuses,
)
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration

T = TypeVar("T")
FAIL_VARS = ("--vars", "{fail_model: true}")
TEST_TYPES = ("test.", "unit_test.")
UNIT_TEST = "unit_test.demo.mart_station_daily.test_station_daily_counts_completed_rides_only"
UNIT_TESTED_MODEL = "model.demo.mart_station_daily"
FCT_RIDES = "model.demo.fct_rides"  # refs the ephemeral int_rides_enriched
GENERATED_NODE_COUNT = 146  # 3 seeds + 47 non-ephemeral models + 96 tests
# Task-run tags cost about 0.3 s per node against the test server (tag concurrency
# limit checks), five times the rest of a PER_NODE demo build: tests that are not
# about tags turn them off. test_full_build_... keeps the default.
UNTAGGED: dict[str, Any] = {"task_tags": False}


def in_flow(call: Callable[[], T]) -> T:
    """Run ``call`` inside a Prefect flow run (what every test here does)."""

    @flow(name="orchestrator-integration", log_prints=False)
    def integration_flow() -> T:
        return call()

    return integration_flow()


def orchestrator_for(
    project: Path, profiles_dir: Path | None = None, **options: Any
) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=profiles_dir or project)
    return PrefectDbtOrchestrator(settings=settings, **options)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_test(unique_id: str) -> bool:
    return unique_id.startswith(TEST_TYPES)


class OverlapRecorder(DbtExecutor):
    """A real DbtCoreExecutor that also records how many ``run_node`` calls overlap.

    ``hold_seconds`` keeps each call open a little longer so that overlap, when
    allowed, is observable on a small machine.
    """

    def __init__(self, inner: DbtCoreExecutor, *, hold_seconds: float = 0.05) -> None:
        self._inner = inner
        self._hold = hold_seconds
        self._lock = threading.Lock()
        self._running = 0
        self.peak = 0
        self.calls = 0

    def load_manifest(
        self, *, target: str | None = None, extra_args: Sequence[str] = (), fresh: bool = False
    ) -> Manifest:
        return self._inner.load_manifest(target=target, extra_args=extra_args, fresh=fresh)

    def start_run(self, nodes: Sequence[Node], *, options: InvocationOptions) -> None:
        self._inner.start_run(nodes, options=options)

    def finish_run(self) -> None:
        self._inner.finish_run()

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        self._inner.cancel(unique_ids)

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        return self._inner.cache_inputs(nodes, options=options)

    def source_freshness(
        self, sources: Sequence[Node], *, options: InvocationOptions, record: bool
    ) -> Mapping[str, SourceLoad]:
        return self._inner.source_freshness(sources, options=options, record=record)

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        return self._inner.run_wave(nodes, options=options, around_node=around_node)

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        with self._lock:
            self._running += 1
            self.calls += 1
            self.peak = max(self.peak, self._running)
        try:
            time.sleep(self._hold)
            return self._inner.run_node(node, options=options)
        finally:
            with self._lock:
                self._running -= 1


# ---------------------------------------------------------------- 1, 2: like dbt build

MODES = pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])


@MODES
def test_full_build_gives_every_node_the_status_plain_dbt_build_gives(
    mode: ExecutionMode, demo_project: Path, plain_demo_build: PlainDemoBuild
) -> None:
    results = in_flow(lambda: orchestrator_for(demo_project, execution_mode=mode).run_build())

    expected = as_contract(plain_demo_build())
    assert len(results) == DEMO_NODE_COUNT
    assert contract_statuses(results) == expected
    assert set(expected.values()) == {"success"}
    assert all(r["dbt_status"] in ("success", "pass") for r in results.values())
    assert all("timing" in r and "invocation" in r for r in results.values())


@MODES
def test_a_failing_model_errors_and_skips_exactly_what_plain_dbt_build_skips(
    mode: ExecutionMode,
    demo_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plain_demo_build: PlainDemoBuild,
) -> None:
    orchestrator = orchestrator_for(
        demo_project, execution_mode=mode, raise_on_failure=False, **UNTAGGED
    )

    results = in_flow(lambda: orchestrator.run_build(extra_cli_args=list(FAIL_VARS)))

    assert contract_statuses(results) == as_contract(plain_demo_build(*FAIL_VARS))
    assert len(results) == DEMO_NODE_COUNT
    assert {uid for uid, r in results.items() if r["status"] == "error"} == {FAILING_MODEL}
    skipped = {uid for uid, r in results.items() if r["status"] == "skipped"}
    assert skipped == SKIPPED_WHEN_FCT_RIDES_FAILS
    for uid in skipped:
        assert results[uid]["failed_upstream"] == [FAILING_MODEL], uid
    assert "a_table_that_does_not_exist" in results[FAILING_MODEL]["error"]["message"]

    # raise_on_failure=True: the same build (on a fresh database) raises after
    # everything ran, and the error carries every node's result.
    (tmp_path / "raising").mkdir()
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "raising" / "demo.duckdb"))
    raising = orchestrator_for(demo_project, execution_mode=mode, **UNTAGGED)
    with pytest.raises(DbtBuildFailed) as caught:
        in_flow(lambda: raising.run_build(extra_cli_args=list(FAIL_VARS)))
    assert len(caught.value.results) == DEMO_NODE_COUNT
    assert contract_statuses(caught.value.results) == contract_statuses(results)
    assert caught.value.failed == (FAILING_MODEL,)


# ---------------------------------------------------------------- 3: retries


# dbt-duckdb runs a Python model after `asyncio.new_event_loop()` in any thread
# that has none (its _ensure_event_loop) and never closes that loop: PER_WAVE's
# worker threads then leave an unclosed loop and its socketpair to the garbage
# collector. Third-party and harmless; only those two unraisable warnings pass.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <(socket\.socket|function BaseEventLoop\.__del__)"
    ":pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize(
    ("mode", "retries"),
    [
        (ExecutionMode.PER_NODE, 1),
        (ExecutionMode.PER_NODE, 0),
        (ExecutionMode.PER_WAVE, 1),
        (ExecutionMode.PER_WAVE, 0),
    ],
)
def test_a_model_that_fails_once_succeeds_on_retry_and_fails_without(
    mode: ExecutionMode, retries: int, flaky_project: FlakyProject
) -> None:
    orchestrator = orchestrator_for(
        flaky_project.project_dir, execution_mode=mode, retries=retries,
        raise_on_failure=False, **UNTAGGED,
    )  # fmt: skip

    results = in_flow(orchestrator.run_build)

    assert flaky_project.marker.is_file(), "the flaky model never ran"
    flaky = results[FLAKY_MODEL]
    if retries:
        assert flaky["status"] == "success", flaky
        assert flaky["retries"] == 1
        assert results[FLAKY_DOWNSTREAM]["status"] == "success"
        assert set(contract_statuses(results).values()) == {"success"}
    else:
        assert flaky["status"] == "error"
        assert "flaky: first attempt fails" in flaky["error"]["message"]
        assert flaky.get("retries", 0) == 0
        assert results[FLAKY_DOWNSTREAM]["status"] == "skipped"
        assert results[FLAKY_DOWNSTREAM]["failed_upstream"] == [FLAKY_MODEL]
    assert len(results) == 6  # 1 seed, 2 models, 3 tests
    assert all("retries" not in r for uid, r in results.items() if uid != FLAKY_MODEL)
    gc.collect()  # the leaked event loops (see the filter above) go now, not in another test


# ---------------------------------------------------------------- 4, 5: concurrency

# Seeds, the 10 staging models and their tests: wide enough to show overlap,
# small enough that slot polling against a SQLite-backed server stays quick.
STAGING_AND_UP = "+tag:staging"


def create_global_limit(name: str, limit: int) -> None:
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


def active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(name).active_slots)


def test_a_named_global_concurrency_limit_is_never_exceeded(
    generated_project: GenerateProject, tmp_path: Path
) -> None:
    gen = generated_project(50)
    name = f"dbt-it-{uuid.uuid4().hex[:8]}"
    create_global_limit(name, 2)

    def build(concurrency: str | None, run: str) -> tuple[OverlapRecorder, dict[str, Any]]:
        settings = PrefectDbtSettings(
            project_dir=gen.project_dir, profiles_dir=gen.profiles_for(tmp_path / run)
        )
        recorder = OverlapRecorder(DbtCoreExecutor(settings))
        orchestrator = PrefectDbtOrchestrator(
            settings=settings, executor=recorder, execution_mode="per_node",
            concurrency=concurrency, create_summary_artifact=False, **UNTAGGED,
        )  # fmt: skip
        return recorder, in_flow(lambda: orchestrator.run_build(select=STAGING_AND_UP))

    unlimited, free_results = build(None, "unlimited")
    limited, limited_results = build(name, "limited")

    assert unlimited.peak > 2, "without a limit nodes should overlap, or this test proves nothing"
    assert 1 <= limited.peak <= 2
    assert limited.calls == unlimited.calls == len(limited_results) > 20
    assert contract_statuses(limited_results) == contract_statuses(free_results)
    assert set(contract_statuses(limited_results).values()) == {"success"}
    assert active_slots(name) == 0, "every slot taken was given back"


def test_four_nodes_at_once_give_the_statuses_one_at_a_time_gives(
    generated_project: GenerateProject, tmp_path: Path
) -> None:
    gen = generated_project(50)
    outcomes: list[tuple[int, int, dict[str, str]]] = []
    for run, concurrency in enumerate((4, 1, 4, 1)):
        # A fresh database for every run.
        settings = PrefectDbtSettings(
            project_dir=gen.project_dir,
            profiles_dir=gen.profiles_for(tmp_path / f"run{run}"),
        )
        recorder = OverlapRecorder(DbtCoreExecutor(settings), hold_seconds=0)
        orchestrator = PrefectDbtOrchestrator(
            settings=settings, executor=recorder, execution_mode=ExecutionMode.PER_NODE,
            concurrency=concurrency, create_summary_artifact=False, **UNTAGGED,
        )  # fmt: skip
        results = in_flow(orchestrator.run_build)
        outcomes.append((concurrency, recorder.peak, contract_statuses(results)))

    first = outcomes[0][2]
    assert len(first) == GENERATED_NODE_COUNT
    assert set(first.values()) == {"success"}
    for concurrency, peak, statuses in outcomes:
        assert statuses == first
        assert 1 <= peak <= concurrency


# ---------------------------------------------------------------- 6: test strategies


@pytest.mark.parametrize("strategy", list(TestStrategy))
def test_each_test_strategy_places_tests_where_it_says(
    strategy: TestStrategy, demo_project: Path
) -> None:
    orchestrator = orchestrator_for(
        demo_project, execution_mode=ExecutionMode.PER_NODE, test_strategy=strategy, **UNTAGGED
    )

    results = in_flow(orchestrator.run_build)

    assert set(contract_statuses(results).values()) == {"success"}
    tests = {uid: r for uid, r in results.items() if is_test(uid)}
    others = {uid: r for uid, r in results.items() if not is_test(uid)}
    assert len(others) == 11  # 3 seeds, 7 models, 1 snapshot
    if strategy is TestStrategy.SKIP:
        assert tests == {}
        return
    assert len(tests) == 18
    if strategy is TestStrategy.DEFERRED:
        last_other = max(moment(r["timing"]["completed_at"]) for r in others.values())
        first_test = min(moment(r["timing"]["started_at"]) for r in tests.values())
        assert first_test >= last_other
    else:
        unit_done = moment(results[UNIT_TEST]["timing"]["completed_at"])
        assert unit_done <= moment(results[UNIT_TESTED_MODEL]["timing"]["started_at"])
        # ...and tests do not all wait for the end (they run beside models).
        last_other = max(moment(r["timing"]["completed_at"]) for r in others.values())
        assert any(moment(r["timing"]["started_at"]) < last_other for r in tests.values())


# ---------------------------------------------------------------- 7: bad input


def test_a_missing_project_dir_is_refused_naming_dbt_project_yml(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    orchestrator = orchestrator_for(nowhere, profiles_dir=tmp_path)

    with pytest.raises(ProjectNotFoundError) as caught:
        in_flow(orchestrator.run_build)

    assert isinstance(caught.value, ValueError)
    assert "dbt_project.yml" in str(caught.value)
    assert not nowhere.exists()


def test_a_missing_profile_is_refused_naming_profiles_yml(
    demo_project: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-profiles"
    empty.mkdir()
    orchestrator = orchestrator_for(demo_project, profiles_dir=empty)

    with pytest.raises(ProfileNotFoundError) as caught:
        in_flow(orchestrator.run_build)

    assert isinstance(caught.value, ValueError)
    assert "profiles.yml" in str(caught.value)
    assert not (demo_project / "target").exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [(["--select", "x"], "--select"), (["--full-refresh"], "run_build(full_refresh=True)")],
)
def test_extra_cli_args_that_fight_the_orchestrator_are_refused(
    extra: list[str], named: str, demo_project: Path
) -> None:
    orchestrator = orchestrator_for(demo_project)

    with pytest.raises(BlockedFlagError) as caught:
        in_flow(lambda: orchestrator.run_build(extra_cli_args=extra))

    assert isinstance(caught.value, ValueError)
    assert named in str(caught.value)
    assert not (demo_project / "target").exists()


def test_bad_options_are_refused_before_anything_runs(demo_project: Path) -> None:
    with pytest.raises(OptionsConflictError) as caught:
        orchestrator_for(demo_project, execution_mode="sideways")
    assert "sideways" in str(caught.value)
    assert "PER_NODE" in str(caught.value) and "PER_WAVE" in str(caught.value)

    with pytest.raises(OptionsConflictError) as caught:
        orchestrator_for(demo_project, defer=True)
    assert "state" in str(caught.value)

    assert not (demo_project / "target").exists()


# ---------------------------------------------------------------- 8: selection


def test_seed_test_and_selections_run_what_dbt_ls_selects(
    demo_project: Path, plain_dbt: PlainDbt
) -> None:
    # One orchestrator for every build, as users hold one (see the regression
    # tests below for what that once broke).
    orchestrator = orchestrator_for(demo_project, **UNTAGGED)

    seeds = in_flow(orchestrator.run_seed)
    assert set(seeds) == plain_dbt.ls(demo_project, "--resource-type", "seed")
    assert len(seeds) == 3
    assert set(contract_statuses(seeds).values()) == {"success"}
    # Everything exists from here on: a selection's tests may read unselected parents
    # (the relationships test on fct_rides reads dim_stations), as in dbt.
    assert len(in_flow(orchestrator.run_build)) == DEMO_NODE_COUNT

    for select, exclude in (("+fct_rides", None), ("tag:daily", None), (None, "staging")):
        results = in_flow(functools.partial(orchestrator.run_build, select=select, exclude=exclude))
        args = [*(("--select", select) if select else ())]
        args += [*(("--exclude", exclude) if exclude else ())]
        assert set(results) == plain_dbt.ls(demo_project, *args), (select, exclude)
        assert set(contract_statuses(results).values()) == {"success"}, (select, exclude)

    tests = in_flow(orchestrator.run_test)
    expected = plain_dbt.ls(demo_project, "--resource-type", "test", "--resource-type", "unit_test")
    assert set(tests) == expected
    assert len(tests) == 18 and all(is_test(uid) for uid in tests)
    assert set(contract_statuses(tests).values()) == {"success"}


# ---------------------------------------------------------------- regressions
# Each of these failed against the src of HEAD when it was written (the
# docstring says how); they pass with the fixes that followed.


def test_rebuilding_with_concurrent_nodes_never_hits_a_relation_cache_inconsistency(
    generated_project: GenerateProject,
) -> None:
    """Once: the dbt session never populated dbt's relation cache (dbt's before_run
    does, after create_schemas). Every get_relation then listed the schema from the
    database and re-added what it found, bringing back a relation another thread
    had just renamed: 'Internal Error: Cache inconsistency detected: in rename, new
    key ... already in cache' on about every other rebuild of existing relations
    with several nodes at once."""
    gen = generated_project(50)
    orchestrator = orchestrator_for(gen.project_dir, raise_on_failure=False)
    first = in_flow(orchestrator.run_build)
    assert set(contract_statuses(first).values()) == {"success"}

    # The 10 staging views replace themselves 4 at a time (the profile's threads).
    # The race lost about every other time: 10 rounds make a pass by luck unlikely.
    for _ in range(10):
        again = in_flow(lambda: orchestrator.run_build(select="tag:staging"))
        errors = {uid: r["error"]["message"] for uid, r in again.items() if r["status"] == "error"}
        assert errors == {}


def test_a_new_database_path_for_the_same_target_builds_into_the_new_database(
    demo_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once: target/manifest.json was reused whenever it was newer than the project's
    files, even when the profile resolved differently (here DEMO_DUCKDB_PATH). The
    manifest records the database of the earlier parse ('demo'), so the next build
    failed to open: 'Catalog Error: "demo" is not a catalog or schema'. Plain
    `dbt build` re-parses when the profile changes."""
    orchestrator = orchestrator_for(demo_project, create_summary_artifact=False)
    first = in_flow(orchestrator.run_build)
    assert set(contract_statuses(first).values()) == {"success"}

    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "elsewhere.duckdb"))
    second = in_flow(orchestrator.run_build)

    assert set(contract_statuses(second).values()) == {"success"}
    assert (tmp_path / "elsewhere.duckdb").is_file()


def test_one_orchestrator_builds_a_model_on_an_ephemeral_model_twice(
    demo_project: Path,
) -> None:
    """Once: the executor kept dbt's in-memory manifest from one build to the next.
    After the first build fct_rides had extra_ctes_injected=True, so the second
    compile skipped injecting the ephemeral CTE: 'Catalog Error: Table with name
    __dbt__cte__int_rides_enriched does not exist!'."""
    orchestrator = orchestrator_for(demo_project, raise_on_failure=False)

    for build in ("first", "second"):
        results = in_flow(lambda: orchestrator.run_build(select="+fct_rides"))
        fct_rides = results[FCT_RIDES]
        assert fct_rides["status"] == "success", (build, fct_rides.get("error"))
