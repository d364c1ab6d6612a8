"""A failed node is reported by its cause (dbt's database or compiler words),
once per node end, with no traceback or object repr in the log."""

from __future__ import annotations

import logging

import pytest

from prefect_dbt_orchestrator.adapters.dbt_core._errors import MissingAdapterError, missing_adapter
from prefect_dbt_orchestrator.adapters.prefect._logs import EngineLineFilter, SlotTimeoutFilter
from prefect_dbt_orchestrator.adapters.prefect._tasks import NodeFailed, WaveFailed
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    NodeResult,
    NodeStatus,
    failure_line,
    missing_result,
    skipped,
)
from prefect_dbt_orchestrator.domain.summary import summarize, summary_lines, summary_markdown

DBT_RUNTIME = (
    "Runtime Error in model fct_rides (models/facts/fct_rides.sql)\n"
    "  Catalog Error: Table with name a_table_that_does_not_exist does not exist!\n"
    '  Did you mean "pg_tables"?\n'
    "  \n"
    "  LINE 30: select * from a_table_that_does_not_exist\n"
)
CAUSE = "Catalog Error: Table with name a_table_that_does_not_exist does not exist!"
FCT = "model.demo.fct_rides"


def _failed(message: str = DBT_RUNTIME, uid: str = FCT) -> NodeResult:
    return NodeResult(
        uid, NodeStatus.ERROR, DbtStatus.ERROR, error=ErrorInfo(message, "RuntimeError")
    )


def test_the_cause_is_the_databases_line_not_dbts_header() -> None:
    error = ErrorInfo(DBT_RUNTIME, "RuntimeError")

    assert error.cause == CAUSE
    assert error.path == "models/facts/fct_rides.sql"


def test_a_message_without_dbts_header_is_its_own_cause() -> None:
    error = ErrorInfo("Got 3 results, configured to fail if != 0", "TestFailure")

    assert error.cause == "Got 3 results, configured to fail if != 0"
    assert error.path is None


def test_a_compilation_error_names_what_did_not_compile() -> None:
    message = (
        "Compilation Error in model stg (models/stg.sql)\n"
        "  'undefined_macro' is undefined. This can happen when calling a macro that does "
        "not exist.\n"
    )

    assert ErrorInfo(message, "CompilationError").cause.startswith("'undefined_macro' is undefined")


def test_an_empty_message_falls_back_to_the_error_type() -> None:
    assert ErrorInfo("  \n", "DbtRuntimeError").cause == "DbtRuntimeError"


def test_failure_line_reads_a_result_without_error_info() -> None:
    assert failure_line(NodeResult("x", NodeStatus.ERROR, DbtStatus.FAIL)) == "fail"
    assert failure_line(missing_result("x")) == "dbt returned no result for this node"


def test_the_closing_summary_names_the_file_and_the_cause() -> None:
    results = {FCT: _failed(), "model.demo.mart": skipped("model.demo.mart", (FCT,), "x")}

    lines = summary_lines(summarize(results, {}, 1.5))

    assert f"  error    {FCT} (models/facts/fct_rides.sql): {CAUSE}" in lines
    assert not any("Runtime Error in model" in line for line in lines)


def test_the_summary_artifact_holds_the_cause_and_dbts_whole_message() -> None:
    markdown = summary_markdown(summarize({FCT: _failed()}, {}, 0.0))

    assert f"- `{FCT} (models/facts/fct_rides.sql)`: {CAUSE}" in markdown
    assert "LINE 30: select * from a_table_that_does_not_exist" in markdown
    assert markdown.count("```") == 2


def test_node_failed_reads_as_one_line_in_prefects_log_and_state() -> None:
    failure = NodeFailed(_failed())

    assert repr(failure) == str(failure) == f"{FCT} error: {CAUSE}"


def test_wave_failed_names_each_failed_node_of_the_wave() -> None:
    ok = NodeResult("model.demo.ok", NodeStatus.SUCCESS, DbtStatus.SUCCESS)
    failure = WaveFailed({FCT: _failed(), "model.demo.ok": ok})

    assert repr(failure) == str(failure) == f"1 node(s) of the wave failed: {FCT} error: {CAUSE}"


def _record(message: str, task_name: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    record = logging.LogRecord("prefect.task_runs", logging.ERROR, "x", 1, message, (), exc_info)
    record.task_name = task_name
    return record


@pytest.mark.parametrize(
    "message",
    [
        "Finished in state Completed()",
        "Finished in state Skipped('upstream failure')",
        f"Finished in state Failed('Task run encountered an exception NodeFailed: {FCT}')",
    ],
)
def test_the_engines_end_lines_of_node_tasks_are_dropped(message: str) -> None:
    assert not EngineLineFilter().filter(_record(message, "dbt-node"))


def test_the_traceback_of_a_node_that_failed_in_dbt_is_dropped() -> None:
    failure = NodeFailed(_failed())
    record = _record(f"Task run failed with exception: {failure!r}", "dbt-node", failure)

    assert not EngineLineFilter().filter(record)


def test_a_bug_in_a_node_task_keeps_its_traceback_and_end_line() -> None:
    bug = KeyError("model.demo.x")
    line_filter = EngineLineFilter()

    assert line_filter.filter(_record("Task run failed with exception: KeyError", "dbt-node", bug))
    ended = "Finished in state Failed('Task run encountered an exception KeyError')"
    assert line_filter.filter(_record(ended, "dbt-node"))


def test_retries_and_other_tasks_are_logged_as_prefect_logs_them() -> None:
    line_filter = EngineLineFilter()
    retry = f"Task run failed with exception: {NodeFailed(_failed())!r} - Retry 1/2 will start"

    assert line_filter.filter(_record(retry, "dbt-node"))
    assert line_filter.filter(_record("Finished in state Completed()", "users-own-task"))


def test_a_missing_adapter_with_an_extra_names_the_extra_to_install() -> None:
    error = missing_adapter("Runtime Error\n  Could not find adapter type duckdb!")

    assert isinstance(error, MissingAdapterError)
    assert 'pip install "prefect-dbt-orchestrator[duckdb]"' in str(error)
    assert "dbt-duckdb" in str(error)


def test_a_missing_adapter_without_an_extra_names_dbts_package() -> None:
    error = missing_adapter("Could not find adapter type snowflake!")

    assert error is not None
    assert "pip install dbt-snowflake" in str(error)


def test_other_dbt_failures_are_not_taken_for_a_missing_adapter() -> None:
    assert missing_adapter("Database Error: connection refused") is None


def test_the_concurrency_services_line_for_a_timed_out_slot_wait_is_dropped() -> None:
    line = (
        "Service 'ConcurrencySlotAcquisitionWithLeaseService' failed to process item (1, "
        "'concurrency', 3, None, 300, False, None, <Future raised TimeoutError>)"
    )
    other = "Service 'EventsWorker' failed to process item Event(...)"

    assert not SlotTimeoutFilter().filter(_record(line, ""))
    assert SlotTimeoutFilter().filter(_record(other, ""))
