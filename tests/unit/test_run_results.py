"""run_results.json as dbt writes it: statuses, shape, args, secrets, the atomic writer.

The expected shapes are copied from a ``run_results.json`` that dbt 1.11.16
wrote for ``dbt build --vars '{fail_model: true}'`` on the demo project;
``tests/integration/test_run_results_file.py`` reads ours back with dbt's
own classes and runs ``dbt retry`` on it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from prefect_dbt_orchestrator.adapters.local.run_results_file import write_run_results
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.manifest import Node, ResourceType
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    NodeResult,
    NodeStatus,
    Timing,
    missing_result,
    skipped,
)
from prefect_dbt_orchestrator.domain.redaction import REDACTED, Secrets, build_secrets
from prefect_dbt_orchestrator.domain.run_results import (
    RUN_RESULTS_SCHEMA,
    build_args,
    extra_flag_args,
    run_results_document,
)
from prefect_dbt_orchestrator.domain.selection.request import SelectionRequest

START = dt.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
END = START + dt.timedelta(seconds=1.5)
TIMING = Timing(START, END)
GENERATED = dt.datetime(2026, 1, 1, 12, 5, tzinfo=dt.UTC)
# dbt retry re-runs these (dbt.task.retry.RETRYABLE_STATUSES).
RETRYABLE = {"error", "fail", "skipped", "runtime error", "partial success"}
# The keys of one result, in the order dbt writes them.
ENTRY_KEYS = [
    "status", "timing", "thread_id", "execution_time", "adapter_response", "message",
    "failures", "unique_id", "compiled", "compiled_code", "relation_name", "batch_results",
]  # fmt: skip
TOKEN = "s3cr3t-env-token"
PASSWORD = "hunter2-xyz"
VARS_TEXT = f"{{password: {PASSWORD}, fail_model: true}}"


def _error(
    uid: str, dbt_status: DbtStatus, message: str, failures: int | None = None
) -> NodeResult:
    return NodeResult(
        uid, NodeStatus.ERROR, dbt_status, message=message, timing=TIMING,
        error=ErrorInfo(message, "DbtRuntimeError"), failures=failures,
    )  # fmt: skip


def _ok(uid: str, dbt_status: DbtStatus, **fields: Any) -> NodeResult:
    return NodeResult(uid, NodeStatus.SUCCESS, dbt_status, timing=TIMING, **fields)


EVERY_STATUS = {
    "model.p.ok": _ok(
        "model.p.ok",
        DbtStatus.SUCCESS,
        message="OK",
        adapter_response={"_message": "OK", "code": "OK", "rows_affected": 3},
    ),  # noqa: E501
    "model.p.broken": _error("model.p.broken", DbtStatus.ERROR, "Runtime Error in model broken"),
    "model.p.after": skipped("model.p.after", ("model.p.broken",), "upstream failed"),
    "model.p.cached": NodeResult(
        "model.p.cached",
        NodeStatus.CACHED,
        message="served from cache (stored 2025-12-31)",
        cache_key="k",
        attempts=0,
    ),  # noqa: E501
    "test.p.passes": _ok("test.p.passes", DbtStatus.PASS, failures=0),
    "test.p.fails": _error("test.p.fails", DbtStatus.FAIL, "Got 3 results", failures=3),
    "test.p.warns": _ok("test.p.warns", DbtStatus.WARN, message="Got 1 result", failures=1),
    "function.p.noop": _ok("function.p.noop", DbtStatus.NO_OP),
    "test.p.crashes": _error("test.p.crashes", DbtStatus.RUNTIME_ERROR, "Runtime Error"),
}
EXPECTED_STATUS = {
    "model.p.ok": "success",
    "model.p.broken": "error",
    "model.p.after": "skipped",
    "model.p.cached": "success",
    "test.p.passes": "pass",
    "test.p.fails": "fail",
    "test.p.warns": "warn",
    "function.p.noop": "no-op",
    "test.p.crashes": "runtime error",
}
NODES = {
    uid: Node(
        uid,
        uid.split(".")[-1],
        ResourceType(uid.split(".")[0]),
        "p",
        relation_name=f'"db"."main"."{uid.split(".")[-1]}"' if uid.startswith("model.") else None,
    )  # fmt: skip
    for uid in EVERY_STATUS
}


def _document(results: dict[str, NodeResult] = EVERY_STATUS, **options: Any) -> dict[str, Any]:
    options.setdefault("args", {"which": "build", "vars": {}})
    return run_results_document(
        results, dbt_version="1.11.16", invocation_id="inv-1", generated_at=GENERATED,
        elapsed_time=12.5, **options,
    )  # fmt: skip


def _entries(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["unique_id"]: entry for entry in document["results"]}


def _args(**options: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "command": "build", "selection": SelectionRequest(), "invocation": InvocationOptions(),
        "project_dir": Path("/p"), "profiles_dir": Path("/p"), "target_path": Path("/p/target"),
        "secrets": Secrets(),
    }  # fmt: skip
    return build_args(**(fields | options))


# ---------------------------------------------------------------- statuses


def test_every_status_is_written_in_dbt_s_words() -> None:
    statuses = {uid: e["status"] for uid, e in _entries(_document(nodes=NODES)).items()}

    assert statuses == EXPECTED_STATUS


def test_dbt_retry_would_rerun_exactly_the_errors_failures_and_skips() -> None:
    entries = _entries(_document(nodes=NODES))

    retried = {uid for uid, entry in entries.items() if entry["status"] in RETRYABLE}

    assert retried == {uid for uid, r in EVERY_STATUS.items() if r.is_failure}


def test_a_cached_node_is_a_success_served_from_cache_a_cached_test_a_pass() -> None:
    cached_test = NodeResult("test.p.t", NodeStatus.CACHED)
    results = {"model.p.cached": EVERY_STATUS["model.p.cached"], "test.p.t": cached_test}
    nodes = {"test.p.t": Node("test.p.t", "t", ResourceType.TEST, "p")}

    entries = _entries(_document(results, nodes=nodes))

    assert entries["model.p.cached"]["status"] == "success"
    assert entries["model.p.cached"]["message"] == "served from cache (stored 2025-12-31)"
    assert entries["model.p.cached"]["timing"] == []
    assert entries["test.p.t"] == entries["test.p.t"] | {"status": "pass"}
    assert entries["test.p.t"]["message"] == "served from cache"


def test_results_made_outside_dbt_get_their_contract_status_in_dbt_s_words() -> None:
    results = {
        "model.p.lost": missing_result("model.p.lost"),
        "model.p.plain": NodeResult("model.p.plain", NodeStatus.SUCCESS),
        "test.p.plain": NodeResult("test.p.plain", NodeStatus.SUCCESS),
        "model.p.bare_skip": NodeResult("model.p.bare_skip", NodeStatus.SKIPPED),
        # A contract status that disagrees with dbt's wins: an error stays retryable.
        "model.p.odd": NodeResult("model.p.odd", NodeStatus.ERROR, DbtStatus.SUCCESS),
    }
    nodes = {"test.p.plain": Node("test.p.plain", "plain", ResourceType.TEST, "p")}

    entries = _entries(_document(results, nodes=nodes))

    assert {uid: e["status"] for uid, e in entries.items()} == {
        "model.p.lost": "error",
        "model.p.plain": "success",
        "test.p.plain": "pass",
        "model.p.bare_skip": "skipped",
        "model.p.odd": "error",
    }
    assert entries["model.p.lost"]["message"] == "dbt returned no result for this node"


def test_partial_success_is_kept_so_dbt_retry_reruns_the_microbatch_model() -> None:
    result = _error("model.p.micro", DbtStatus.PARTIAL_SUCCESS, "2 of 5 batches failed")

    assert _entries(_document({"model.p.micro": result}))["model.p.micro"]["status"] == (
        "partial success"
    )


# ---------------------------------------------------------------- shape


def test_an_entry_has_dbt_s_keys_in_dbt_s_order_and_values() -> None:
    entry = _entries(_document(nodes=NODES))["model.p.ok"]

    assert list(entry) == ENTRY_KEYS
    assert entry == {
        "status": "success",
        "timing": [
            {
                "name": "execute",
                "started_at": "2026-01-01T12:00:00.250000Z",
                "completed_at": "2026-01-01T12:00:01.750000Z",
            }
        ],
        "thread_id": "Thread-1",
        "execution_time": 1.5,
        "adapter_response": {"_message": "OK", "code": "OK", "rows_affected": 3},
        "message": "OK",
        "failures": None,
        "unique_id": "model.p.ok",
        "compiled": True,
        "compiled_code": None,
        "relation_name": '"db"."main"."ok"',
        "batch_results": None,
    }


def test_a_skipped_node_has_no_timing_and_says_why() -> None:
    entry = _entries(_document(nodes=NODES))["model.p.after"]

    assert entry["timing"] == [] and entry["execution_time"] == 0.0
    assert entry["adapter_response"] == {}
    assert entry["message"] == "upstream failed"
    # as dbt writes a skipped model: not compiled, its relation still named
    assert (entry["compiled"], entry["relation_name"]) == (False, '"db"."main"."after"')


def test_compiled_fields_follow_dbt_for_seeds_unit_tests_and_unknown_nodes() -> None:
    seed = Node("seed.p.raw", "raw", ResourceType.SEED, "p", relation_name='"db"."main"."raw"')
    unit = Node("unit_test.p.m.ut", "ut", ResourceType.UNIT_TEST, "p")
    results = {
        "seed.p.raw": _ok("seed.p.raw", DbtStatus.SUCCESS),
        "unit_test.p.m.ut": _ok("unit_test.p.m.ut", DbtStatus.PASS),
        "unit_test.p.m.skipped": skipped("unit_test.p.m.skipped", ("model.p.m",), "upstream"),
        "model.p.unknown": _ok("model.p.unknown", DbtStatus.SUCCESS),
    }
    nodes = {"seed.p.raw": seed, "unit_test.p.m.ut": unit}
    nodes["unit_test.p.m.skipped"] = Node("unit_test.p.m.skipped", "s", ResourceType.UNIT_TEST, "p")

    entries = _entries(_document(results, nodes=nodes))

    fields = {
        u: (e["compiled"], e["compiled_code"], e["relation_name"]) for u, e in entries.items()
    }
    assert fields == {
        "seed.p.raw": (None, None, None),
        "unit_test.p.m.ut": (True, None, None),
        "unit_test.p.m.skipped": (None, None, None),
        "model.p.unknown": (None, None, None),
    }


def test_a_compilation_error_is_not_compiled() -> None:
    message = "Compilation Error in model broken"
    result = NodeResult(
        "model.p.broken", NodeStatus.ERROR, DbtStatus.ERROR, message=message,
        error=ErrorInfo(message, "CompilationError"),
    )  # fmt: skip

    entry = _entries(_document({"model.p.broken": result}, nodes=NODES))["model.p.broken"]

    assert entry["compiled"] is False


def test_the_metadata_is_dbt_s_with_the_start_elapsed_time_before_generation() -> None:
    document = _document()

    assert list(document) == ["metadata", "results", "elapsed_time", "args"]
    assert document["metadata"] == {
        "dbt_schema_version": RUN_RESULTS_SCHEMA,
        "dbt_version": "1.11.16",
        "generated_at": "2026-01-01T12:05:00Z",
        "invocation_id": "inv-1",
        "invocation_started_at": "2026-01-01T12:04:47.500000Z",
        "env": {},
    }
    assert RUN_RESULTS_SCHEMA == "https://schemas.getdbt.com/dbt/run-results/v6.json"
    assert document["elapsed_time"] == 12.5
    assert document["args"] == {"which": "build", "vars": {}}


def test_naive_times_are_read_as_utc_and_other_zones_converted() -> None:
    east = dt.timezone(dt.timedelta(hours=2))
    document = run_results_document(
        {}, args={}, dbt_version="1", invocation_id="i",
        generated_at=dt.datetime(2026, 1, 1, 14, 0, tzinfo=east), elapsed_time=0,
    )  # fmt: skip
    naive = run_results_document(
        {}, args={}, dbt_version="1", invocation_id="i",
        generated_at=dt.datetime(2026, 1, 1, 12, 0), elapsed_time=0,
    )  # fmt: skip

    assert document["metadata"]["generated_at"] == "2026-01-01T12:00:00Z"
    assert naive["metadata"]["generated_at"] == "2026-01-01T12:00:00Z"


def test_the_document_is_deterministic_and_sorted_by_unique_id() -> None:
    backwards = dict(reversed(list(EVERY_STATUS.items())))

    first = json.dumps(_document(nodes=NODES))
    again = json.dumps(_document(backwards, nodes=dict(reversed(list(NODES.items())))))

    assert first == again
    ids = [entry["unique_id"] for entry in json.loads(first)["results"]]
    assert ids == sorted(EVERY_STATUS)


# ---------------------------------------------------------------- args


def test_args_have_the_keys_dbt_records_for_a_plain_build() -> None:
    # The values dbt 1.11 wrote for `dbt build` with no options (keys we replay).
    args = _args()

    assert args == {
        "which": "build",
        "select": [],
        "exclude": [],
        "resource_types": [],
        "exclude_resource_types": [],
        "indirect_selection": "eager",
        "defer": False,
        "favor_state": False,
        "project_dir": "/p",
        "profiles_dir": "/p",
        "target_path": "/p/target",
        "vars": {},
        "invocation_command": (
            "dbt build --project-dir /p --profiles-dir /p --target-path /p/target"
        ),
    }


def test_args_record_selection_and_options_under_dbt_s_keys() -> None:
    selection = SelectionRequest(
        select=("tag:daily", "stg+"), exclude="x", selector="nightly",
        resource_types=("model", "seed"), exclude_resource_types=("unit_test",),
        indirect_selection="cautious",
    )  # fmt: skip
    options = InvocationOptions(
        full_refresh=True, target="prod", threads=8, state_path="/state", defer=True,
        defer_state_path="/defer", favor_state=True,
    )  # fmt: skip

    args = _args(selection=selection, invocation=options)

    assert args == args | {
        "select": ["tag:daily", "stg+"],
        "exclude": ["x"],
        "selector": "nightly",
        "resource_types": ["model", "seed"],
        "exclude_resource_types": ["unit_test"],
        "indirect_selection": "cautious",
        "full_refresh": True,
        "target": "prod",
        "threads": 8,
        "state": "/state",
        "defer": True,
        "defer_state": "/defer",
        "favor_state": True,
    }
    assert args["invocation_command"].startswith(
        "dbt build --select tag:daily stg+ --exclude x --resource-type model seed "
        "--exclude-resource-type unit_test --selector nightly --indirect-selection cautious "
        "--full-refresh --target prod --threads 8 --state /state --defer-state /defer "
        "--defer --favor-state --project-dir /p"
    )


def test_resource_types_in_extra_args_are_added_to_the_selection_ones() -> None:
    selection = SelectionRequest(resource_types=("model",))
    invocation = InvocationOptions(extra_args=("--resource-type", "seed"))

    assert _args(selection=selection, invocation=invocation)["resource_types"] == ["model", "seed"]


def test_full_refresh_off_is_left_out_as_dbt_leaves_it_out() -> None:
    assert "full_refresh" not in _args()
    assert "selector" not in _args() and "target" not in _args()


def test_extra_flags_become_dbt_s_args_keys() -> None:
    extra = (
        "--fail-fast", "--empty", "--no-partial-parse", "--resource-type", "model", "seed",
        "--exclude-resource-type=unit_test", "--event-time-start", "2024-01-01", "-xq",
        "--vars", "{a: 1}", "--store-failures",
    )  # fmt: skip

    assert extra_flag_args(extra) == {
        "fail_fast": True,
        "quiet": True,
        "empty": True,
        "partial_parse": False,
        "resource_types": ["model", "seed"],
        "exclude_resource_types": ["unit_test"],
        "event_time_start": "2024-01-01",
        "store_failures": True,
    }


def test_a_multi_value_flag_given_twice_keeps_every_value() -> None:
    extra = ("--resource-type", "model", "--resource-type", "seed")

    assert extra_flag_args(extra) == {"resource_types": ["model", "seed"]}


# ---------------------------------------------------------------- vars and secrets


def _secrets(cli_vars: dict[str, Any], text: str = VARS_TEXT) -> Secrets:
    # As the dbt_core adapter builds them: env secrets, the --vars text, its strings.
    return build_secrets({"DBT_ENV_SECRET_TOKEN": TOKEN}, ["--vars", text], [cli_vars])


def test_vars_without_a_secret_are_recorded_as_dbt_records_them() -> None:
    cli_vars = {"fail_model": True, "days": 3, "env": "dev", "start": dt.date(2024, 1, 2)}
    text = "{fail_model: true, days: 3, env: dev, start: 2024-01-02}"
    invocation = InvocationOptions(extra_args=("--vars", text))

    args = _args(invocation=invocation, cli_vars=cli_vars, secrets=_secrets(cli_vars, text))

    # dbt's JSON encoder writes a date as ISO text too
    assert args["vars"] == {"fail_model": True, "days": 3, "env": "dev", "start": "2024-01-02"}


def test_each_secret_var_value_is_redacted_and_the_others_kept() -> None:
    cli_vars = {"password": PASSWORD, "fail_model": True, "nested": {"keys": [PASSWORD, "ok"]}}
    cli_vars["DBT_ENV_SECRET_PIN"] = 1234  # dbt's own rule: such a key's value is secret
    invocation = InvocationOptions(extra_args=("--vars", VARS_TEXT))

    args = _args(invocation=invocation, cli_vars=cli_vars, secrets=_secrets(cli_vars))

    assert args["vars"] == {
        "password": REDACTED,
        "fail_model": True,
        "nested": {"keys": [REDACTED, "ok"]},
        "DBT_ENV_SECRET_PIN": REDACTED,
    }
    assert "--vars '<redacted>'" in args["invocation_command"]


def test_vars_in_extra_args_without_their_parsed_value_are_refused() -> None:
    invocation = InvocationOptions(extra_args=(f"--vars={VARS_TEXT}",))

    with pytest.raises(ValueError, match="cli_vars"):
        _args(invocation=invocation)


def test_a_var_json_cannot_hold_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as raised:
        _args(cli_vars={"password": {PASSWORD.encode()}})

    assert PASSWORD not in str(raised.value)


def test_no_secret_reaches_the_json_text_from_args_or_results() -> None:
    cli_vars = {"password": PASSWORD, "fail_model": True}
    secrets = _secrets(cli_vars)
    leaky = f"connect failed for {PASSWORD} with token {TOKEN}"
    results = {
        "model.p.leaky": NodeResult(
            "model.p.leaky", NodeStatus.ERROR, DbtStatus.ERROR, message=leaky,
            error=ErrorInfo(leaky, "DatabaseError"), adapter_response={"_message": leaky},
        ),
        "model.p.ok": EVERY_STATUS["model.p.ok"],
    }  # fmt: skip
    invocation = InvocationOptions(
        target=f"t-{TOKEN}", extra_args=("--vars", VARS_TEXT, "--log-path", f"/logs/{TOKEN}")
    )
    args = _args(invocation=invocation, cli_vars=cli_vars, secrets=secrets)

    text = json.dumps(_document(results, args=args, secrets=secrets))

    assert PASSWORD not in text and TOKEN not in text and VARS_TEXT not in text
    assert f"connect failed for {REDACTED} with token {REDACTED}" in text


# ---------------------------------------------------------------- the writer


def test_the_writer_creates_parents_writes_one_json_line_and_leaves_no_temp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "project" / "target" / "run_results.json"
    document = _document(nodes=NODES)
    old_mask = os.umask(0o027)
    try:
        write_run_results(path, document)
    finally:
        os.umask(old_mask)

    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == document and "\n" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 less the umask
    assert os.listdir(path.parent) == ["run_results.json"]


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run_results.json"
    write_run_results(path, {"old": True})

    def refuse(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_run_results(path, _document())

    assert json.loads(path.read_text(encoding="utf-8")) == {"old": True}
    assert os.listdir(tmp_path) == ["run_results.json"]


def test_a_document_json_cannot_hold_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    write_run_results(path, {"old": True})

    with pytest.raises(TypeError):
        write_run_results(path, {"when": dt.datetime(2026, 1, 1)})
    with pytest.raises(ValueError):
        write_run_results(path, {"elapsed_time": float("nan")})

    assert json.loads(path.read_text(encoding="utf-8")) == {"old": True}
    assert os.listdir(tmp_path) == ["run_results.json"]
