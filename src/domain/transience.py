"""Whether a failed node is worth running again: its error is transient or deterministic; pure.

A warehouse that drops the connection mid-query, a deadlock or a lock held by
another process may well pass on a second attempt; a SQL error, a compilation
error or a failing test fails the same way every time. ``classify`` reads the
error's type and dbt's message; ``is_retryable`` is what the retry loops ask.

How a message is read: dbt's header line ("Database Error in model x
(models/x.sql)") only tells its kind (a Compilation, Parsing or Dependency
Error is deterministic); then the lines after it are read in order, skipping
dbt's and the database's echoes (``LINE 12: ...``, the caret line, ``compiled
code at ...``, traceback ``File ...`` lines), and the first line that matches
a pattern decides. On that line a transient pattern wins over a deterministic
one; text in double quotes (an identifier, a file path) never matches, so
``relation "connection_refused" does not exist`` stays a SQL error. The
database's first words are the cause; its DETAIL, HINT and CONTEXT lines, or
a Python model's traceback frames, come later and do not override them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator

from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus


class ErrorKind(enum.Enum):
    """What a failed node's error says about running it again."""

    # The warehouse or the link to it failed (connection lost, deadlock, a
    # lock held elsewhere, overload): a new attempt may pass.
    TRANSIENT = "transient"
    # The node fails the same way every time (bad SQL, a missing relation, a
    # failing test), or was stopped on purpose or at a limit the user set (a
    # cancel, a statement or node timeout): a new attempt is wasted.
    DETERMINISTIC = "deterministic"
    # Nothing known (a Python model raising its own error): retried, as every
    # failure was before errors were classified.
    UNKNOWN = "unknown"


def _patterns(*sources: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(source, re.IGNORECASE) for source in sources)


# ---------------------------------------------------------------- error types
# ErrorInfo.type: dbt's kind of error as domain.result_entries.error_type
# names it, our own kinds, or the class of an exception that escaped dbt's
# runner (adapters.dbt_core._results.crashed). Compared in lower case.

# dbt's kinds that never pass on a retry ("Compilation Error in model ..."),
# a failing test's, and domain.timeouts.timed_out's (the node ran past the
# limit the user set; a retry would run the same long query into it again).
DETERMINISTIC_TYPES = frozenset(
    {"compilationerror", "parsingerror", "dependencyerror", "testfailure"}
)
# Python's OSError subclasses for a broken network link, and psycopg2's
# classes (psycopg2.errors) for SQLSTATE 40001, 40P01, 57P01-57P03 and 53300.
TRANSIENT_TYPES = frozenset(
    {
        # our watchdog's: a node over its node timeout (a slow warehouse, a lock
        # wait) is retried when retries are set, as the README promises
        "nodetimeout",
        "connectionerror",
        "connectionreseterror",
        "connectionrefusederror",
        "connectionabortederror",
        "brokenpipeerror",
        "timeouterror",
        "serializationfailure",
        "deadlockdetected",
        "adminshutdown",
        "crashshutdown",
        "cannotconnectnow",
        "toomanyconnections",
    }
)
# The kinds in dbt's header line ("Compilation Error in model x (models/x.sql)")
# that say the node is wrong, not the warehouse (dbt's _ERROR_KIND wording).
DETERMINISTIC_HEADER_KINDS = frozenset({"compilation", "parsing", "dependency"})

# ---------------------------------------------------------------- message lines

# dbt's first line names the node: "<Kind> Error in <type> <name> (<path>)".
DBT_HEADER = re.compile(r"^(?P<kind>\w+) Error in \w+ \S+ \([^)]*\)$", re.IGNORECASE)
# Lines that echo what ran rather than say what failed: PostgreSQL's and
# DuckDB's "LINE 12: <the SQL>" and their caret lines, dbt's "compiled code at
# target/run/...", DuckDB's 'Did you mean "pg_tables"?', and the "File ...,
# line N, in f" frames of a Python model's traceback.
ECHO_LINES = _patterns(
    r"^LINE \d+:",
    r"^\^+$",
    r"^compiled code at ",
    r"^Did you mean ",
    r'^File ".*", line \d+',
)
# An identifier or a file path in double quotes (PostgreSQL and DuckDB quote
# both): its text is a name, never the database's own words.
QUOTED = re.compile(r'"[^"\n]*"')

