"""The bundled demo project (``demo/``) builds with real dbt, and its deliberate
failure (``--vars '{fail_model: true}'``) errors and skips exactly what the
demo's README says.

Each test copies the project to ``tmp_path`` and points it at its own DuckDB
file through ``DEMO_DUCKDB_PATH``, so runs never touch ``demo/`` itself.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dbt.cli.main import dbtRunner

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"

pytestmark = pytest.mark.integration

FAILING_MODEL = "model.demo.fct_rides"

# Written out from the demo's design (see demo/README.md), not taken from a run.
SKIPPED_WHEN_FCT_RIDES_FAILS = frozenset(
    {
        "test.demo.unique_fct_rides_ride_id.1e261c3a40",
        "test.demo.not_null_fct_rides_ride_id.bbf8a3b0d7",
        "test.demo.relationships_fct_rides_start_station_id__station_id__ref_dim_stations_"
        ".c8b1147660",
        "model.demo.mart_station_daily",
        "unit_test.demo.mart_station_daily.test_station_daily_counts_completed_rides_only",
        "test.demo.not_null_mart_station_daily_station_id.e666921fb0",
        "test.demo.assert_station_daily_reconciles_with_fct_rides",
        "model.demo.mart_bike_usage",
        "test.demo.unique_mart_bike_usage_bike_id.344ba5ac73",
    }
)

# What one `dbt build` runs, by resource type (the ephemeral model is not run).
EXPECTED_COUNTS = {
    "seed": 3,
    "model": 7,
    "snapshot": 1,
    "test": 17,
    "unit_test": 1,
}


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "demo"
    shutil.copytree(
        DEMO_DIR,
        project,
        ignore=shutil.ignore_patterns("target", "logs", "*.duckdb", "*.duckdb.wal", ".user.yml"),
    )
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    return project


def _build(project: Path, *extra: str) -> Any:
    # No dbt.log: dbt_common drops its file handler on the next invocation without
    # closing it, which surfaces as a ResourceWarning (an error under our
    # filterwarnings). Console logs are still captured by pytest.
    return dbtRunner().invoke(
        [
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(project / "target"),
            "--log-level-file",
            "none",
            *extra,
        ]
    )


def _statuses(res: Any) -> dict[str, str]:
    return {r.node.unique_id: str(r.status) for r in res.result.results}


def test_plain_build_passes_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, monkeypatch)

    # The second build takes the incremental and snapshot paths on existing tables.
    for _ in range(2):
        res = _build(project)
        assert res.exception is None
        assert res.success, _statuses(res)
        statuses = _statuses(res)
        not_ok = {uid for uid, status in statuses.items() if status not in ("success", "pass")}
        assert not_ok == set()
        counts = Counter(uid.split(".", 1)[0] for uid in statuses)
        assert dict(counts) == EXPECTED_COUNTS
        assert FAILING_MODEL in statuses
        assert "model.demo.int_rides_enriched" not in statuses  # ephemeral


def test_fail_model_var_errors_one_model_and_skips_its_descendants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path, monkeypatch)

    res = _build(project, "--vars", "{fail_model: true}")

    assert res.exception is None
    assert not res.success
    statuses = _statuses(res)
    assert sum(EXPECTED_COUNTS.values()) == len(statuses)
    errored = {uid for uid, status in statuses.items() if status == "error"}
    skipped = {uid for uid, status in statuses.items() if status == "skipped"}
    assert errored == {FAILING_MODEL}
    assert skipped == SKIPPED_WHEN_FCT_RIDES_FAILS
    # Every other node, including unrelated branches, still succeeds.
    rest = set(statuses) - errored - skipped
    assert {statuses[uid] for uid in rest} <= {"success", "pass"}
    assert {"snapshot.demo.snap_bikes", "model.demo.dim_stations"} <= rest
