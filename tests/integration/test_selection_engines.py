"""The selection engines on the demo project, with real dbt and real Prefect.

- ``selection_engine="dbt"`` (``dbt ls`` in-process) plans exactly what the
  default pure-Python engine plans, including ``state:`` selection;
- ``plan()`` starts no dbt process when the manifest exists, and
  ``run_build()`` runs exactly the nodes ``plan()`` shows;
- bad selections are typed errors, and exit 2 from the CLI with the problem
  and the fix on stderr.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbt.cli.main import dbtRunner

from prefect_dbt_orchestrator.adapters.cli.main import main
from prefect_dbt_orchestrator.adapters.dbt_core.ls_selector import DbtLsSelector, DbtSelectionError
from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.selection import (
    MissingSelectionDataError,
    SelectionContext,
    SelectionRequest,
    SelectorSyntaxError,
    UnknownMethodError,
    UnknownSelectorError,
)
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

pytestmark = pytest.mark.integration

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
QUIET = ("--quiet", "--log-level-file", "none", "--no-send-anonymous-usage-stats")


def _copy_demo(root: Path) -> Path:
    project = root / "demo"
    shutil.copytree(DEMO_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    return project


def _parse(project: Path) -> None:
    args = ["parse", *QUIET, "--project-dir", str(project), "--profiles-dir", str(project)]
    outcome = dbtRunner().invoke(args)
    assert outcome.success, outcome.exception


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A parsed copy of the demo on its own DuckDB file (shared: tests here only read it)."""
    root = tmp_path_factory.mktemp("engines")
    project = _copy_demo(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_DUCKDB_PATH", str(root / "demo.duckdb"))
        _parse(project)
        yield project


def _orchestrator(project: Path, engine: str = "python", **options: Any) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    return PrefectDbtOrchestrator(settings=settings, selection_engine=engine, **options)


SELECTIONS: dict[str, dict[str, Any]] = {
    "everything": {},
    "parents": {"select": "+fct_rides"},
    "tag-exclude": {"select": "tag:daily", "exclude": "mart_bike_usage"},
    "children-and-source": {"select": "stg_rides+ source:bikeshare"},
    "intersection": {"select": "config.materialized:table,+mart_station_daily"},
}


@pytest.mark.parametrize("selection", SELECTIONS.values(), ids=list(SELECTIONS))
def test_the_dbt_engine_plans_what_the_python_engine_plans(
    demo: Path, selection: dict[str, Any]
) -> None:
    ours = _orchestrator(demo).plan(**selection)
    theirs = _orchestrator(demo, "dbt").plan(**selection)
    assert ours.node_count > 0
    assert set(theirs.plan.nodes) == set(ours.plan.nodes)
    assert theirs.waves == ours.waves
    assert set(theirs.reasons.values()) == {"dbt ls"}
    assert "dbt ls" not in set(ours.reasons.values())


def test_both_engines_and_both_ls_agree_on_state_modified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _copy_demo(tmp_path)
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    _parse(project)
    state = tmp_path / "state"
    shutil.copytree(project / "target", state)
    model = project / "models" / "staging" / "stg_stations.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    _parse(project)

    plans = [
        _orchestrator(project, engine, state_path=state).plan(select="state:modified+")
        for engine in ("python", "dbt")
    ]
    assert set(plans[0].plan.nodes) == set(plans[1].plan.nodes)
    assert "model.demo.stg_stations" in plans[0].plan.nodes
    assert "model.demo.dim_stations" in plans[0].plan.nodes  # a child
    assert "model.demo.stg_rides" not in plans[0].plan.nodes  # unchanged

    flags = ["--project-dir", str(project), "--profiles-dir", str(project), "--state", str(state)]
    flags += ["-s", "state:modified+", "--output", "json"]
    capsys.readouterr()
    assert dbtRunner().invoke(["ls", *QUIET, *flags]).success
    printed_by_dbt = capsys.readouterr().out
    assert main(["ls", *flags]) == 0
    assert capsys.readouterr().out == printed_by_dbt
    assert '"unique_id": "model.demo.dim_stations"' in printed_by_dbt


# -- plan() starts no dbt process; run_build() runs the plan -------------------------


def _target_files(project: Path) -> dict[str, tuple[int, int]]:
    """Every file under target/ with its mtime and size."""
    found = {}
    for root, _, files in os.walk(project / "target"):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            found[os.path.join(root, name)] = (stat.st_mtime_ns, stat.st_size)
    return found


@pytest.fixture()
def dbt_invocations(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every ``dbtRunner.invoke`` argv from now on (each call still runs dbt)."""
    calls: list[list[str]] = []
    real: Callable[..., Any] = dbtRunner.invoke

    def counting(self: dbtRunner, args: list[str], **kwargs: Any) -> Any:
        calls.append(list(args))
        return real(self, args, **kwargs)

    monkeypatch.setattr(dbtRunner, "invoke", counting)
    return calls


def test_plan_starts_no_dbt_process_when_the_manifest_exists(
    demo: Path, dbt_invocations: list[list[str]]
) -> None:
    before = _target_files(demo)
    assert str(demo / "target" / "manifest.json") in before
    orchestrator = _orchestrator(demo)
    for selection in SELECTIONS.values():
        assert orchestrator.plan(**selection).node_count > 0
    assert dbt_invocations == []
    assert _target_files(demo) == before  # no parse: no manifest or partial_parse rewrite

    # The counter sees dbt when it does run: the dbt engine runs `dbt ls`.
    _orchestrator(demo, "dbt").plan(select="+fct_rides")
    assert [call[0] for call in dbt_invocations] == ["ls"]


def test_plan_parses_only_when_the_manifest_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dbt_invocations: list[list[str]]
) -> None:
    project = _copy_demo(tmp_path)
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    orchestrator = _orchestrator(project)
    first = orchestrator.plan(select="+fct_rides")
    assert [call[0] for call in dbt_invocations] == ["parse"]
    assert orchestrator.plan(select="+fct_rides") == first
    assert len(dbt_invocations) == 1


def test_run_build_runs_exactly_the_nodes_plan_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api_url: str
) -> None:
    # prefect_api_url (tests/integration/conftest.py): the session's Prefect server.
    project = _copy_demo(tmp_path)
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    _parse(project)
    orchestrator = _orchestrator(project, execution_mode="per_wave", create_summary_artifact=False)
    unit_test = "unit_test.demo.mart_station_daily.test_station_daily_counts_completed_rides_only"
    selection: dict[str, Any] = {
        "select": "+mart_station_daily +snap_bikes",
        "exclude": "test_type:unit",
    }
    shown: BuildPlan = orchestrator.plan(**selection)

    results = orchestrator.run_build(**selection)

    assert set(results) == set(shown.plan.nodes)
    assert {"seed.demo.raw_rides", "snapshot.demo.snap_bikes"} <= set(results)
    assert unit_test not in results and "model.demo.int_rides_enriched" not in results  # ephemeral
    assert {r["status"] for r in results.values()} == {"success"}, results


# -- bad input: typed errors, exit 2 with the problem and the fix --------------------

BAD_INPUT: dict[str, tuple[dict[str, str], tuple[str, ...], type[PlanError], str, str]] = {
    # name: (plan() kwargs, CLI flags, python engine's error, problem, fix)
    "unknown-method": (
        {"select": "foo:bar"}, ("-s", "foo:bar"), UnknownMethodError,
        "'foo'", "use one of fqn, tag",
    ),
    "graph-operator": (
        {"select": "@a+"}, ("-s", "@a+"), SelectorSyntaxError,
        "@a+", "[@][N+][method:]value[+N]",
    ),
    "unknown-selector": (
        {"selector": "nope"}, ("--selector", "nope"), UnknownSelectorError,
        "nope", "selectors.yml",
    ),
    "state-without-state-dir": (
        {"select": "state:modified"}, ("-s", "state:modified"), MissingSelectionDataError,
        "state", "--state",
    ),
}  # fmt: skip


@pytest.mark.parametrize("command", ["ls", "plan"])
@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=list(BAD_INPUT))
def test_the_cli_exits_2_naming_the_problem_and_the_fix(
    demo: Path, case: tuple[Any, ...], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags, _, problem, fix = case
    code = main([command, "--project-dir", str(demo), *flags])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("dbt-orchestrate: error: ")
    assert problem in err and fix in err
    assert len(err.splitlines()) == 1  # one message, no traceback


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=list(BAD_INPUT))
def test_plan_raises_a_typed_error_with_either_engine(demo: Path, case: tuple[Any, ...]) -> None:
    kwargs, _, error, problem, fix = case
    assert issubclass(error, PlanError)
    with pytest.raises(error) as ours:
        _orchestrator(demo).plan(**kwargs)
    assert problem in str(ours.value) and fix in str(ours.value)

    with pytest.raises(DbtSelectionError) as theirs:
        _orchestrator(demo, "dbt").plan(**kwargs)
    assert isinstance(theirs.value, PlanError)
    assert problem in str(theirs.value) and "; " in str(theirs.value)


def test_a_bad_ls_output_format_is_refused_like_dbt(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ls", "--project-dir", str(demo), "--output", "yaml"])
    assert exited.value.code == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_the_dbt_engine_reports_a_project_dbt_cannot_parse_as_executor_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _copy_demo(tmp_path)
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    manifest = _orchestrator(project).executor.load_manifest()
    (project / "models" / "staging" / "stg_broken.sql").write_text("select {{ ref( }}\n")
    selector = DbtLsSelector(PrefectDbtSettings(project_dir=project, profiles_dir=project))

    with pytest.raises(ExecutorUnavailable) as raised:
        selector.select(manifest, SelectionRequest(select="stg_rides"), SelectionContext())
    assert not isinstance(raised.value, PlanError)
    assert "dbt ls failed" in str(raised.value) and "stg_broken" in str(raised.value)
