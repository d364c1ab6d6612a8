"""A throwaway PostgreSQL server for the demo and the tests: start, status, stop.

Standard library only; ``scripts/postgres`` runs it with ``python3``:

    scripts/postgres start     # prints PGHOST=... PGPORT=... PGUSER=... PGDATABASE=...
    scripts/postgres status    # the same lines, exit 0, when it runs and accepts connections
    scripts/postgres stop      # stops it and removes the cluster
    scripts/postgres --dir /tmp/my-cluster start   # another cluster beside the default one

``start`` installs Debian's ``postgresql`` package when its server programs are
missing (as root, with ``apt-get``), creates a cluster in ``--dir`` (default
``$TMPDIR/prefect-dbt-orchestrator-postgres``) with ``initdb``, and runs
``postgres`` on a free ``127.0.0.1`` port with trust authentication (no
password: the server listens on loopback only and is for tests), no Unix
socket, and fsync off (a throwaway cluster need not survive a crash). As root
the server runs as the ``postgres`` system user (PostgreSQL refuses root), and
``--dir`` belongs to it. ``start`` waits for ``pg_isready`` for minutes, not
seconds, creates the database, records everything in ``server.json`` there,
and prints the connection as libpq's ``KEY=value`` variables, so
``export $(scripts/postgres start)`` makes ``psql`` work. A later ``start``
reuses a server that is alive and ready. The server runs in its own session:
it outlives the script until ``stop``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DIR = Path(tempfile.gettempdir()) / "prefect-dbt-orchestrator-postgres"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
LOCK_FILE = ".lock"
DATA_DIR = "data"
HOST = "127.0.0.1"
SYSTEM_USER = "postgres"  # the user Debian's package creates; the server runs as it under root
PROGRAMS = ("initdb", "postgres", "pg_isready", "createdb")
PROGRESS_EVERY = 10.0  # seconds between "waiting for PostgreSQL" lines
STOP_GRACE = 120.0  # fast shutdown, then immediate shutdown, then SIGKILL
START_ATTEMPTS = 3  # a free port can be taken before the server binds it
# A cluster for tests: no durability (fsync, full pages, synchronous commit).
SETTINGS = """
# Written by scripts/postgres: a throwaway cluster on loopback, for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


class Failure(Exception):
    """Why a command cannot go on, with the fix; printed without a traceback."""


