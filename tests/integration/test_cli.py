"""The ``dbt-orchestrate`` console script, run as a user runs it, on the demo.

Each build is a separate Python process (``python -m adapters.cli.main``) that
talks to this session's Prefect server (``PREFECT_API_URL`` from the harness)
and builds a copy of the demo into its own DuckDB file. ``ls`` and ``plan``
run in this process (``main([...])``), with real dbt parsing when they must.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.cli.main import main
from tests.corpus import corpus_dir, jsonl, project_layout
from tests.integration.conftest import DEMO_NODE_COUNT
from tests.integration.test_demo_project import FAILING_MODEL, SKIPPED_WHEN_FCT_RIDES_FAILS

pytestmark = pytest.mark.integration


def run_cli(
    *args: str, api_url: str, database: Path, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env["PREFECT_API_URL"] = api_url
    env["DEMO_DUCKDB_PATH"] = str(database)
    return subprocess.run(
        [sys.executable, "-m", "prefect_dbt_orchestrator.adapters.cli.main", "build", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_a_healthy_build_exits_0_and_writes_every_result(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    out = tmp_path / "out" / "results.json"

    done = run_cli(
        "--project-dir", str(demo_project), "--profiles-dir", str(demo_project),
        "--results-json", str(out),
        api_url=prefect_api_url, database=tmp_path / "cli.duckdb", cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    results = read_results(out)
    assert len(results) == DEMO_NODE_COUNT
    assert {r["status"] for r in results.values()} == {"success"}


async def _latest_build_run(since: datetime) -> FlowRun:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["dbt-orchestrate-build"])),
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=since)  # type: ignore[arg-type]
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert runs, f"no dbt-orchestrate-build flow run since {since}"
    return runs[0]


def test_a_failing_node_exits_1_and_still_writes_every_result(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    started = datetime.now().astimezone()
    out = tmp_path / "results.json"

    done = run_cli(
        "--project-dir", str(demo_project), "--profiles-dir", str(demo_project),
        "--mode", "per-node", "--vars", "{fail_model: true}",
        "--results-json", str(out),
        api_url=prefect_api_url, database=tmp_path / "cli.duckdb", cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr[-3000:]
    results = read_results(out)
    assert len(results) == DEMO_NODE_COUNT
    assert {uid for uid, r in results.items() if r["status"] == "error"} == {FAILING_MODEL}
    skipped = {uid for uid, r in results.items() if r["status"] == "skipped"}
    assert skipped == SKIPPED_WHEN_FCT_RIDES_FAILS
    assert all(results[uid]["failed_upstream"] == [FAILING_MODEL] for uid in skipped)
    run = anyio.run(_latest_build_run, started)
    assert run.state is not None and run.state.type is StateType.FAILED
    assert "Traceback" not in done.stderr


def test_a_missing_project_dir_exits_2_with_a_message_on_stderr(
    tmp_path: Path, prefect_api_url: str
) -> None:
    out = tmp_path / "results.json"

    done = run_cli(
        "--project-dir", str(tmp_path / "nowhere"), "--results-json", str(out),
        api_url=prefect_api_url, database=tmp_path / "cli.duckdb", cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr[-3000:]
    assert "dbt-orchestrate: error:" in done.stderr
    assert "dbt_project.yml" in done.stderr
    assert not out.exists()


def test_build_takes_dbts_selection_flags_and_passes_vars_through(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    out = tmp_path / "results.json"

    done = run_cli(
        "--project-dir", str(demo_project), "--profiles-dir", str(demo_project),
        "-s", "+fct_rides", "--exclude-resource-type", "test", "unit_test",
        "--vars", "{fail_model: false}", "--profile", "demo", "--results-json", str(out),
        api_url=prefect_api_url, database=tmp_path / "cli.duckdb", cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    results = read_results(out)
    assert FAILING_MODEL in results
    assert {uid.split(".", 1)[0] for uid in results} == {"seed", "model"}


def test_build_folds_the_state_flags_into_the_orchestrator(tmp_path: Path) -> None:
    from prefect_dbt_orchestrator.adapters.cli.main import _orchestrator, build_parser

    args = build_parser().parse_args(
        ["build", "--project-dir", str(tmp_path), "--state", "prev", "--defer",
         "--defer-state", "base", "--favor-state", "--manifest", "m.json", "--threads", "3"]
    )  # fmt: skip

    options = _orchestrator(args).options
    assert options.state_path == Path("prev").resolve()
    assert options.defer_state_path == Path("base").resolve()
    assert (options.defer, options.favor_state, options.threads) == (True, True, 3)
    assert options.raise_on_failure is True


# --- ls and plan, in this process ------------------------------------------------------


@pytest.fixture(scope="module")
def tuva_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_layout("tuva", tmp_path_factory.mktemp("tuva"))


@pytest.mark.parametrize(
    "case", list(jsonl("tuva", "selectors.jsonl")), ids=lambda case: str(case["id"])
)
def test_a_real_dbt_ls_line_with_vars_lists_what_dbt_listed(
    case: dict[str, Any], tuva_layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = corpus_dir() / "tuva" / "manifest.json"
    argv = ["ls", *case["dbt_argv"][2:], "--manifest", str(manifest)]

    assert main([*argv, "--project-dir", str(tuva_layout)]) == 0

    out = capsys.readouterr().out
    assert [json.loads(line)["unique_id"] for line in out.splitlines()] == case["expected"]


OPTIONAL_MODEL = "{{ config(enabled=%s) }}\nselect 1 as x\n"
PROFILES = """\
demo:
  target: dev
  outputs:
    dev: &duckdb {type: duckdb, path: "{{ env_var('DEMO_DUCKDB_PATH') }}", schema: main}
    ci: *duckdb
