"""A run_results.json is never half-written, whenever its writer is killed.

A build killed mid-way leaves the previous file untouched; a writer killed
after writing its bytes but before the rename leaves the old file whole,
and its temp file is removed by the next write; kills at random points of a
loop of large writes (a seeded RNG picks the delays) each leave a whole file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefect_dbt_orchestrator.adapters.local.run_results_file import (
    remove_stale_temps,
    write_run_results,
)
from tests.integration.conftest import SlowProject
from tests.integration.test_interrupts_and_timeouts import _cli, _wait_for

pytestmark = pytest.mark.integration

# Writes alternating documents of ~8 MB each, forever, telling us after each.
WRITER = """
import os, sys, time
from pathlib import Path
from prefect_dbt_orchestrator.adapters.local.run_results_file import write_run_results

if sys.argv[2] == "hang":  # the second write stops after its bytes, before the rename
    real_fsync, calls = os.fsync, []
    def fsync(fd):
        calls.append(fd)
        real_fsync(fd)
        if len(calls) == 2:
            print("hanging", flush=True)
            time.sleep(3600)
    os.fsync = fsync
path, count = Path(sys.argv[1]), 0
filler = "x" * 200
while True:
    count += 1
    results = [{"unique_id": f"model.p.m{i}", "status": "success", "message": filler}
               for i in range(40000)]
    write_run_results(path, {"generation": count, "results": results, "args": {}})
    print(count, flush=True)
"""


def _whole(path: Path) -> int:
    """The generation of the whole document at ``path``."""
    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(document["results"]) == 40000
    generation: int = document["generation"]
    return generation


def _writer(path: Path, mode: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", WRITER, str(path), mode]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _kill(writer: subprocess.Popen[str]) -> None:
    writer.send_signal(signal.SIGKILL)
    writer.communicate()


def test_a_writer_killed_after_writing_its_bytes_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "target" / "run_results.json"
    writer = _writer(path, "hang")
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "1"
    assert writer.stdout.readline().strip() == "hanging"  # generation 2 is in its temp file
    _kill(writer)

    assert _whole(path) == 1
    [left] = path.parent.glob(".run_results.json.*.tmp")
    assert json.loads(left.read_text(encoding="utf-8"))["generation"] == 2
    write_run_results(path, {"generation": 3, "results": [{}] * 40000, "args": {}})
    assert list(path.parent.glob(".run_results.json.*.tmp")) == []
    assert _whole(path) == 3


def test_a_writer_killed_at_random_points_leaves_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "target" / "run_results.json"
    rng = random.Random(11)
    for _ in range(8):
        writer = _writer(path, "loop")
        assert writer.stdout is not None
        writer.stdout.readline()  # one whole write done: the next one is under way
        time.sleep(rng.uniform(0.0, 0.3))
        _kill(writer)

        assert _whole(path) >= 1  # parses, all of it
        write_run_results(path, {"generation": 0, "results": [{}] * 40000, "args": {}})
        assert list(path.parent.glob(".run_results.json.*.tmp")) == []
        assert _whole(path) == 0


def test_a_live_writer_s_temp_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    mine = tmp_path / f".run_results.json.{os.getpid()}.1.abcd.tmp"
    mine.write_text("in progress", encoding="utf-8")
    gone = tmp_path / ".run_results.json.999999999.1.abcd.tmp"
    gone.write_text("left by a killed writer", encoding="utf-8")

    assert remove_stale_temps(path) == [gone]
    assert mine.exists()


def test_a_build_killed_mid_way_keeps_the_previous_run_results(
    slow_project: SlowProject, tmp_path: Path, prefect_api_url: str
) -> None:
    path = slow_project.project_dir / "target" / "run_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = {"generation": 7, "results": [{}] * 40000, "args": {}}
    write_run_results(path, previous)

    build = _cli(slow_project, tmp_path, prefect_api_url, "--write-run-results")
    try:
        _wait_for(slow_project.marker, build)  # the slow query runs
    finally:
        build.send_signal(signal.SIGKILL)
        build.communicate()

    assert _whole(path) == 7
    assert list(path.parent.glob(".run_results.json.*.tmp")) == []
