"""One build per target directory at a time: a lock file there; Prefect-free, dbt-free.

``build_lock(target_dir)`` creates ``<target>/.dbt-orchestrator.lock``
atomically (``O_CREAT | O_EXCL``) with JSON naming its process (pid, host,
start time, command line), and removes it when the build ends, however it
ends. A second build of the same target is refused at once, before it parses
or writes anything; a lock left by a process that is gone (its pid is not
alive on this host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs

from prefect_dbt_orchestrator.domain.errors import OrchestrationError
from prefect_dbt_orchestrator.domain.redaction import Secrets, secret_env_values

LOCK_NAME = ".dbt-orchestrator.lock"
# A lock file is written right after it is created: one that stays unreadable
# this long was left half-written by a process that died.
_UNREADABLE_GRACE_SECONDS = 1.0
_ATTEMPTS = 5


@attrs.frozen
class LockHolder:
    """The process a lock file names."""

    pid: int
    host: str
    started_at: str
    command: str
    token: str = ""
    # The kernel's start time of ``pid`` (Linux), so a reused pid is not taken
    # for the holder: in a container every run may be pid 1.
    process_start: str = ""


@attrs.frozen
class BuildLockedError(OrchestrationError, RuntimeError):
    """Another build of the same project (same target path) is running.

    A ``RuntimeError``, not a ``PlanError``: the request is valid, the
    project is busy, and the same call succeeds once the other build ends.
    """

    lock_path: Path
    pid: int
    host: str
    started_at: str
    command: str

    def __str__(self) -> str:
        command = f" ({self.command})" if self.command else ""
        return (
            f"another build of this project is running: pid {self.pid} on {self.host}, "
            f"started {self.started_at}{command}; it holds {self.lock_path}. Wait for it to "
            "end (or stop it), then build again; a lock whose process is gone is taken "
            f"over by the next build, or delete {self.lock_path} if that build is gone"
        )


def _this_process(command: Sequence[str] | None) -> LockHolder:
    # The command line is stored redacted: --vars and DBT_ENV_SECRET* values stay out.
    args = Secrets(secret_env_values(os.environ)).redact_args(
        sys.argv if command is None else command
    )
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    pid = os.getpid()
    return LockHolder(
        pid, platform.node(), started, " ".join(args), uuid.uuid4().hex, _process_start(pid)
    )


def _process_start(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot); ""
    where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _read(path: Path) -> LockHolder | None:
    """The holder a lock file names; None when it cannot be read as one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(
            int(data["pid"]),
            str(data["host"]),
            str(data["started_at"]),
            str(data.get("command", "")),
            str(data.get("token", "")),
            str(data.get("process_start", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill would terminate it: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def _is_stale(path: Path, holder: LockHolder | None) -> bool:
    """A lock whose process is gone from this host, or left half-written."""
    if holder is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age >= _UNREADABLE_GRACE_SECONDS
    if holder.host != platform.node():
        return False  # its pid cannot be checked from here
    if not _pid_alive(holder.pid):
        return True
    now = _process_start(holder.pid)
    return bool(holder.process_start and now and now != holder.process_start)


def _create(path: Path, holder: LockHolder) -> bool:
    """Create the lock file holding ``holder``; False when one exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(attrs.asdict(holder), out)
        out.flush()
        os.fsync(out.fileno())
    return True


def _take_over(path: Path, judged: LockHolder | None) -> None:
    """Move a stale lock aside, unless it changed since it was judged stale
    (another build took it over first): then put it back untouched."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != judged:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink()


def _acquire(path: Path, me: LockHolder) -> None:
    for _ in range(_ATTEMPTS):
        if _create(path, me):
            return
        holder = _read(path)
        if _is_stale(path, holder):
            _take_over(path, holder)
            continue
        if holder is not None:
            raise BuildLockedError(path, holder.pid, holder.host, holder.started_at, holder.command)
        time.sleep(0.05)  # being written right now: read it again
    holder = _read(path) or LockHolder(0, "unknown host", "at an unknown time", "")
    raise BuildLockedError(path, holder.pid, holder.host, holder.started_at, holder.command)


def _release(path: Path, me: LockHolder) -> None:
    if _read(path) == me:  # never remove a lock that another build took over
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(target_dir: Path, *, command: Sequence[str] | None = None) -> Iterator[LockHolder]:
    """Hold the build lock of ``target_dir`` for the ``with`` block.

    ``command`` is recorded (redacted) as the holder's command line; it
    defaults to ``sys.argv``. A target dir that did not exist is created
    (with its parents), and removed again when still empty at the end.

    Raises:
        BuildLockedError: another live process holds the lock.
    """
    target = Path(target_dir)
    created = [d for d in (target, *target.parents) if not d.exists()]
    target.mkdir(parents=True, exist_ok=True)
    path = target / LOCK_NAME
    me = _this_process(command)
    try:
        _acquire(path, me)
    except BaseException:
        _remove_if_empty(created)
        raise
    try:
        yield me
    finally:
        _release(path, me)
        _remove_if_empty(created)


def _remove_if_empty(created: Sequence[Path]) -> None:
    """Remove the folders the lock created (deepest first) that are still empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # not empty: dbt wrote into it
            return
