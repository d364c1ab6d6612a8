"""``dbt-orchestrate build``'s exit codes, run as a user runs it, on the demo.

Each run is a separate Python process talking to this session's Prefect server.
Bad input exits 2 before any flow run exists (the server is read back to
check); dbt or Prefect being unavailable exits 3; no expected failure shows a
Python traceback unless ``--debug`` is given. Exits 0 and 1 are in test_cli.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest
from prefect.client.orchestration import get_client

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from tests.unit.builders import manifest_of, model, test
from tests.unit.fakes import FakeExecutor

pytestmark = pytest.mark.integration

EMPTY_WARNING = "The selection criterion '' does not match any enabled nodes"


def _build(
    project: Path, *args: str, api_url: str, tmp_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dbt-orchestrate build`` on ``project`` in a process of its own."""
    environ = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    environ |= {"PREFECT_API_URL": api_url, "DEMO_DUCKDB_PATH": str(tmp_path / "cli.duckdb")}
    environ |= env or {}
    location = ["--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.run(
        [sys.executable, "-m", "prefect_dbt_orchestrator.adapters.cli.main", "build",
         *location, *args],
        env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


async def _count_flow_runs() -> int:
    async with get_client() as client:
        return await client.count_flow_runs()


def _flow_runs() -> int:
    """How many flow runs the session's Prefect server holds, of any flow."""
    return anyio.run(_count_flow_runs)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in done.stdout and "Traceback" not in done.stderr


BAD_INPUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "an unknown selector method": (("-s", "nosuch:x"), ("unknown selector method 'nosuch'",)),
    "a resource type dbt does not know": (("--resource-type", "modle"), ("modle",)),
    "a target the profile lacks": (
        ("--target", "nosuch"),
        ("The profile 'demo' does not have a target named 'nosuch'", "are:\n - dev"),
    ),
    "--vars that are not YAML": (("--vars", "{a: [}"), ("is not valid YAML",)),
    "a --results-json that is a directory": (
        ("--results-json", "{project}"),
        ("it is a directory",),
    ),
    "a --results-json below a file": (
        ("--results-json", "{project}/dbt_project.yml/results.json"),
        ("dbt_project.yml is a file, so no directory can be made in it",),
    ),
}


@pytest.mark.parametrize(("args", "said"), BAD_INPUT.values(), ids=list(BAD_INPUT))
def test_bad_input_exits_2_with_no_traceback_and_no_flow_run(
    demo_project: Path,
    tmp_path: Path,
    prefect_api_url: str,
    args: tuple[str, ...],
    said: tuple[str, ...],
) -> None:
    args = tuple(arg.replace("{project}", str(demo_project)) for arg in args)
    runs_before = _flow_runs()

    done = _build(demo_project, *args, api_url=prefect_api_url, tmp_path=tmp_path)

    assert done.returncode == 2, done.stderr[-3000:]
    assert "dbt-orchestrate: error: " in done.stderr
    for text in said:
        assert text in done.stderr
    assert _no_traceback(done)
    assert _flow_runs() == runs_before


def test_debug_shows_the_traceback_of_bad_input(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    done = _build(
        demo_project, "-s", "nosuch:x", "--debug", api_url=prefect_api_url, tmp_path=tmp_path
    )

    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback (most recent call last):" in done.stderr
    assert "UnknownMethodError" in done.stderr


@pytest.fixture
def snowflake_demo(demo_project: Path) -> Path:
    """The demo, its profile's target of a warehouse type with no adapter installed."""
    profiles = demo_project / "profiles.yml"
    text = profiles.read_text(encoding="utf-8")
    assert "type: duckdb" in text
    profiles.write_text(text.replace("type: duckdb", "type: snowflake"), encoding="utf-8")
    return demo_project


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_profile_of_an_adapter_not_installed_exits_3(
    snowflake_demo: Path, tmp_path: Path, prefect_api_url: str, debug: bool
) -> None:
    runs_before = _flow_runs()
    flags = ("--debug",) if debug else ()

    done = _build(snowflake_demo, *flags, api_url=prefect_api_url, tmp_path=tmp_path)

    assert done.returncode == 3, done.stderr[-3000:]
    assert "no dbt-snowflake adapter is installed" in done.stderr
    assert "pip install dbt-snowflake" in done.stderr
    assert _no_traceback(done) is not debug
    assert _flow_runs() == runs_before  # found while planning, before the flow run


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_prefect_api_exits_3_naming_the_url(
    demo_project: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api"

    done = _build(demo_project, "-s", "stg_rides", api_url=url, tmp_path=tmp_path)

    assert done.returncode == 3, done.stderr[-3000:]
    assert f"the Prefect API at {url} is unreachable" in done.stderr
    assert "ConnectError" in done.stderr and "PREFECT_API_URL" in done.stderr
    assert _no_traceback(done)


def test_an_empty_select_builds_nothing_and_exits_0_as_dbt_does(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    out = tmp_path / "results.json"

    done = _build(
        demo_project, "--select", "", "--results-json", str(out),
        api_url=prefect_api_url, tmp_path=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text(encoding="utf-8")) == {}
    assert EMPTY_WARNING in done.stdout + done.stderr


def test_run_build_with_an_empty_select_runs_nothing(tmp_path: Path) -> None:
    fake = FakeExecutor(manifest=manifest_of(model("a"), model("b", "a"), test("t", "b")))
    settings = PrefectDbtSettings(project_dir=tmp_path, profiles_dir=tmp_path)
    orchestrator = PrefectDbtOrchestrator(settings=settings, executor=fake)

    assert orchestrator.run_build(select="") == {}
    assert fake.ran == []

    assert len(orchestrator.run_build(select=None)) == 3
