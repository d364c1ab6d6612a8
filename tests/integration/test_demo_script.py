"""``scripts/prefect_server.py``, the demo's own Prefect server, run for real.

Every command is a separate process with an explicit environment (no
``PREFECT_*`` variable of this session), a ``PREFECT_HOME`` in ``tmp_path`` and
a free port of its own: the session's test server (``prefect_api_url``) is
never touched. Deadlines are generous and nothing asserts on wall time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "prefect_server.py"
DEADLINE = 900  # seconds a command may take: the server may start slowly on a busy machine


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its Prefect settings, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    return env | extra


def helper(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--home", str(home), *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def started(home: Path) -> str:
    """``start``; the API URL it printed."""
    done = helper(home, "start")
    assert done.returncode == 0, done.stderr[-3000:]
    api_url = done.stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api", api_url), done.stdout
    return api_url


def recorded_pid(home: Path) -> int:
    state = json.loads((home / "server.json").read_text(encoding="utf-8"))
    return int(state["pid"])


def process_exists(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def health(api_url: str) -> object:
    with urllib.request.urlopen(f"{api_url}/health", timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def server_home(tmp_path: Path) -> Iterator[Path]:
    """A PREFECT_HOME for the helper; whatever a test leaves running is stopped."""
    home = tmp_path / "prefect-home"
    yield home
    helper(home, "stop")


def test_start_status_url_and_stop_agree_on_one_healthy_server(server_home: Path) -> None:
    api_url = started(server_home)
    pid = recorded_pid(server_home)

    assert health(api_url) is True
    assert process_exists(pid)
    status = helper(server_home, "status")
    assert status.returncode == 0, status.stderr
    assert f"running at {api_url.removesuffix('/api')} (pid {pid}" in status.stdout
    assert helper(server_home, "url").stdout.strip() == api_url
    assert helper(server_home, "url", "--ui").stdout.strip() == api_url.removesuffix("/api")

    stopped = helper(server_home, "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert not (server_home / "server.json").exists()
    assert not process_exists(pid)
    assert helper(server_home, "status").returncode == 1
    assert helper(server_home, "url").returncode == 1


def test_a_second_start_reuses_the_running_server(server_home: Path) -> None:
    first = started(server_home)
    pid = recorded_pid(server_home)

    again = helper(server_home, "start")

    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == first
    assert recorded_pid(server_home) == pid
    assert "reusing the Prefect server" in again.stderr


def test_start_replaces_a_server_that_is_recorded_but_gone(server_home: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    server_home.mkdir()
    state = {"pid": int(gone.stdout), "port": 9}
    (server_home / "server.json").write_text(json.dumps(state), encoding="utf-8")

    api_url = started(server_home)

    assert recorded_pid(server_home) != state["pid"]
    assert health(api_url) is True


def test_show_run_links_the_latest_build_flow_run_in_the_ui(server_home: Path) -> None:
    api_url = started(server_home)
    ui_url = api_url.removesuffix("/api")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    flow = "from prefect import flow; flow(name='dbt-orchestrate-build')(lambda: None)()"
    ran = subprocess.run(
        [sys.executable, "-c", flow],
        env=clean_env(PREFECT_API_URL=api_url, PREFECT_HOME=str(server_home)),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]

    shown = helper(server_home, "show-run", "--api-url", api_url, "--since", since)

    assert shown.returncode == 0, shown.stderr
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})$", shown.stdout.strip())
    assert run_id is not None, shown.stdout
    assert f"Prefect UI:   {ui_url}\n" in shown.stdout
    assert f"View at {ui_url}/runs/flow-run/{run_id[1]}" in ran.stderr + ran.stdout