@dataclass(frozen=True)
class Server:
    """A server this script started, as ``server.json`` records it."""

    pid: int
    port: int
    user: str
    database: str
    bindir: str
    host: str = HOST

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def environment(self) -> str:
        """libpq's variables, one ``KEY=value`` line each."""
        values = {
            "PGHOST": self.host,
            "PGPORT": self.port,
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        return "\n".join(f"{key}={value}" for key, value in values.items())


def say(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only the answer."""
    print(f"postgres: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- programs


def find_bindir(explicit: str | None) -> Path | None:
    """The folder of ``initdb``, ``postgres`` and ``pg_isready``: ``--bindir``, else the
    newest ``/usr/lib/postgresql/*/bin`` (Debian), else the folder of ``pg_ctl`` on PATH."""
    if explicit:
        return Path(explicit)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        if all((Path(candidate) / name).is_file() for name in PROGRAMS):
            return Path(candidate)
    return None


def install() -> None:
    """``apt-get install -y postgresql`` (after ``apt-get update`` if the first try fails)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Failure(
            "PostgreSQL's server programs (initdb, postgres, pg_isready) were not found "
            "under /usr/lib/postgresql/*/bin: install them (Debian: sudo apt-get install -y "
            "postgresql) or give --bindir"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    began = time.monotonic()
    say(f"installing PostgreSQL: {' '.join(command)}")
    installed = run_quietly(command, env)
    if not installed:  # a fresh machine may have no package lists yet
        say("updating the package lists (apt-get update) and trying again")
        installed = run_quietly(["apt-get", "update"], env) and run_quietly(command, env)
    if installed:
        say(f"installed PostgreSQL in {time.monotonic() - began:.0f} s")
        return
    raise Failure("apt-get install -y postgresql failed (see above): fix apt, then start again")


def run_quietly(command: list[str], env: dict[str, str]) -> bool:
    """Run ``command``; on failure show the end of its output."""
    done = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        say(f"{' '.join(command)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.returncode == 0


def server_programs(explicit: str | None) -> Path:
    bindir = find_bindir(explicit)
    if bindir is None and explicit is None:
        install()
        bindir = find_bindir(None)
    if bindir is None or not all((bindir / name).is_file() for name in PROGRAMS):
        where = bindir or "/usr/lib/postgresql/*/bin"
        raise Failure(f"{', '.join(PROGRAMS)} are not all in {where}: give the right --bindir")
    return bindir


# ---------------------------------------------------------------- the system user


@dataclass(frozen=True)
class RunAs:
    """Whom the server runs as: the ``postgres`` system user under root, else ourselves."""

    uid: int
    gid: int
    name: str

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    @property
    def user(self) -> int | None:
        """``subprocess``'s ``user=``/``group=`` (None: stay who we are)."""
        return self.uid if self.switches else None

    @property
    def group(self) -> int | None:
        return self.gid if self.switches else None

    @property
    def extra_groups(self) -> list[int] | None:
        return [] if self.switches else None  # drop root's supplementary groups


def server_user() -> RunAs:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise Failure(
            f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} system user: "
            "install the postgresql package (apt-get install -y postgresql), which creates it"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def check_reachable(folder: Path, owner: RunAs) -> None:
    """The server's user must be able to enter every folder above ``folder``."""
    if not owner.switches:
        return
    for parent in folder.parents:
        if not parent.exists():
            continue  # made by ``mkdir`` with the usual umask: open to everyone
        mode = parent.stat()
        if mode.st_uid == owner.uid or mode.st_mode & stat.S_IXOTH:
            continue
        if mode.st_gid == owner.gid and mode.st_mode & stat.S_IXGRP:
            continue
        raise Failure(
            f"the {owner.name!r} user cannot enter {parent} (mode "
            f"{stat.S_IMODE(mode.st_mode):o}), so the server cannot use {folder}: give a --dir "
            f"under a folder everyone may enter, such as {tempfile.gettempdir()}"
        )


# ---------------------------------------------------------------- state


def read_state(folder: Path) -> Server | None:
    """The recorded server, or None when there is none (or the file is unreadable)."""
    try:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        return Server(
            pid=int(data["pid"]),
            port=int(data["port"]),
            user=str(data["user"]),
            database=str(data["database"]),
            bindir=str(data["bindir"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(folder: Path, server: Server) -> None:
    temporary = folder / f"{STATE_FILE}.tmp"
    record = asdict(server) | {"data_dir": str(folder / DATA_DIR), "log": str(folder / LOG_FILE)}
    temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(temporary, folder / STATE_FILE)


def is_ours(folder: Path) -> bool:
    """Whether ``folder`` holds a cluster this script made (only those are removed)."""
    return (folder / STATE_FILE).exists() or (folder / LOCK_FILE).exists()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One start or stop at a time per cluster folder."""
    if folder.exists() and any(folder.iterdir()) and not is_ours(folder):
        raise Failure(
            f"{folder} exists and is not a cluster of scripts/postgres: "
            "remove it or give another --dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------- probes


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs and, where /proc says, is a PostgreSQL process (not a zombie,
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
    return b"postgres" in command  # a zombie's cmdline is empty


def is_ready(server: Server) -> bool:
    """``pg_isready`` says the server accepts connections."""
    command = [str(Path(server.bindir) / "pg_isready"), "--quiet", "--timeout", "10"]
    command += ["--host", server.host, "--port", str(server.port)]
    command += ["--username", server.user, "--dbname", "postgres"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return done.returncode == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def log_since(folder: Path, offset: int) -> str:
    try:
        with open(folder / LOG_FILE, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- the cluster


def create_cluster(folder: Path, bindir: Path, owner: RunAs, user: str) -> None:
    """``initdb`` into ``folder/data`` as the server's user, then our settings."""
    os.chmod(folder, 0o700)
    if owner.switches:
        for path in (folder, folder / LOCK_FILE):
            os.chown(path, owner.uid, owner.gid)
    command = [str(bindir / "initdb"), "--pgdata", str(folder / DATA_DIR), "--username", user]
    command += ["--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"]
    say(f"creating a cluster in {folder / DATA_DIR}")
    done = subprocess.run(
        command,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        user=owner.user,
        group=owner.group,
        extra_groups=owner.extra_groups,
    )
    if done.returncode != 0:
        raise Failure(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    with open(folder / DATA_DIR / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(SETTINGS)


def launch(folder: Path, bindir: Path, owner: RunAs, port: int) -> subprocess.Popen[bytes]:
    """``postgres`` in a session of its own, as the server's user, logging to server.log."""
    command = [str(bindir / "postgres"), "-D", str(folder / DATA_DIR), "-p", str(port)]
    with open(folder / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=owner.user,
            group=owner.group,
            extra_groups=owner.extra_groups,
        )


def wait_ready(server: Server, timeout: float, process: subprocess.Popen[bytes]) -> str | None:
    """None once the server accepts connections, else why not (it exited, or time ran out)."""
    started = time.monotonic()
    next_note = started + PROGRESS_EVERY
    while True:
        if process.poll() is not None:
            return f"postgres exited with code {process.returncode}"
        if is_ready(server):
            return None
        now = time.monotonic()
        if now - started > timeout:
            return (
                f"postgres did not accept connections on port {server.port} within {timeout:.0f} s"
            )
        if now >= next_note:
            say(f"waiting for PostgreSQL to accept connections ({now - started:.0f} s)")
            next_note = now + PROGRESS_EVERY
        time.sleep(0.3)


def create_database(server: Server) -> None:
    if server.database == "postgres":
        return
    command = [str(Path(server.bindir) / "createdb"), "--host", server.host]
    command += ["--port", str(server.port), "--username", server.user, server.database]
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise Failure(f"createdb {server.database} failed: {done.stderr.strip()}")


def terminate(pid: int) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL of the process group."""
    for sig, grace in ((signal.SIGINT, STOP_GRACE), (signal.SIGQUIT, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def remove_cluster(folder: Path) -> None:
    """Delete the cluster folder: data, log, state (only a folder this script made)."""
    if folder.exists() and is_ours(folder):
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Request:
    folder: Path
    bindir: str | None
    user: str
    database: str
    timeout: float


def start(request: Request) -> int:
    """Reuse the recorded server when it is alive and ready, else start a new cluster."""
    bindir = server_programs(request.bindir)
    owner = server_user()
    folder = request.folder
    check_reachable(folder, owner)
    with locked(folder):
        current = read_state(folder)
        if current is not None and is_alive(current.pid) and is_ready(current):
            say(f"reusing the PostgreSQL server on {current.address} (pid {current.pid})")
            print(current.environment())
            return 0
        if current is not None:
            say(f"the recorded server (pid {current.pid}) is not ready: replacing its cluster")
            if is_alive(current.pid):
                terminate(current.pid)
        shutil.rmtree(folder / DATA_DIR, ignore_errors=True)
        for stale in (folder / STATE_FILE, folder / LOG_FILE):
            stale.unlink(missing_ok=True)
        create_cluster(folder, bindir, owner, request.user)
        server = start_server(request, bindir, owner)
        create_database(server)
        print(server.environment())
        return 0


def start_server(request: Request, bindir: Path, owner: RunAs) -> Server:
    """A ready server on a free port (another port when the first one was taken)."""
    error = ""
    for _ in range(START_ATTEMPTS):
        log = request.folder / LOG_FILE
        offset = log.stat().st_size if log.exists() else 0
        port = free_port()
        began = time.monotonic()
        say(f"starting PostgreSQL on {HOST}:{port} (cluster {request.folder})")
        process = launch(request.folder, bindir, owner, port)
        server = Server(process.pid, port, request.user, request.database, str(bindir))
        write_state(request.folder, server)  # before it is ready: `stop` can end a start cut short
        reason = wait_ready(server, request.timeout, process)
        if reason is None:
            say(f"PostgreSQL accepted connections after {time.monotonic() - began:.1f} s")
            return server
        terminate(process.pid)
        (request.folder / STATE_FILE).unlink(missing_ok=True)
        error = f"{reason}\n{log_since(request.folder, offset)[-4000:]}"
        if "could not bind" not in error and "already in use" not in error:
            break
    raise Failure(f"could not start PostgreSQL; its log is {request.folder / LOG_FILE}:\n{error}")


def stop(folder: Path) -> int:
    if not is_ours(folder):
        say(f"no PostgreSQL cluster of scripts/postgres in {folder}; nothing to stop")
        return 0
    with locked(folder):
        current = read_state(folder)
        if current is not None and is_alive(current.pid):
            terminate(current.pid)
            say(f"stopped the PostgreSQL server on {current.address} (pid {current.pid})")
        elif current is not None:
            say(f"the recorded server (pid {current.pid}) was not running")
        remove_cluster(folder)
        say(f"removed the cluster {folder}")
        return 0


def status(folder: Path) -> int:
    current = read_state(folder)
    if current is None:
        say(f"not running (no {folder / STATE_FILE}); start it with scripts/postgres start")
        return 1
    if not is_alive(current.pid):
        say(f"not running (pid {current.pid} in {folder / STATE_FILE} is gone)")
        return 1
    if not is_ready(current):
        say(f"pid {current.pid} runs but does not accept connections on port {current.port} (yet)")
        return 1
    print(current.environment())
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="the cluster's folder (%(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start or reuse the server; print its PG* variables")
    begin.add_argument("--timeout", type=float, default=600.0, help="seconds (%(default)s)")
    begin.add_argument("--user", default="dbt", help="superuser to create (%(default)s)")
    begin.add_argument("--database", default="dbt", help="database to create (%(default)s)")
    begin.add_argument("--bindir", help="folder of initdb and postgres (found when not given)")
    commands.add_parser("stop", help="stop the server and remove its cluster")
    commands.add_parser(
        "status", help="print its PG* variables; exit 0 when it accepts connections"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder: Path = args.dir.absolute()
    try:
        if args.command == "start":
            return start(Request(folder, args.bindir, args.user, args.database, args.timeout))
        if args.command == "stop":
            return stop(folder)
        return status(folder)
    except Failure as failure:
        say(f"error: {failure}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