other:
  target: dev
  outputs:
    dev: *duckdb
"""


@pytest.fixture
def demo_with_options(demo_project: Path) -> Path:
    """The demo, plus models enabled only by a var, a target, or a profile."""
    for name, condition in (
        ("by_var", "var('with_extra', false)"),
        ("by_target", "target.name == 'ci'"),
        ("by_profile", "target.profile_name == 'other'"),
    ):
        (demo_project / "models" / f"{name}.sql").write_text(OPTIONAL_MODEL % condition)
    (demo_project / "profiles.yml").write_text(PROFILES, encoding="utf-8")
    return demo_project


def _ls_names(project: Path, *argv: str) -> None:
    """``dbt-orchestrate ls --resource-type model --output name`` on ``project``."""
    code = main(["ls", "--project-dir", str(project), "--profiles-dir", str(project),
                 "--resource-type", "model", "--output", "name", *argv])  # fmt: skip
    assert code == 0


def test_ls_parses_when_there_is_no_manifest_and_says_so(
    demo_with_options: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = demo_with_options / "target" / "manifest.json"

    _ls_names(demo_with_options)

    out, err = capsys.readouterr()
    assert f"no manifest at {manifest}: parsing the project with dbt ..." in err
    assert manifest.is_file()
    assert "fct_rides" in out.split()
    assert not {"by_var", "by_target", "by_profile"} & set(out.split())


@pytest.mark.parametrize(
    ("flags", "enabled"),
    [
        (["--vars", "{with_extra: true}"], "by_var"),
        (["--target", "ci"], "by_target"),
        (["--profile", "other"], "by_profile"),
    ],
)
def test_vars_target_and_profile_are_reflected_by_parsing_again(
    demo_with_options: Path, flags: list[str], enabled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _ls_names(demo_with_options)
    capsys.readouterr()

    _ls_names(demo_with_options, *flags)

    out, err = capsys.readouterr()
    assert f"{flags[0]} given" in err and "parsing the project with dbt" in err
    assert {"by_var", "by_target", "by_profile"} & set(out.split()) == {enabled}


def test_plan_prints_exactly_what_the_orchestrators_plan_returns(
    demo_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = ["--project-dir", str(demo_project), "--profiles-dir", str(demo_project)]

    assert main(["plan", *location, "-s", "+mart_station_daily", "--exclude", "nope"]) == 0

    out, err = capsys.readouterr()
    settings = PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project)
    expected = PrefectDbtOrchestrator(settings=settings).plan("+mart_station_daily", "nope")
    assert out == str(expected)
    assert expected.warnings == ("The selection criterion 'nope' does not match any enabled nodes",)
    assert expected.warnings[0] in err.splitlines()