# ---------------------------------------------------------------- transient

TRANSIENT_PATTERNS = _patterns(
    # domain.timeouts.timed_out's own words (a node over its node timeout), in
    # a result read back from run_results.json (its type is then not NodeTimeout).
    r"\btimed out after \S+ s and was cancelled\b",
    # libpq (psycopg2, dbt-postgres) when the backend dies mid-query:
    # pg_terminate_backend, a crash, a failover (captured, tests/unit/test_transience.py).
    r"server closed the connection unexpectedly",
    # PostgreSQL's FATAL as psql shows it: 57P01 "terminating connection due to
    # administrator command", 57P02 "... because of crash of another server process".
    r"\bterminating connection\b",
    # psycopg2's InterfaceError on a handle whose backend is gone (captured);
    # psql's and libpq's words for the same.
    r"\bconnection already closed\b",
    r"\bconnection to server was lost\b",
    r"\bno connection to the server\b",
    r"\bcould not (receive data from|send data to) server\b",
    # The OS's ECONNRESET, ECONNREFUSED (captured from libpq), ECONNABORTED, EPIPE.
    r"\bconnection (reset|refused|aborted)\b",
    r"\bbroken pipe\b",
    # libpq over SSL when the peer vanishes.
    r"\bssl syscall error\b",
    r"\bssl connection has been closed unexpectedly\b",
    # Timeouts talking to the server: libpq's connect_timeout ("timeout
    # expired"), sockets' and HTTP clients' "connection/read/... timed out".
    r"\btimeout expired\b",
    r"\b(connect|connection|read|write|operation|request|socket|network|handshake)"
    r"[ -]?(timed out|timeout)\b",
    # 57P03 (captured: "the database system is shutting down").
    r"\bthe database system is (starting up|shutting down|in recovery mode|"
    r"not (yet )?accepting connections)\b",
    # 40001 and 40P01 (captured), 55P03, and a standby's recovery conflicts.
    r"\bcould not serialize access\b",
    r"\bdeadlock detected\b",
    r"\bcould not obtain lock\b",
    r"\bcanceling statement due to (lock timeout|conflict with recovery)\b",
    # 53300: "too many connections for role" (captured), "sorry, too many
    # clients already", "remaining connection slots are reserved ...".
    r"\btoo many (connections|clients)\b",
    r"\bremaining connection slots are reserved\b",
    # DuckDB: another process holds the database file (captured, an ATTACH),
    # and its optimistic concurrency control between two transactions
    # (captured: "Conflict on update!", "Catalog write-write conflict on create").
    r"\bcould not set lock on file\b",
    r"\bconflicting lock is held\b",
    r"\bwrite-write conflict\b",
    r"\bconflict on (update|tuple deletion)\b",
    # Warehouses behind an HTTP API (BigQuery, Snowflake, Databricks): rate
    # limits and 5xx answers.
    r"\b(too many requests|rate limit(ed| exceeded)?|service unavailable|bad gateway)\b",
    r"\b(gateway time-?out|internal server error|temporarily unavailable)\b",
    r"\b(http|status|status code|error)[ :]*(429|50[0-4])\b",
)

# ---------------------------------------------------------------- deterministic

