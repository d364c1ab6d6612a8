"""``scripts/postgres``, the throwaway PostgreSQL server, run for real.

Every test uses a cluster folder of its own under the system's temp folder (the
``postgres`` user cannot enter pytest's), and stops whatever it started.
Deadlines are generous and nothing asserts on wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.postgres import parse_environment, run_script, started

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    folder = Path(tempfile.gettempdir()) / f"prefect-dbt-orchestrator-test-{uuid.uuid4().hex[:8]}"
    yield folder
    run_script(folder, "stop")


def process_exists(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_start_status_and_stop_agree_on_one_server_that_accepts_connections(
    cluster_dir: Path,
) -> None:
    server = started(cluster_dir)
    state = json.loads((cluster_dir / "server.json").read_text())
    pid = int(state["pid"])

    query = [
        str(Path(state["bindir"]) / "psql"), "--no-psqlrc", "--tuples-only", "--no-align",
        "--host", server.host, "--port", str(server.port), "--username", server.user,
        "--dbname", server.database, "--command", "select current_user, current_database()",
    ]  # fmt: skip
    answer = subprocess.run(query, capture_output=True, text=True, timeout=300, check=False)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == f"{server.user}|{server.database}"
    status = run_script(cluster_dir, "status")
    assert status.returncode == 0, status.stderr
    assert parse_environment(status.stdout) == {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGDATABASE": server.database,
    }
    again = run_script(cluster_dir, "start")
    assert again.returncode == 0, again.stderr
    assert again.stdout == status.stdout and "reusing" in again.stderr

    stopped = run_script(cluster_dir, "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert not cluster_dir.exists()
    assert not process_exists(pid)
    assert run_script(cluster_dir, "status").returncode == 1
    twice = run_script(cluster_dir, "stop")
    assert twice.returncode == 0 and "nothing to stop" in twice.stderr


def test_start_replaces_a_server_that_is_recorded_but_gone(cluster_dir: Path) -> None:
    first = started(cluster_dir)
    state = json.loads((cluster_dir / "server.json").read_text())
    os.kill(int(state["pid"]), 9)  # the server dies without a word
    assert run_script(cluster_dir, "status").returncode == 1

    second = started(cluster_dir)

    assert "PGPORT" in parse_environment(run_script(cluster_dir, "status").stdout)
    assert int(json.loads((cluster_dir / "server.json").read_text())["pid"]) != state["pid"]
    assert second.database == first.database


def test_a_folder_that_is_not_a_cluster_is_refused_and_left_alone(cluster_dir: Path) -> None:
    cluster_dir.mkdir()
    keep = cluster_dir / "notes.txt"
    keep.write_text("mine", encoding="utf-8")

    refused = run_script(cluster_dir, "start")
    stopped = run_script(cluster_dir, "stop")

    assert refused.returncode == 1
    assert "is not a cluster of scripts/postgres: remove it or give another --dir" in refused.stderr
    assert stopped.returncode == 0 and keep.read_text(encoding="utf-8") == "mine"
    keep.unlink()
    cluster_dir.rmdir()
