"""The demo's own Prefect server: start (or reuse), status, url, stop, and the run's link.

Standard library only (no curl, no Prefect import: Prefect runs as a process).
Run it with the project's virtualenv, whose Python has Prefect installed:

    .venv/bin/python scripts/prefect_server.py start     # prints the API URL
    .venv/bin/python scripts/prefect_server.py status    # exit 0 when running and healthy
    .venv/bin/python scripts/prefect_server.py url [--ui]
    .venv/bin/python scripts/prefect_server.py stop
    .venv/bin/python scripts/prefect_server.py show-run --api-url URL --since ISO

``start`` runs ``prefect server start --host 127.0.0.1 --port <free port>`` with
``PREFECT_HOME`` set to ``--home`` (default ``demo/target/prefect``), so the
server never touches ``~/.prefect`` and its SQLite database (the runs) persists
between demos. It waits for ``GET /api/health`` for minutes, not the 20 s of
Prefect's ephemeral server, and records the pid and port in ``server.json``
there. A later ``start`` reuses that server while it is alive and healthy. The
server runs in its own session: it outlives the script until ``stop``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOME = REPO / "demo" / "target" / "prefect"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
FLOW_NAME = "dbt-orchestrate-build"  # the flow `dbt-orchestrate build` runs
HOST = "127.0.0.1"
PROGRESS_EVERY = 10.0  # seconds between "waiting for the Prefect server" lines
REUSE_GRACE = 60.0  # how long a running but unanswering server gets before a restart
STOP_GRACE = 60.0  # SIGTERM, then SIGKILL after this many seconds
START_ATTEMPTS = 3  # a free port can be taken before the server binds it


@dataclass(frozen=True)
class Server:
    """A server this script started: its process (also its process group) and port."""

    pid: int
    port: int

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


def say(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only the answer."""
    print(f"prefect_server: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- state


def read_state(home: Path) -> Server | None:
    """The recorded server, or None when there is none (or the file is unreadable)."""
    try:
        data = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        return Server(pid=int(data["pid"]), port=int(data["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(home: Path, server: Server) -> None:
    temporary = home / f"{STATE_FILE}.tmp"
    temporary.write_text(json.dumps({"pid": server.pid, "port": server.port}), encoding="utf-8")
    os.replace(temporary, home / STATE_FILE)


def clear_state(home: Path) -> None:
    (home / STATE_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """One start or stop at a time per home (two demos at once share one server)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.lock", "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------- probes


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs and, where /proc says, is a Prefect process (not a zombie,
    not an unrelated process that got the pid of a server long gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): the signal is all there is to go on
    return b"prefect" in command  # a zombie's cmdline is empty


def is_healthy(api_url: str, timeout: float = 10.0) -> bool:
    """``GET /api/health`` answers ``true``."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return bool(json.loads(response.read()) is True)
    except (OSError, ValueError):  # URLError and timeouts are OSErrors
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# ---------------------------------------------------------------- processes


def launch(home: Path, port: int) -> subprocess.Popen[bytes]:
    """``prefect server start`` in a session of its own, logging to ``server.log``.

    The environment drops every ``PREFECT_*`` variable of the caller (a database
    URL or profile meant for another server) and turns analytics off.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", HOST, "--port", str(port)]
    with open(home / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(pid: int, process: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the server's process group, SIGKILL it if it outlasts STOP_GRACE."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            say(f"pid {pid} belongs to someone else: not stopping it")
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            gone = process.poll() is not None if process else not is_alive(pid)
            if gone:
                return
            time.sleep(0.2)
    say(f"pid {pid} did not stop")


def wait_healthy(
    server: Server, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> str | None:
    """None once the server answers, else why not (it exited, or the deadline passed)."""
    started = time.monotonic()
    next_note = started + PROGRESS_EVERY
    while True:
        if process is not None and process.poll() is not None:
            return f"the server exited with code {process.returncode}"
        if is_healthy(server.api_url):
            return None
        now = time.monotonic()
        if now - started > timeout:
            return f"the server did not answer {server.api_url}/health within {timeout:.0f} s"
        if now >= next_note:
            say(f"waiting for the Prefect server ({now - started:.0f} s)")
            next_note = now + PROGRESS_EVERY
        time.sleep(0.5)


def log_since(home: Path, offset: int) -> str:
    try:
        with open(home / LOG_FILE, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- commands


def start(home: Path, timeout: float) -> int:
    """Reuse the recorded server when it is alive and healthy, else start one."""
    with locked(home):
        current = read_state(home)
        if current is not None and is_alive(current.pid):
            if wait_healthy(current, min(timeout, REUSE_GRACE)) is None:
                say(f"reusing the Prefect server at {current.ui_url} (pid {current.pid})")
                print(current.api_url)
                return 0
            say(f"pid {current.pid} does not answer {current.api_url}/health: restarting it")
            terminate(current.pid)
        clear_state(home)
        for _ in range(START_ATTEMPTS):
            outcome = start_new(home, timeout)
            if isinstance(outcome, Server):
                print(outcome.api_url)
                return 0
            if "address already in use" not in outcome.lower():
                break
        say(f"could not start the Prefect server; its log is {home / LOG_FILE}:\n{outcome}")
        return 1


def start_new(home: Path, timeout: float) -> Server | str:
    """A healthy new server, or the log lines of a start that failed."""
    offset = (home / LOG_FILE).stat().st_size if (home / LOG_FILE).exists() else 0
    port = free_port()
    began = time.monotonic()
    say(f"starting a Prefect server on {HOST}:{port} (PREFECT_HOME={home})")
    process = launch(home, port)
    server = Server(process.pid, port)
    write_state(home, server)  # before it is healthy: `stop` can end a start cut short
    error = wait_healthy(server, timeout, process)
    if error is None:
        say(f"the Prefect server answered after {time.monotonic() - began:.1f} s")
        return server
    terminate(process.pid, process)
    clear_state(home)
    return f"{error}\n{log_since(home, offset)[-4000:]}"


def stop(home: Path) -> int:
    with locked(home):
        current = read_state(home)
        if current is None:
            say("no demo Prefect server is recorded; nothing to stop")
            return 0
        if is_alive(current.pid):
            terminate(current.pid)
            say(f"stopped the Prefect server at {current.ui_url} (pid {current.pid})")
        else:
            say(f"the recorded server (pid {current.pid}) was not running")
        clear_state(home)
        return 0


def running(home: Path) -> Server | None:
    """The recorded server if it is alive and healthy; says why not otherwise."""
    current = read_state(home)
    if current is None:
        say(f"not running (no {home / STATE_FILE})")
        return None
    if not is_alive(current.pid):
        say(f"not running (pid {current.pid} in {home / STATE_FILE} is gone)")
        return None
    if not is_healthy(current.api_url):
        say(f"pid {current.pid} runs but {current.api_url}/health does not answer (yet)")
        return None
    return current


def status(home: Path) -> int:
    server = running(home)
    if server is None:
        return 1
    print(f"running at {server.ui_url} (pid {server.pid}, PREFECT_HOME={home})")
    return 0


def url(home: Path, *, ui: bool) -> int:
    server = running(home)
    if server is None:
        return 1
    print(server.ui_url if ui else server.api_url)
    return 0


def ui_base(api_url: str) -> str | None:
    """The UI's URL for an API URL: ``PREFECT_UI_URL``, else the API URL without ``/api``."""
    if os.environ.get("PREFECT_UI_URL"):
        return os.environ["PREFECT_UI_URL"].rstrip("/")
    api_url = api_url.rstrip("/")
    return api_url.removesuffix("/api") if api_url.endswith("/api") else None


def latest_run_id(api_url: str, since: str) -> str | None:
    """The id of the newest ``dbt-orchestrate-build`` run that started at or after ``since``."""
    body = {
        "flows": {"name": {"any_": [FLOW_NAME]}},
        "flow_runs": {"start_time": {"after_": since}},
        "sort": "START_TIME_DESC",
        "limit": 1,
    }
    headers = {"Content-Type": "application/json"}
    if os.environ.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['PREFECT_API_KEY']}"
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/flow_runs/filter", json.dumps(body).encode(), headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            runs = json.loads(response.read())
    except (OSError, ValueError) as exc:
        say(f"could not ask {api_url} for the flow run ({exc})")
        return None
    return str(runs[0]["id"]) if runs else None


def show_run(api_url: str, since: str) -> int:
    """Print where to see the build in the UI; exit 1 when the run was not found."""
    ui = ui_base(api_url)
    run_id = latest_run_id(api_url, since)
    if ui is not None:
        print(f"Prefect UI:   {ui}")
    if run_id is None:
        say(f"no {FLOW_NAME} flow run started since {since}")
        return 1
    print(f"This run:     {ui}/runs/flow-run/{run_id}" if ui else f"Flow run id:  {run_id}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help="PREFECT_HOME and state (%(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start or reuse the server; print its API URL")
    begin.add_argument("--timeout", type=float, default=600.0, help="seconds (%(default)s)")
    commands.add_parser("stop", help="stop the server and remove its state file")
    commands.add_parser("status", help="exit 0 when the server runs and answers")
    address = commands.add_parser("url", help="print the running server's API URL")
    address.add_argument("--ui", action="store_true", help="the UI's URL instead")
    show = commands.add_parser("show-run", help="print the UI links of the latest build")
    show.add_argument("--api-url", required=True)
    show.add_argument("--since", required=True, help="ISO 8601 time the build began (UTC)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    home: Path = args.home.resolve()
    if args.command == "start":
        return start(home, args.timeout)
    if args.command == "stop":
        return stop(home)
    if args.command == "status":
        return status(home)
    if args.command == "url":
        return url(home, ui=args.ui)
    return show_run(args.api_url, args.since)


if __name__ == "__main__":
    raise SystemExit(main())