DETERMINISTIC_PATTERNS = _patterns(
    # PostgreSQL 42601 and DuckDB's Parser Error (both captured).
    r"\bsyntax error\b",
    # PostgreSQL 42P01/42703/42883/3D000/42704 (captured: relation, column,
    # function, database, role) and DuckDB's "Table with name x does not
    # exist!". A database object, never "connection ... does not exist".
    r"\b(relation|table|view|column|function|procedure|schema|type|operator|database|role"
    r"|sequence|index|extension|macro)\b.*\bdoes not exist\b",
    r"\bis ambiguous\b",  # 42702: column reference "id" is ambiguous
    # Data errors: 22012 and 22P02 (captured), 22001 and 22003.
    r"\bdivision by zero\b",
    r"\binvalid input (syntax|value)\b",
    r"\bvalue too long for type\b",
    r"\bout of range\b",
    # 42501 (captured) and ownership.
    r"\bpermission denied\b",
    r"\bmust be owner of\b",
    # 23505 (captured), 23503, 23502, 23514, 23P01.
    r"\bviolates [\w -]*constraint\b",
    # DuckDB's error classes (captured: Binder, Parser, Catalog, Conversion).
    r"\b(binder|parser|catalog|conversion|constraint) error\b",
    # dbt: compilation errors and enforced contracts (captured), failing tests.
    r"\bcompilation error\b",
    r"\bparsing error\b",
    r"\benforced contract\b",
    r"\bgot \d+ results?, configured to (fail|warn)\b",
    # Stopped on purpose or at a limit the user set (captured for PostgreSQL;
    # DuckDB's interrupt()): our watchdog, a build stop, a DBA, statement_timeout.
    r"\bcanceling statement due to (user request|statement timeout)\b",
    r"\binterrupt error\b",
)


def _text(result: NodeResult) -> str:
    if result.error is not None:
        return result.error.message
    return result.message or ""


def _lines(message: str) -> Iterator[str]:
    for raw in message.splitlines():
        line = raw.strip()
        if line and not any(echo.search(line) for echo in ECHO_LINES):
            yield line


def _line_kind(line: str) -> ErrorKind | None:
    """The kind one line says, transient first; None when it says neither."""
    words = QUOTED.sub('""', line)
    if any(pattern.search(words) for pattern in TRANSIENT_PATTERNS):
        return ErrorKind.TRANSIENT
    if any(pattern.search(words) for pattern in DETERMINISTIC_PATTERNS):
        return ErrorKind.DETERMINISTIC
    return None


def classify_message(message: str) -> ErrorKind:
    """The kind of error dbt's ``message`` describes (see the module docstring)."""
    for index, line in enumerate(_lines(message)):
        header = DBT_HEADER.match(line) if index == 0 else None
        if header is not None:
            if header["kind"].lower() in DETERMINISTIC_HEADER_KINDS:
                return ErrorKind.DETERMINISTIC
            continue  # its node name and path are names, not words
        kind = _line_kind(line)
        if kind is not None:
            return kind
    return ErrorKind.UNKNOWN


def _type_kind(result: NodeResult) -> ErrorKind | None:
    if result.dbt_status in (DbtStatus.FAIL, DbtStatus.WARN):
        return ErrorKind.DETERMINISTIC  # a test whose rows say it fails
    kind = result.error.type.lower() if result.error is not None else ""
    if kind in DETERMINISTIC_TYPES:
        return ErrorKind.DETERMINISTIC
    if kind in TRANSIENT_TYPES:
        return ErrorKind.TRANSIENT
    return None


def classify(result: NodeResult) -> ErrorKind:
    """Whether the failed ``result`` would likely pass if run again.

    The error's type decides first (dbt's failing tests and compilation
    errors, a node timeout, a dropped connection raised as such), then its
    message (``classify_message``). Matching ignores letter case.

    Raises:
        ValueError: ``result`` is not an error (success, skipped, cached):
            only a failure has an error to classify.
    """
    if result.status is not NodeStatus.ERROR:
        raise ValueError(
            f"{result.unique_id} ended {result.status.value}, not error: only a failed "
            "result can be classified; check result.status first (or use is_retryable)"
        )
    by_type = _type_kind(result)
    return by_type if by_type is not None else classify_message(_text(result))


def is_retryable(result: NodeResult) -> bool:
    """True for an error that is transient or unknown (a failure not proven
    deterministic is retried, as before errors were classified).

    False for a deterministic error, and for every result that is not an
    error: a success, a cached node, and a skipped one, which is also how a
    build stop ends the nodes it interrupted. A node cancelled at its node
    timeout (``NodeTimeout``) is transient: retried.
    """
    return result.status is NodeStatus.ERROR and classify(result) is not ErrorKind.DETERMINISTIC
