"""A build's results as dbt's own ``run_results.json`` (schema v6, dbt 1.11); pure.

``dbt retry`` reads this file: it re-runs every result whose status is
error, fail, skipped, runtime error or partial success, with the recorded
``args``. So a failed node must never be written as a success, and a cached
node is a success ("served from cache"), which ``dbt retry`` leaves alone.

Vars rule: dbt writes ``--vars`` verbatim (only values under keys starting
with ``DBT_ENV_SECRET`` are scrubbed); here every var value that ``Secrets``
would scrub is written as ``<redacted>`` and the rest verbatim. A build whose
vars held a secret is retried with its vars given again, which replaces the
recorded ones: ``dbt retry --vars '{...}'``. Keep secrets in
``DBT_ENV_SECRET_*`` variables instead, and retry works unaided.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from prefect_dbt_orchestrator.domain.cli_args import flag_names
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.graph import TEST_TYPES
from prefect_dbt_orchestrator.domain.manifest import Node, ResourceType
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus, contract_status
from prefect_dbt_orchestrator.domain.redaction import REDACTED, SECRET_ENV_PREFIX, Secrets
from prefect_dbt_orchestrator.domain.selection.request import SelectionRequest

RUN_RESULTS_SCHEMA = "https://schemas.getdbt.com/dbt/run-results/v6.json"
# NodeResult does not say which worker ran a node; dbt names its threads so.
THREAD_ID = "Thread-1"
CACHED_MESSAGE = "served from cache"
# dbt writes compiled/compiled_code/relation_name only for compiled resources:
# a seed's are null, and so are those of a unit test that never ran, and of
# an exposure or saved query (no-op or skipped, they never compile).
_NOT_COMPILED = frozenset({ResourceType.SEED, ResourceType.EXPOSURE, ResourceType.SAVED_QUERY})
_FALLBACK_STATUS = {NodeStatus.ERROR: "error", NodeStatus.SKIPPED: "skipped"}
_NO_SECRETS = Secrets()

PathText = str | os.PathLike[str]


def _iso(moment: dt.datetime) -> str:
    """dbt's timestamp form: UTC, ``Z``-suffixed; naive times are UTC, as in dbt."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def _is_test(node: Node | None) -> bool:
    return node is not None and node.resource_type in TEST_TYPES


def dbt_status_of(result: NodeResult, node: Node | None = None) -> str:
    """The status dbt would write for ``result``.

    dbt's own status when it agrees with the contract status; otherwise (a
    result made outside dbt, or a cached one) the contract status in dbt's
    words: a cached node is ``success`` (``pass`` for a test), never retried.
    """
    if result.status is NodeStatus.CACHED:
        return "pass" if _is_test(node) else "success"
    own = result.dbt_status
    if own is not None and contract_status(own) is result.status:
        return own.value
    if result.status is NodeStatus.SUCCESS:
        return "pass" if _is_test(node) else "success"
    return _FALLBACK_STATUS[result.status]


def _compiled(result: NodeResult, node: Node | None) -> tuple[bool | None, str | None]:
    """(compiled, relation_name) as dbt writes them for ``node``."""
    if node is None or node.resource_type in _NOT_COMPILED:
        return None, None
    ran = result.status in (NodeStatus.SUCCESS, NodeStatus.ERROR)
    compiled = ran and not (result.error is not None and result.error.type == "CompilationError")
    if node.resource_type is ResourceType.UNIT_TEST:
        return (True, None) if compiled else (None, None)
    return compiled, node.relation_name


def _message(result: NodeResult) -> str | None:
    if result.status is NodeStatus.CACHED:
        return result.message or CACHED_MESSAGE
    if result.message:
        return result.message
    return result.error.message if result.error is not None else result.reason


def result_entry(result: NodeResult, node: Node | None = None) -> dict[str, Any]:
    """One entry of ``results``, keys in dbt's order."""
    timing = result.timing
    steps = []
    if timing is not None:
        started, completed = _iso(timing.started_at), _iso(timing.completed_at)
        steps = [{"name": "execute", "started_at": started, "completed_at": completed}]
    compiled, relation_name = _compiled(result, node)
    return {
        "status": dbt_status_of(result, node),
        "timing": steps,
        "thread_id": THREAD_ID,
        "execution_time": timing.duration_seconds if timing is not None else 0.0,
        "adapter_response": _plain(result.adapter_response),
        "message": _message(result),
        "failures": result.failures,
        "unique_id": result.unique_id,
        "compiled": compiled,
        "compiled_code": None,
        "relation_name": relation_name,
        "batch_results": None,
    }


