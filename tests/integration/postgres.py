"""A real PostgreSQL server for the integration tests, started through ``scripts/postgres``.

* ``postgres_server`` (session fixture): ``scripts/postgres --dir <fresh folder> start``
  once per session and ``stop`` at its end. A server that does not start FAILS
  the tests that use it (never a skip): the script installs PostgreSQL when it
  is missing and waits minutes for it.
* ``PostgresServer.env(prefix, schema)``: the ``<prefix>_HOST/PORT/...`` variables a
  profile reads (``DEMO_PG`` for ``demo/``, ``PG_SLEEP`` for ``projects/pg_sleep``);
  every build gets a schema of its own (``fresh_schema()``).
* ``peak_overlap(intervals)``: the most intervals open at one moment.
* ``python -m tests.integration.postgres limited-build ...``: one flow run of
  ``projects/pg_sleep`` under a global concurrency limit, for the test that runs
  two of them at once (dbt's state is process-wide: one build per process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "postgres"
PG_SLEEP_DIR = Path(__file__).resolve().parent / "projects" / "pg_sleep"
PG_SLEEP_MODELS = tuple(f"model.pg_sleep.sleep_{index}" for index in range(1, 7))
DEADLINE = 1800  # seconds scripts/postgres may take: an apt install on a slow machine
BARRIER_DEADLINE = 600.0  # seconds a limited-build worker waits for the other workers


@attrs.frozen
class PostgresServer:
    """A running server of ``scripts/postgres`` (trust authentication: no password)."""

    host: str
    port: int
    user: str
    database: str
    folder: Path

    def env(self, prefix: str, schema: str) -> dict[str, str]:
        """The variables a profile reads: ``<prefix>_HOST``, ``_PORT``, ``_USER``,
        ``_PASSWORD``, ``_DATABASE`` and ``_SCHEMA``."""
        values = {
            "HOST": self.host,
            "PORT": str(self.port),
            "USER": self.user,
            "PASSWORD": "",
            "DATABASE": self.database,
            "SCHEMA": schema,
        }
        return {f"{prefix}_{key}": value for key, value in values.items()}


def fresh_schema(label: str) -> str:
    """A schema no other build of the session uses."""
    return f"{label}_{uuid.uuid4().hex[:8]}"


def run_script(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--dir", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def parse_environment(stdout: str) -> dict[str, str]:
    """``KEY=value`` lines, as ``scripts/postgres start`` and ``status`` print them."""
    pairs = (line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def started(folder: Path) -> PostgresServer:
    """``scripts/postgres start``; fails the test (with the script's words) when it cannot."""
    done = run_script(folder, "start")
    assert done.returncode == 0, f"scripts/postgres start failed:\n{done.stderr[-4000:]}"
    values = parse_environment(done.stdout)
    return PostgresServer(
        host=values["PGHOST"],
        port=int(values["PGPORT"]),
        user=values["PGUSER"],
        database=values["PGDATABASE"],
        folder=folder,
    )


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, in a fresh folder the ``postgres``
    user can enter (pytest's own temp folders are closed to it)."""
    folder = Path(tempfile.gettempdir()) / f"prefect-dbt-orchestrator-tests-{uuid.uuid4().hex[:8]}"
    try:
        yield started(folder)
    finally:
        stopped = run_script(folder, "stop")
        assert stopped.returncode == 0, stopped.stderr[-4000:]


# ---------------------------------------------------------------- overlap


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def node_intervals(
    results: Mapping[str, Mapping[str, Any]], unique_ids: Iterable[str]
) -> list[tuple[datetime, datetime]]:
    """Each node's (started_at, completed_at), from its result's ``timing``."""
    spans = []
    for uid in unique_ids:
        timing = results[uid]["timing"]
        spans.append((moment(timing["started_at"]), moment(timing["completed_at"])))
    return spans


def peak_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment (one that ends as another starts: not both)."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),  # at a tie, the end comes first
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


# ---------------------------------------------------------------- limited-build worker


def wait_for_parties(barrier: Path, name: str, parties: int) -> None:
    """Mark ``name`` ready in ``barrier`` and wait until ``parties`` workers are."""
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / f"{name}.ready").touch()
    deadline = time.monotonic() + BARRIER_DEADLINE
    while len(list(barrier.glob("*.ready"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the other workers did not reach {barrier}")
        time.sleep(0.05)


@attrs.frozen
class LimitedBuild:
    """One worker's build: ``project`` under the global concurrency limit ``limit``."""

    project: Path
    limit: str
    out: Path
    barrier: Path
    parties: int
    sleep_seconds: float


def limited_build(job: LimitedBuild) -> None:
    """Plan (dbt parses here, before the barrier), wait for the other workers,
    then build the project PER_NODE in a flow with ``concurrency=limit``.

    Writes ``{"began_at": <when the flow was called>, "results": <run_build's>}``.
    """
    from prefect import flow

    from prefect_dbt_orchestrator import ExecutionMode, PrefectDbtOrchestrator, PrefectDbtSettings

    orchestrator = PrefectDbtOrchestrator(
        settings=PrefectDbtSettings(project_dir=job.project, profiles_dir=job.project),
        execution_mode=ExecutionMode.PER_NODE,
        concurrency=job.limit,
        raise_on_failure=False,
        task_tags=False,
    )
    sleep = ["--vars", f"{{sleep_seconds: {job.sleep_seconds}}}"]
    orchestrator.plan(extra_cli_args=sleep)

    @flow(name="shared-limit-build", log_prints=False)
    def build() -> dict[str, dict[str, Any]]:
        return orchestrator.run_build(extra_cli_args=sleep)

    wait_for_parties(job.barrier, job.project.name, job.parties)
    began_at = datetime.now(UTC).isoformat()
    record = {"began_at": began_at, "results": build()}
    job.out.write_text(json.dumps(record), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="test helpers for PostgreSQL")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("limited-build", help="one build under a concurrency limit")
    worker.add_argument("--project", type=Path, required=True)
    worker.add_argument("--limit", required=True, help="the global concurrency limit's name")
    worker.add_argument("--out", type=Path, required=True, help="the results as JSON")
    worker.add_argument("--barrier", type=Path, required=True, help="a folder shared by workers")
    worker.add_argument("--parties", type=int, default=2)
    worker.add_argument("--sleep", type=float, default=2.0, help="each model's pg_sleep")
    args = parser.parse_args(argv)
    limited_build(
        LimitedBuild(args.project, args.limit, args.out, args.barrier, args.parties, args.sleep)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
