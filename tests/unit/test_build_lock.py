"""One build per target dir: the lock file is taken, refused naming its holder,
taken over from a process that is gone, released however the build ends."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import pytest

from prefect_dbt_orchestrator.adapters.local.build_lock import (
    LOCK_NAME,
    BuildLockedError,
    build_lock,
)
from prefect_dbt_orchestrator.domain.errors import OrchestrationError, PlanError
from prefect_dbt_orchestrator.domain.redaction import REDACTED

COMMAND = ("dbt-orchestrate", "build", "--select", "a")
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="pid checks need os.kill(pid, 0)")


def _dead_pid() -> int:
    """A pid no process has: above the kernel's pid_max (Linux), else the largest pid_t."""
    limit = Path("/proc/sys/kernel/pid_max")
    return int(limit.read_text()) + 1 if limit.is_file() else 2**31 - 1


def _write_lock(target: Path, pid: int, host: str | None = None, **extra: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path = target / LOCK_NAME
    holder = {"pid": pid, "host": host or platform.node(), "started_at": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps({**holder, "command": "dbt-orchestrate build", **extra}))
    return path


def test_the_lock_file_names_this_process_while_the_build_runs(tmp_path: Path) -> None:
    with build_lock(tmp_path, command=COMMAND) as holder:
        data = json.loads((tmp_path / LOCK_NAME).read_text())

    assert data["pid"] == os.getpid() == holder.pid
    assert data["host"] == platform.node()
    assert data["command"] == "dbt-orchestrate build --select a"
    assert data["started_at"].endswith("Z")
    assert not (tmp_path / LOCK_NAME).exists()


@POSIX
def test_a_second_build_is_refused_naming_the_live_process_that_holds_the_lock(
    tmp_path: Path,
) -> None:
    other = os.getppid()  # alive: it started this test run
    path = _write_lock(tmp_path, other)
    before = path.read_bytes()

    with pytest.raises(BuildLockedError) as refused:
        with build_lock(tmp_path, command=COMMAND):
            pytest.fail("the body must not run")

    message = str(refused.value)
    assert f"pid {other} on {platform.node()}" in message
    assert "started 2026-01-01T00:00:00Z (dbt-orchestrate build)" in message
    assert str(path) in message and "Wait for it to end" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


def test_a_lock_held_in_this_process_refuses_a_nested_build(tmp_path: Path) -> None:
    with build_lock(tmp_path, command=COMMAND):
        with pytest.raises(BuildLockedError, match=f"pid {os.getpid()} "):
            with build_lock(tmp_path, command=COMMAND):
                pytest.fail("the body must not run")
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


@POSIX
def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid())

    with build_lock(tmp_path, command=COMMAND):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]

    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
def test_a_lock_whose_pid_now_belongs_to_another_process_is_taken_over(tmp_path: Path) -> None:
    # This pid is alive, but it started at another time than the holder did.
    _write_lock(tmp_path, os.getpid(), process_start="1")

    with build_lock(tmp_path, command=COMMAND) as holder:
        assert holder.process_start not in ("", "1")

    assert list(tmp_path.iterdir()) == []


def test_a_lock_of_another_host_is_refused_even_when_its_pid_is_unused_here(
    tmp_path: Path,
) -> None:
    _write_lock(tmp_path, _dead_pid(), host="build-box-7")

    with pytest.raises(BuildLockedError, match="on build-box-7,"):
        with build_lock(tmp_path, command=COMMAND):
            pytest.fail("the body must not run")


def test_a_half_written_lock_is_refused_while_fresh_and_taken_over_once_old(
    tmp_path: Path,
) -> None:
    path = tmp_path / LOCK_NAME
    path.write_text("")

    with pytest.raises(BuildLockedError):
        with build_lock(tmp_path, command=COMMAND):
            pytest.fail("the body must not run")
    os.utime(path, (0, 0))
    with build_lock(tmp_path, command=COMMAND):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_the_lock_is_released_when_the_build_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with build_lock(tmp_path, command=COMMAND):
            raise KeyboardInterrupt

    assert list(tmp_path.iterdir()) == []
    with build_lock(tmp_path, command=COMMAND):
        pass


def test_a_lock_another_build_took_over_is_left_in_place_at_the_end(tmp_path: Path) -> None:
    with build_lock(tmp_path, command=COMMAND):
        path = _write_lock(tmp_path, os.getpid() + 1)
        theirs = path.read_bytes()

    assert path.read_bytes() == theirs


def test_nothing_but_the_lock_is_written_and_a_missing_target_dir_is_left_missing(
    tmp_path: Path,
) -> None:
    existing = tmp_path / "target"
    existing.mkdir()
    (existing / "manifest.json").write_text("{}")
    missing = tmp_path / "nested" / "target"

    with build_lock(existing, command=COMMAND), build_lock(missing, command=COMMAND):
        assert [p.name for p in missing.iterdir()] == [LOCK_NAME]

    assert [p.name for p in existing.iterdir()] == ["manifest.json"]
    assert (existing / "manifest.json").read_text() == "{}"
    assert not missing.parent.exists()


def test_the_recorded_command_line_keeps_vars_and_secret_env_values_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_ENV_SECRET_TOKEN", "s3cr3t-value-123")
    command = ("dbt-orchestrate", "build", "--vars", "{password: hunter2-xyz}", "s3cr3t-value-123")

    with build_lock(tmp_path, command=command):
        text = (tmp_path / LOCK_NAME).read_text()

    assert "hunter2" not in text and "s3cr3t" not in text
    assert json.loads(text)["command"] == f"dbt-orchestrate build --vars {REDACTED} {REDACTED}"


def test_the_refusal_is_a_runtime_error_of_the_library_not_bad_input() -> None:
    error = BuildLockedError(Path("/p/target/.lock"), 42, "h", "2026-01-01T00:00:00Z", "")

    assert issubclass(BuildLockedError, OrchestrationError)
    assert issubclass(BuildLockedError, RuntimeError)
    assert not issubclass(BuildLockedError, PlanError)
    assert "pid 42 on h, started 2026-01-01T00:00:00Z;" in str(error)
