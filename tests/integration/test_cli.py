"""The ``dbt-orchestrate`` console script, run as a user runs it, on the demo.

Each run is a separate Python process (``python -m adapters.cli.main``) that
talks to this session's Prefect server (``PREFECT_API_URL`` from the harness)
and builds a copy of the demo into its own DuckDB file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


def test_a_failing_node_exits_1_and_still_writes_every_result(
    demo_project: Path, tmp_path: Path, prefect_api_url: str
) -> None:
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
