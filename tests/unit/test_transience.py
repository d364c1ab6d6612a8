"""domain.transience over real error messages from PostgreSQL, DuckDB and dbt.

Every message below was produced for real (2026-12-02, dbt-core 1.11 with
dbt-postgres on PostgreSQL 15 from ``scripts/postgres``, and dbt-duckdb
1.11), copied from the NodeResult our DbtCoreExecutor returned, from
``target/run_results.json`` of plain ``dbt build``, or from ``str(exc)`` of
psycopg2. Each constant's comment says how. The projects were scratch copies
of ``tests/integration/projects/pg_faults`` (PG_FAULTS_SCHEMA=capture3) and a
one-model DuckDB project.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    ErrorInfo,
    NodeResult,
    NodeStatus,
    missing_result,
    no_op_result,
    skipped,
)
from prefect_dbt_orchestrator.domain.timeouts import timed_out
from prefect_dbt_orchestrator.domain.transience import (
    ErrorKind,
    classify,
    classify_message,
    is_retryable,
)

UID = "model.pg_faults.dropped"

# ---------------------------------------------------------------- PostgreSQL

# DbtCoreExecutor.run_node of pg_faults' `dropped` (pg_sleep) while another
# connection ran SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE
# query LIKE '%pg_sleep%' AND pid <> pg_backend_pid(). Plain dbt build said the same.
PG_TERMINATED_MID_QUERY = (
    "Database Error in model dropped (models/dropped.sql)\n"
    "  server closed the connection unexpectedly\n"
    "  \tThis probably means the server terminated abnormally\n"
    "  \tbefore or while processing the request.\n"
    "  compiled code at /tmp/capture/target/run/pg_faults/models/dropped.sql"
)
# psql -c "select pg_sleep(7)", its backend terminated the same way (stderr):
# psql prints the server's FATAL, which libpq (and so dbt) often does not.
PSQL_TERMINATED = (
    "FATAL:  terminating connection due to administrator command\n"
    "server closed the connection unexpectedly\n"
    "\tThis probably means the server terminated abnormally\n"
    "\tbefore or while processing the request.\n"
    "connection to server was lost"
)
# psycopg2: the next execute() on a connection whose backend was terminated
# (psycopg2.InterfaceError).
PG_CONNECTION_ALREADY_CLOSED = "connection already closed"
# psycopg2.connect() while the server does a smart shutdown (SIGTERM to the
# postmaster of a second scripts/postgres cluster, one session still open)...
PG_SHUTTING_DOWN = (
    'connection to server at "127.0.0.1", port 59147 failed: '
    "FATAL:  the database system is shutting down\n"
)
# ... and once it had stopped.
PG_CONNECTION_REFUSED = (
    'connection to server at "127.0.0.1", port 59147 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
)
# psycopg2.connect() as a role created with CONNECTION LIMIT 1, one session open (53300).
PG_TOO_MANY_CONNECTIONS = (
    'connection to server at "127.0.0.1", port 39971 failed: '
    'FATAL:  too many connections for role "cap_limited"\n'
)
# psycopg2: two transactions updating two rows in opposite orders (40P01).
PG_DEADLOCK = (
    "deadlock detected\n"
    "DETAIL:  Process 3851 waits for ShareLock on transaction 745; blocked by process 3850.\n"
    "Process 3850 waits for ShareLock on transaction 746; blocked by process 3851.\n"
    "HINT:  See server log for query details.\n"
    'CONTEXT:  while updating tuple (0,1) in relation "cap_t"\n'
)
# psycopg2: two REPEATABLE READ transactions updating one row (40001).
PG_SERIALIZATION_FAILURE = "could not serialize access due to concurrent update\n"

# DbtCoreExecutor.run_node of pg_faults' `broken` (selec 1 as id).
PG_SYNTAX_ERROR = (
    "Database Error in model broken (models/broken.sql)\n"
    '  syntax error at or near "selec"\n'
    "  LINE 13: selec 1 as id\n"
    "           ^\n"
    "  compiled code at /tmp/capture/target/run/pg_faults/models/broken.sql"
)
# DbtCoreExecutor.run_node of a model selecting from a table that is not there.
PG_MISSING_RELATION = (
    "Database Error in model missing_relation (models/missing_relation.sql)\n"
    '  relation "capture3.a_table_that_does_not_exist" does not exist\n'
    "  LINE 12:     select * from capture3.a_table_that_does_not_exist\n"
    "                             ^\n"
    "  compiled code at /tmp/capture/target/run/pg_faults/models/missing_relation.sql"
)
# DbtCoreExecutor.run_node of `select 1 / 0 as ratio`.
PG_DIVISION_BY_ZERO = (
    "Database Error in model division_by_zero (models/division_by_zero.sql)\n"
    "  division by zero\n"
    "  compiled code at /tmp/capture/target/run/pg_faults/models/division_by_zero.sql"
)
# Plain dbt build of `dropped` while another connection ran pg_cancel_backend
# (what a build stop and the node watchdog do to a PostgreSQL query).
PG_CANCELLED = (
    "Database Error in model dropped (models/dropped.sql)\n"
    "  canceling statement due to user request\n"
    "  compiled code at target/run/pg_faults/models/dropped.sql"
)
# Plain dbt build of a model with pre_hook "set statement_timeout = '200ms'"
# and a pg_sleep(5).
PG_STATEMENT_TIMEOUT = (
    "Database Error in model stmt_timeout (models/stmt_timeout.sql)\n"
    "  canceling statement due to statement timeout\n"
    "  compiled code at target/run/pg_faults/models/stmt_timeout.sql"
)
# psycopg2, one statement each: 22P02, 42703, 23505, 42883, 42501.
PG_INVALID_INPUT = (
    "invalid input syntax for type integer: \"abc\"\nLINE 1: select 'abc'::int\n               ^\n"
)
PG_UNDEFINED_COLUMN = (
    'column "nope" does not exist\n'
    "LINE 1: select * from cap_t where nope = 1\n"
    "                                  ^\n"
)
PG_UNIQUE_VIOLATION = (
    'duplicate key value violates unique constraint "cap_t_pkey"\n'
    "DETAIL:  Key (id)=(1) already exists.\n"
)
PG_UNDEFINED_FUNCTION = (
    "function no_such_function(integer) does not exist\n"
    "LINE 1: select no_such_function(1)\n"
    "               ^\n"
    "HINT:  No function matches the given name and argument types. "
    "You might need to add explicit type casts.\n"
)
PG_PERMISSION_DENIED = "permission denied for table cap_private\n"
# psycopg2: select 1 from (select 1) t where 'table does not exist' <> '' and
# count(*) > 0 (42803, a grouping error no pattern names; its echo holds a literal).
PG_AGGREGATE_IN_WHERE = (
    "aggregate functions are not allowed in WHERE\n"
    "LINE 1: ...elect 1) t where 'table does not exist' <> '' and count(*) >...\n"
    "                                                             ^\n"
)
# psycopg2.connect() to a database and as a role that do not exist: about a
# connection, yet a configuration error that no retry mends.
PG_NO_SUCH_DATABASE = (
    'connection to server at "127.0.0.1", port 39971 failed: '
    'FATAL:  database "no_such_db" does not exist\n'
)
PG_NO_SUCH_ROLE = (
    'connection to server at "127.0.0.1", port 39971 failed: '
    'FATAL:  role "no_such_role" does not exist\n'
)

# ---------------------------------------------------------------- DuckDB

# DbtCoreExecutor.run_node of a model whose pre_hook ATTACHes a .duckdb file
# that another Python process holds open (duckdb.connect, writing).
DUCKDB_LOCK_HELD = (
    "Runtime Error in model attached (models/attached.sql)\n"
    '  IO Error: Could not set lock on file "/tmp/duck/other.duckdb": Conflicting lock is '
    "held in /root/.pyenv/versions/3.11.7/bin/python3.11 (PID 5183). "
    "See also https://duckdb.org/docs/current/connect/concurrency"
)
# duckdb.IOException raised by dbt-duckdb opening a profile's file that another
# process holds (plain dbt crashes on it; our executor reports it at setup).
DUCKDB_LOCK_HELD_ON_OPEN = (
    'IO Error: Could not set lock on file "/tmp/duck/duck.duckdb": Conflicting lock is '
    "held in /root/.pyenv/versions/3.11.7/bin/python3.11 (PID 3237). "
    "See also https://duckdb.org/docs/current/connect/concurrency"
)
# duckdb (Python): two cursors of one database in two transactions updating one
# row, and creating one table (duckdb.TransactionException).
DUCKDB_CONFLICT_ON_UPDATE = "TransactionContext Error: Conflict on update!"
DUCKDB_CATALOG_CONFLICT = (
    "TransactionContext Error: Catalog write-write conflict on create with "
    '"Schema\\0main\\0Table\\0main\\0c1"'
)
# DbtCoreExecutor.run_node: `selec 1 as id`, and a table that is not there.
DUCKDB_SYNTAX_ERROR = (
    "Runtime Error in model syntax (models/syntax.sql)\n"
    '  Parser Error: syntax error at or near "selec"\n'
    "  \n"
    "  LINE 10:       selec 1 as id\n"
    "                 ^^^^^"
)
DUCKDB_MISSING_TABLE = (
    "Runtime Error in model missing (models/missing.sql)\n"
    "  Catalog Error: Table with name a_table_that_does_not_exist does not exist!\n"
    '  Did you mean "pg_tables"?\n'
    "  \n"
    "  LINE 10:       select * from a_table_that_does_not_exist\n"
    "                               ^^^^^^^^^^^^^^^^^^^^^^^^^^^"
)
# Plain dbt build (run_results.json): a column that is not there, a bad cast.
DUCKDB_BINDER_ERROR = (
    "Runtime Error in model bad_column (models/bad_column.sql)\n"
    '  Binder Error: Referenced column "no_such_column" not found in FROM clause!\n'
    '  Candidate bindings: "id"\n'
    "  \n"
    '  LINE 10:       select no_such_column from "duck"."main"."ok"\n'
    "                        ^^^^^^^^^^^^^^"
)
DUCKDB_CONVERSION_ERROR = (
    "Runtime Error in model conversion (models/conversion.sql)\n"
    "  Conversion Error: Could not convert string 'abc' to INT32\n"
    "  \n"
    "  LINE 10:       select cast('abc' as integer) as n\n"
    "                        ^^^^^^^^^^^^^^^^^^^^^^"
)
# DbtCoreExecutor.run_node of a long query, DbtCoreExecutor.cancel() after 3 s.
DUCKDB_INTERRUPTED = (
    "Runtime Error in model slow (models/slow.sql)\n  INTERRUPT Error: Interrupted!"
)

# ---------------------------------------------------------------- dbt

# Plain dbt build (dbt-duckdb): exceptions.raise_compiler_error, an undefined
# macro, and an enforced contract whose column type differs.
DBT_COMPILATION_ERROR = (
    "Compilation Error in model compile_error (models/compile_error.sql)\n  the macro says no"
)
DBT_UNDEFINED_MACRO = (
    "Compilation Error in model undefined_macro (models/undefined_macro.sql)\n"
    "  'undefined_macro_xyz' is undefined. This can happen when calling a macro that does "
    'not exist. Check for typos and/or install package dependencies with "dbt deps".'
)
DBT_CONTRACT_ERROR = (
    "Compilation Error in model contracted (models/contracted.sql)\n"
    "  This model has an enforced contract that failed.\n"
    "  Please ensure the name, data_type, and number of columns in your contract match "
    "the columns in your model's definition.\n"
    "  \n"
    "  | column_name | definition_type | contract_type | mismatch_reason    |\n"
    "  | ----------- | --------------- | ------------- | ------------------ |\n"
    "  | id          | VARCHAR         | INTEGER       | data type mismatch |\n"
)
# Plain dbt build: an accepted_values test whose column holds other values.
DBT_TEST_FAILED = "Got 1 result, configured to fail if != 0"
# DbtCoreExecutor.run_node of a dbt-duckdb Python model raising
# RuntimeError("flaky: first attempt fails") (as projects/flaky's does).
PYTHON_MODEL_RAISED = (
    "Runtime Error in model flaky (models/flaky.py)\n"
    "  Python model failed:\n"
    "  Traceback (most recent call last):\n"
    '    File "/work/main/.venv/lib/python3.11/site-packages/dbt/adapters/duckdb/'
    'environments/__init__.py", line 286, in run_python_job\n'
    "      df = module.model(dbt, con)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^\n"
    '    File "/tmp/tmprl4f_7dd.py", line 3, in model\n'
    '      raise RuntimeError("flaky: first attempt fails")\n'
    "  RuntimeError: flaky: first attempt fails\n"
    "  "
)


def failed(message: str, kind: str, dbt_status: DbtStatus = DbtStatus.ERROR) -> NodeResult:
    return NodeResult(UID, NodeStatus.ERROR, dbt_status, error=ErrorInfo(message, kind))


# (message, ErrorInfo.type as our executor names it, or the exception's class)
TRANSIENT = {
    "pg_terminate_backend mid-query": (PG_TERMINATED_MID_QUERY, "DatabaseError"),
    "psql's FATAL": (PSQL_TERMINATED, "OperationalError"),
    "connection already closed": (PG_CONNECTION_ALREADY_CLOSED, "InterfaceError"),
    "shutting down": (PG_SHUTTING_DOWN, "OperationalError"),
    "connection refused": (PG_CONNECTION_REFUSED, "OperationalError"),
    "too many connections": (PG_TOO_MANY_CONNECTIONS, "OperationalError"),
    "deadlock": (PG_DEADLOCK, "DatabaseError"),
    "serialization failure": (PG_SERIALIZATION_FAILURE, "DatabaseError"),
    "duckdb lock (attach)": (DUCKDB_LOCK_HELD, "RuntimeError"),
    "duckdb lock (open)": (DUCKDB_LOCK_HELD_ON_OPEN, "IOException"),
    "duckdb conflict on update": (DUCKDB_CONFLICT_ON_UPDATE, "TransactionException"),
    "duckdb catalog conflict": (DUCKDB_CATALOG_CONFLICT, "TransactionException"),
}
DETERMINISTIC = {
    "pg syntax error": (PG_SYNTAX_ERROR, "DatabaseError"),
    "pg missing relation": (PG_MISSING_RELATION, "DatabaseError"),
    "pg division by zero": (PG_DIVISION_BY_ZERO, "DatabaseError"),
    "pg cancelled": (PG_CANCELLED, "DatabaseError"),
    "pg statement timeout": (PG_STATEMENT_TIMEOUT, "DatabaseError"),
    "pg invalid input": (PG_INVALID_INPUT, "InvalidTextRepresentation"),
    "pg missing column": (PG_UNDEFINED_COLUMN, "UndefinedColumn"),
    "pg unique violation": (PG_UNIQUE_VIOLATION, "UniqueViolation"),
    "pg missing function": (PG_UNDEFINED_FUNCTION, "UndefinedFunction"),
    "pg permission denied": (PG_PERMISSION_DENIED, "InsufficientPrivilege"),
    "pg no such database": (PG_NO_SUCH_DATABASE, "OperationalError"),
    "pg no such role": (PG_NO_SUCH_ROLE, "OperationalError"),
    "duckdb syntax error": (DUCKDB_SYNTAX_ERROR, "RuntimeError"),
    "duckdb missing table": (DUCKDB_MISSING_TABLE, "RuntimeError"),
    "duckdb binder error": (DUCKDB_BINDER_ERROR, "RuntimeError"),
    "duckdb conversion error": (DUCKDB_CONVERSION_ERROR, "RuntimeError"),
    "duckdb interrupted": (DUCKDB_INTERRUPTED, "RuntimeError"),
    "dbt compilation error": (DBT_COMPILATION_ERROR, "CompilationError"),
    "dbt undefined macro": (DBT_UNDEFINED_MACRO, "CompilationError"),
    "dbt contract": (DBT_CONTRACT_ERROR, "CompilationError"),
}
REAL_MESSAGES = [message for message, _ in [*TRANSIENT.values(), *DETERMINISTIC.values()]]
DETERMINISTIC_SQL = [
    PG_SYNTAX_ERROR, PG_MISSING_RELATION, PG_DIVISION_BY_ZERO, PG_UNDEFINED_COLUMN,
    DUCKDB_SYNTAX_ERROR, DUCKDB_MISSING_TABLE, DUCKDB_BINDER_ERROR, DUCKDB_CONVERSION_ERROR,
]  # fmt: skip


@pytest.mark.parametrize(("message", "kind"), TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_lost_connection_a_lock_or_a_deadlock_is_transient_and_retried(
    message: str, kind: str
) -> None:
    result = failed(message, kind)

    assert classify(result) is ErrorKind.TRANSIENT
    assert is_retryable(result)


@pytest.mark.parametrize(("message", "kind"), DETERMINISTIC.values(), ids=DETERMINISTIC.keys())
def test_a_sql_compilation_or_cancel_error_is_deterministic_and_not_retried(
    message: str, kind: str
) -> None:
    result = failed(message, kind)

    assert classify(result) is ErrorKind.DETERMINISTIC
    assert not is_retryable(result)


@pytest.mark.parametrize(("message", "kind"), DETERMINISTIC.values(), ids=DETERMINISTIC.keys())
def test_the_message_alone_says_deterministic_whatever_the_type(message: str, kind: str) -> None:
    # A result read back from run_results.json carries dbt's message under our own type.
    assert classify(failed(message, "PreviousRunError")) is ErrorKind.DETERMINISTIC


def test_a_python_model_raising_its_own_error_is_unknown_and_retried() -> None:
    result = failed(PYTHON_MODEL_RAISED, "RuntimeError")

    assert classify(result) is ErrorKind.UNKNOWN
    assert is_retryable(result)


def test_an_error_no_pattern_names_is_unknown_even_when_its_sql_echo_reads_like_one() -> None:
    # The echoed statement says "table does not exist": SQL text, not the database's words.
    result = failed(PG_AGGREGATE_IN_WHERE, "GroupingError")

    assert classify(result) is ErrorKind.UNKNOWN
    assert is_retryable(result)


def test_a_compilation_error_is_deterministic_by_its_type_alone() -> None:
    # dbt's kind, as the executor names it, without the header line.
    assert classify(failed("the macro says no", "CompilationError")) is ErrorKind.DETERMINISTIC
    assert classify(failed("the macro says no", "DbtRuntimeError")) is ErrorKind.UNKNOWN


def test_a_node_dbt_did_not_report_is_unknown_and_retried() -> None:
    result = missing_result(UID)

    assert classify(result) is ErrorKind.UNKNOWN
    assert is_retryable(result)


def test_a_failing_test_is_deterministic_by_its_dbt_status() -> None:
    result = failed(DBT_TEST_FAILED, "TestFailure", DbtStatus.FAIL)
    # Even if its message read like a dropped connection, the rows decided.
    odd = failed(PG_TERMINATED_MID_QUERY, "DbtRuntimeError", DbtStatus.FAIL)

    assert classify(result) is ErrorKind.DETERMINISTIC
    assert classify(odd) is ErrorKind.DETERMINISTIC
    assert not is_retryable(result)


@pytest.mark.parametrize(
    "said",
    [PG_CANCELLED, PG_TERMINATED_MID_QUERY, DUCKDB_INTERRUPTED],
    ids=["cancel", "drop", "duck"],
)
def test_a_node_cancelled_at_its_timeout_is_retried_whatever_dbt_said(said: str) -> None:
    result = timed_out(failed(said, "DatabaseError"), 5)
    # The same result after a trip through run_results.json.
    read_back = failed(result.error.message if result.error else "", "PreviousRunError")

    assert classify(result) is ErrorKind.TRANSIENT
    assert is_retryable(result)
    assert classify(read_back) is ErrorKind.TRANSIENT


def test_an_error_without_error_info_is_read_from_its_message() -> None:
    result = NodeResult(UID, NodeStatus.ERROR, DbtStatus.ERROR, message=PG_TERMINATED_MID_QUERY)

    assert classify(result) is ErrorKind.TRANSIENT


def test_an_exception_class_for_a_broken_link_is_transient_whatever_its_message() -> None:
    assert classify(failed("[Errno 104]", "ConnectionResetError")) is ErrorKind.TRANSIENT
    assert classify(failed("boom", "DeadlockDetected")) is ErrorKind.TRANSIENT


def test_a_result_that_is_not_an_error_cannot_be_classified_and_is_not_retried() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    results = [
        NodeResult(UID, NodeStatus.SUCCESS, DbtStatus.SUCCESS),
        NodeResult(UID, NodeStatus.SUCCESS, DbtStatus.WARN, message=DBT_TEST_FAILED),
        NodeResult(UID, NodeStatus.CACHED),
        no_op_result(UID, at),
        skipped(UID, (), "build interrupted (SIGINT)"),  # what a build stop ends nodes as
    ]
    for result in results:
        assert not is_retryable(result), result
        with pytest.raises(ValueError, match="not error"):
            classify(result)


def test_the_database_s_first_words_decide_over_its_detail_lines() -> None:
    # The deadlock names a relation in its CONTEXT line; a SQL error names a
    # transient-sounding literal in an echo of the statement.
    echo = PG_SYNTAX_ERROR.replace("selec 1 as id", "selec 'connection refused' as id")

    assert classify_message(PG_DEADLOCK) is ErrorKind.TRANSIENT
    assert classify_message(echo) is ErrorKind.DETERMINISTIC


# ---------------------------------------------------------------- properties


@given(st.data(), st.sampled_from(REAL_MESSAGES))
def test_classification_does_not_depend_on_letter_case(data: st.DataObject, message: str) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(message), max_size=len(message)))
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(message, flips, strict=True))

    assert classify_message(mixed) is classify_message(message)
    assert classify_message(message.upper()) is classify_message(message)


# One line of text: no line break of any kind (str.splitlines splits on all of them).
LINES = st.text(st.characters(exclude_categories=("Cc", "Zl", "Zp")), max_size=60)


@given(st.sampled_from(DETERMINISTIC_SQL), st.lists(LINES, max_size=4))
def test_a_sql_error_stays_deterministic_whatever_lines_follow_it(
    message: str, later: list[str]
) -> None:
    # DETAIL, HINT, CONTEXT, a traceback: even words like "connection reset".
    text = "\n".join([message, *later])

    assert classify(failed(text, "DatabaseError")) is ErrorKind.DETERMINISTIC


@given(st.lists(LINES, max_size=4), st.sampled_from(DETERMINISTIC_SQL), st.data())
def test_a_message_with_a_sql_error_line_and_nothing_transient_is_never_retryable(
    before: list[str], message: str, data: st.DataObject
) -> None:
    quiet = [line for line in before if classify_message(line) is not ErrorKind.TRANSIENT]
    cause = ErrorInfo(message, "DatabaseError").cause  # the database's line, without dbt's header
    lines = data.draw(st.permutations([*quiet, cause]))

    assert not is_retryable(failed("\n".join(lines), "DatabaseError"))


@given(st.text(st.characters(exclude_categories=("Cc", "Zl", "Zp"), exclude_characters='"')))
@example("server closed the connection unexpectedly")
@example("connection refused")
def test_a_quoted_name_never_makes_a_missing_relation_transient(name: str) -> None:
    # "connection ... does not exist" in a name is still a relation that does not exist.
    message = PG_MISSING_RELATION.replace("capture3.a_table_that_does_not_exist", name)

    assert classify_message(message) is ErrorKind.DETERMINISTIC