def run_results_document(
    results: Mapping[str, NodeResult],
    *,
    args: Mapping[str, Any],
    dbt_version: str,
    invocation_id: str,
    generated_at: dt.datetime,
    elapsed_time: float,
    nodes: Mapping[str, Node] | None = None,
    secrets: Secrets = _NO_SECRETS,
) -> dict[str, Any]:
    """The ``run_results.json`` document dbt 1.11 would write for ``results``.

    Results are sorted by unique_id; ``nodes`` (by unique_id) supplies
    ``compiled`` and ``relation_name``. ``invocation_started_at`` is
    ``elapsed_time`` before ``generated_at``. Messages, adapter responses and
    every text in ``args`` are scrubbed with ``secrets``. Where dbt knows
    more than a NodeResult keeps, this says less: one ``execute`` timing step
    (compile included), ``compiled_code`` null, ``env`` empty; a skipped
    node's message is its reason (dbt's is null).

    Raises:
        ValueError: ``args`` holds a value JSON cannot represent.
    """
    started = generated_at - dt.timedelta(seconds=elapsed_time)
    found = nodes or {}
    entries = [
        result_entry(secrets.scrub_result(results[uid]), found.get(uid)) for uid in sorted(results)
    ]
    return {
        "metadata": {
            "dbt_schema_version": RUN_RESULTS_SCHEMA,
            "dbt_version": dbt_version,
            "generated_at": _iso(generated_at),
            "invocation_id": invocation_id,
            "invocation_started_at": _iso(started),
            "env": {},
        },
        "results": entries,
        "elapsed_time": elapsed_time,
        "args": _scrubbed(_plain(args), secrets),
    }


# ---------------------------------------------------------------- args


