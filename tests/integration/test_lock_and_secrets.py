"""One build per project at a time, and secrets stay out of every output.

Real dbt-duckdb on copies of the demo project, real Prefect server: the lock
is held by another real process; the secrets are searched for in the result
dict, the console, and the logs, task runs and artifact read back from the API.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from prefect_dbt_orchestrator import ExecutionMode, PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.local.build_lock import LOCK_NAME, BuildLockedError
from prefect_dbt_orchestrator.domain.redaction import REDACTED
from tests.integration.conftest import DEMO_DIR, DEMO_NODE_COUNT, contract_statuses, copy_project
from tests.integration.test_failures_visible import _in_flow_state, read_back

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-value-123"
PASSWORD = "hunter2-xyz"
SECRET_VARS = ["--vars", f"{{password: {PASSWORD}}}"]
# A SQL model that renders a --vars password into SQL that fails (DuckDB's
# message quotes the failing line), and a Python model whose error echoes a
# DBT_ENV_SECRET value (dbt forbids secret env vars in SQL models).
LEAKY_SQL = 'select \'{{ var("password", "none") }}\' as x from a_missing_table\n'
LEAKY_PY = """import os


def model(dbt, session):
    bikes = dbt.ref("stg_bikes")
    if bikes is not None:
        raise RuntimeError("cannot connect with token " + os.environ["DBT_ENV_SECRET_TOKEN"])
    return bikes
"""
LEAKY_SQL_ID = "model.demo.leaky_sql"
LEAKY_PY_ID = "model.demo.leaky_py"

_HOLDER = """
import sys
from pathlib import Path
from prefect_dbt_orchestrator.adapters.local.build_lock import build_lock

with build_lock(Path(sys.argv[1]), command=["holder-build", "--select", "all"]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _orchestrator(project: Path, **options: Any) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    return PrefectDbtOrchestrator(settings=settings, **options)


def _hold_lock(target: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_build_is_refused_at_once_naming_the_holder_and_target_is_untouched(
    demo_project: Path,
) -> None:
    orchestrator = _orchestrator(demo_project)
    orchestrator.plan()  # parses: target/manifest.json exists (plan() takes no lock)
    manifest = demo_project / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    holder = _hold_lock(demo_project / "target")
    try:
        with pytest.raises(BuildLockedError) as refused:
            orchestrator.run_build()  # refused while the holder still holds it: no waiting
        assert holder.poll() is None
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it: the lock file stays behind
        holder.communicate()  # and its pipes are closed

    message = str(refused.value)
    assert f"pid {holder.pid} on " in message and "(holder-build --select all)" in message
    assert manifest.stat().st_mtime_ns == before
    assert (demo_project / "target" / LOCK_NAME).exists()
    results = orchestrator.run_build()  # its holder is gone: the stale lock is taken over
    assert set(contract_statuses(results).values()) == {"success"}
    assert len(results) == DEMO_NODE_COUNT
    assert not (demo_project / "target" / LOCK_NAME).exists()


def test_a_build_after_the_holder_released_the_lock_runs(demo_project: Path) -> None:
    holder = _hold_lock(demo_project / "target")
    with pytest.raises(BuildLockedError, match=f"pid {holder.pid} "):
        _orchestrator(demo_project).run_build(select="+stg_bikes")
    holder.communicate("")  # ends the holder's with block: it removes its lock

    assert holder.returncode == 0
    results = _orchestrator(demo_project).run_build(select="+stg_bikes")
    assert results["model.demo.stg_bikes"]["status"] == "success"
    assert set(contract_statuses(results).values()) == {"success"}


@pytest.fixture
def leaky_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = copy_project(DEMO_DIR, tmp_path / "demo")
    (project / "models" / "leaky_sql.sql").write_text(LEAKY_SQL, encoding="utf-8")
    (project / "models" / "leaky_py.py").write_text(LEAKY_PY, encoding="utf-8")
    monkeypatch.setenv("DEMO_DUCKDB_PATH", str(tmp_path / "demo.duckdb"))
    monkeypatch.setenv("DBT_ENV_SECRET_TOKEN", TOKEN)
    return project


def _everything_said(flow_run_id: Any, results: object, console: str) -> dict[str, str]:
    run, tasks, artifacts, logs = read_back(flow_run_id)
    states = [f"{t.name}: {t.state.name} {t.state.message}" for t in tasks if t.state]
    return {
        "results": json.dumps(results),
        "console": console,
        "logs": "\n".join(log.message for log in logs),
        "task states": "\n".join(states),
        "flow state": str(run.state.message if run.state else ""),
        "artifact": json.dumps([a.data for a in artifacts]),
    }


# dbt-duckdb gives each thread that runs a Python model an asyncio loop it never
# closes (_ensure_event_loop in run_python_job): ResourceWarnings at collection.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_secret_env_values_and_vars_appear_in_no_output_of_a_failing_build(
    leaky_project: Path, mode: ExecutionMode, capfd: pytest.CaptureFixture[str]
) -> None:
    orchestrator = _orchestrator(leaky_project, execution_mode=mode, raise_on_failure=False)
    kept: list[object] = []

    flow_run_id = _in_flow_state(lambda: orchestrator.run_build(extra_cli_args=SECRET_VARS), kept)

    results: dict[str, dict[str, Any]] = kept[0]  # type: ignore[assignment]
    said = _everything_said(flow_run_id, results, "".join(capfd.readouterr()))
    for secret in (TOKEN, PASSWORD):
        leaks = [where for where, text in said.items() if secret in text]
        assert leaks == [], f"{secret} appears in {leaks}"
    assert results[LEAKY_SQL_ID]["status"] == results[LEAKY_PY_ID]["status"] == "error"
    # The secrets were there to scrub: DuckDB quotes the SQL that rendered the
    # password; dbt itself already masks DBT_ENV_SECRET values ("*****").
    sql_error, py_error = (results[uid]["error"]["message"] for uid in (LEAKY_SQL_ID, LEAKY_PY_ID))
    assert f"select '{REDACTED}' as x from a_missing_table" in sql_error, sql_error
    assert "cannot connect with token *****" in py_error, py_error
    for uid in (LEAKY_SQL_ID, LEAKY_PY_ID):
        args = results[uid]["invocation"]["args"]
        assert args[args.index("--vars") + 1] == REDACTED
    assert "a_missing_table" in said["task states"] and "a_missing_table" in said["artifact"]
    assert os.environ["DBT_ENV_SECRET_TOKEN"] == TOKEN
    gc.collect()  # dbt-duckdb's unclosed loops go here, under this test's filter, not later