def build_args(
    *,
    command: str,
    selection: SelectionRequest,
    invocation: InvocationOptions,
    project_dir: PathText,
    profiles_dir: PathText,
    target_path: PathText,
    secrets: Secrets,
    cli_vars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``args`` dbt records for ``dbt <command>`` with these options.

    The keys ``dbt retry`` replays (``which``, selection, ``full_refresh``,
    ``target``, ``threads``, state and deferral, ``vars``, the flags of
    ``invocation.extra_args``), plus ``invocation_command``: the equivalent
    plain dbt command, secrets redacted. ``cli_vars`` is ``--vars`` as dbt
    parsed it (YAML); see the module docstring for how it is redacted.

    Raises:
        ValueError: ``extra_args`` has ``--vars`` but ``cli_vars`` is None,
            or ``cli_vars`` holds a value JSON cannot represent.
    """
    if cli_vars is None and any("--vars" in flag_names(a) for a in invocation.extra_args):
        raise ValueError("extra_args has --vars: pass cli_vars=, the vars as dbt parsed them")
    places = {
        "project_dir": os.fspath(project_dir),
        "profiles_dir": os.fspath(profiles_dir),
        "target_path": os.fspath(target_path),
    }
    args = {"which": command, **_selection_args(selection), **_option_args(invocation)}
    extra = extra_flag_args(invocation.extra_args)
    for key in _MULTI & extra.keys():  # click adds up a multi-value flag given twice
        extra[key] = [*args[key], *extra[key]]
    args |= places | extra | {"vars": redact_vars(cli_vars or {}, secrets)}
    line = ["dbt", command, *_selection_flags(selection), *invocation.dbt_flags()]
    line += [part for key, path in places.items() for part in (_flag(key), path)]
    args["invocation_command"] = shlex.join(secrets.redact_args(line))
    return {key: _scrubbed(value, secrets) for key, value in args.items()}


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _selection_args(selection: SelectionRequest) -> dict[str, Any]:
    args: dict[str, Any] = {
        "select": list(selection.select),
        "exclude": list(selection.exclude),
        "resource_types": list(selection.resource_types),
        "exclude_resource_types": list(selection.exclude_resource_types),
        "indirect_selection": selection.indirect_selection,
    }
    return args | ({"selector": selection.selector} if selection.selector is not None else {})


def _selection_flags(selection: SelectionRequest) -> list[str]:
    flags: list[str] = []
    for flag, values in (
        ("--select", selection.select),
        ("--exclude", selection.exclude),
        ("--resource-type", selection.resource_types),
        ("--exclude-resource-type", selection.exclude_resource_types),
    ):
        flags += [flag, *values] if values else []
    if selection.selector is not None:
        flags += ["--selector", selection.selector]
    if selection.indirect_selection != "eager":
        flags += ["--indirect-selection", selection.indirect_selection]
    return flags


def _option_args(options: InvocationOptions) -> dict[str, Any]:
    """The keys dbt records for these options: ``defer`` and ``favor_state``
    always, the others only when set (dbt leaves out ``full_refresh`` when off)."""
    optional = {
        "full_refresh": True if options.full_refresh else None,
        "target": options.target,
        "threads": options.threads,
        "state": options.state_path,
        "defer_state": options.defer_state_path,
    }
    kept = {key: value for key, value in optional.items() if value is not None}
    return {"defer": options.defer, "favor_state": options.favor_state, **kept}


def redact_vars(cli_vars: Mapping[str, Any], secrets: Secrets) -> dict[str, Any]:
    """``cli_vars`` as JSON values, each value ``secrets`` would scrub (and each
    under a ``DBT_ENV_SECRET*`` key, as dbt does) replaced by REDACTED.

    Raises:
        ValueError: a value JSON cannot represent.
    """
    return {k: _redact(v, secrets, k) for k, v in _plain(cli_vars).items()}


def _redact(value: Any, secrets: Secrets, key: str) -> Any:
    if key.startswith(SECRET_ENV_PREFIX):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(v, secrets, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item, secrets, key) for item in value]
    return REDACTED if isinstance(value, str) and secrets.scrub(value) != value else value


# dbt's one-letter boolean flags; flags whose args key is not their spelled name.
_SHORT = {"-x": "fail_fast", "-q": "quiet", "-d": "debug"}
_KEYS = {"resource_type": "resource_types", "exclude_resource_type": "exclude_resource_types"}
_MULTI = frozenset({"resource_types", "exclude_resource_types"})


def extra_flag_args(extra_args: Sequence[str]) -> dict[str, Any]:
    """``extra_args`` as dbt's args keys: ``--empty`` is ``empty: true``,
    ``--no-partial-parse`` is ``partial_parse: false``, ``--x-y v`` is
    ``x_y: "v"``, ``--resource-type a b`` is ``resource_types: [a, b]``.

    ``--vars`` is left to ``cli_vars``; one-letter flags other than ``-x``,
    ``-q`` and ``-d`` are left out (they stay in ``invocation_command``).
    """
    found: dict[str, Any] = {}
    key: str | None = None
    for arg in extra_args:
        if not arg.startswith("-"):
            if key is not None:
                _add_value(found, key, arg)
            continue
        key = None
        if not arg.startswith("--"):
            found.update({_SHORT[n]: True for n in flag_names(arg) if n in _SHORT})
            continue
        name, has_value, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name == "vars":
            continue
        if name.startswith("no_") and not has_value:
            found[name[3:]] = False
            continue
        key = _KEYS.get(name, name)
        if key in _MULTI:
            found.setdefault(key, [])
        else:
            found[key] = True
        if has_value:
            _add_value(found, key, value)
    return found


def _add_value(found: dict[str, Any], key: str, value: str) -> None:
    current = found[key]
    if isinstance(current, list):
        current.append(value)
    else:  # the flag's first value replaces True; a second makes a list
        found[key] = value if current is True else [current, value]


# ---------------------------------------------------------------- JSON values


def _plain(value: Any) -> Any:
    """``value`` as JSON types, dates as ISO text (dbt's JSONEncoder does the same)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # The value itself is never shown: it may be a secret.
    raise ValueError(f"a {type(value).__name__} value cannot be written as JSON")


def _scrubbed(value: Any, secrets: Secrets) -> Any:
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, secrets) for item in value]
    return secrets.scrub(value) if isinstance(value, str) else value
