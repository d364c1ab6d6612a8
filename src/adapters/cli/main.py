"""``dbt-orchestrate``: the command line, a thin driving adapter.

``build`` runs the orchestrator inside a Prefect flow; ``plan`` prints what a
build would run; ``ls`` lists what a selection picks, in ``dbt ls``'s formats.
``build`` checks everything it can before its flow run starts (the
``--results-json`` path, the flags, the selection, the plan), so bad input
leaves no flow run behind.

Exit codes (``_exit.EXIT_CODES``, shown by ``--help``; the README repeats them):

====  ==================================================================
0     success: every selected node succeeded, or was skipped by design
      (``plan`` and ``ls``: even when nothing is selected)
1     ``build``: some node errored (the flow run ends Failed;
      ``--results-json`` is written)
2     bad input, found before anything runs and before a flow run starts:
      a flag, selector, project, profile, target, manifest, or an
      unwritable ``--results-json`` path
3     infrastructure: dbt, the warehouse or the Prefect API is unavailable
      (``ExecutorUnavailable``, e.g. no dbt adapter for the profile's type;
      an unreachable or failing ``PREFECT_API_URL``)
70    internal error: a bug (the traceback is always printed)
130   interrupted (SIGINT, Ctrl-C)
143   terminated (SIGTERM)
====  ==================================================================

Expected failures print one ``dbt-orchestrate: error: ...`` message on
stderr and no traceback; ``--debug`` (anywhere on the line) adds it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_dbt_orchestrator.adapters.cli._cache_flags import add_cache_flags, cache_config
from prefect_dbt_orchestrator.adapters.cli._exit import (
    EXIT_CODES,
    NODE_FAILED,
    SUCCESS,
    check_results_path,
    report,
)
from prefect_dbt_orchestrator.adapters.cli._flags import (
    add_dbt_flags,
    add_debug_flag,
    add_listing_flags,
    dbt_extra_args,
    positive_seconds,
    selection_request,
)
from prefect_dbt_orchestrator.adapters.cli._listing import run_ls, run_plan
from prefect_dbt_orchestrator.adapters.cli._runners import HELP as RUNNER_HELP
from prefect_dbt_orchestrator.adapters.cli._runners import task_runner_for, task_runner_spec
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    DbtBuildFailed,
    OrchestrationError,
    SchedulerUnavailable,
)
from prefect_dbt_orchestrator.domain.selection import SelectionRequest

if TYPE_CHECKING:
    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator

# How long the closing check of the Prefect API waits before calling it gone.
API_CHECK_SECONDS = 3.0

DESCRIPTION = """\
Run a dbt project's DAG under Prefect, node by node or wave by wave, with
dbt's own selection syntax. The dbt flags are spelled as dbt spells them, so
a `dbt build ...` or `dbt ls ...` line runs unchanged after dbt-orchestrate.

  build  run the selection like `dbt build`, inside a Prefect flow
  retry  run again what failed or was skipped in the previous build, like `dbt retry`
  plan   print what build would run, wave by wave, without running it
  ls     list what the selection picks, exactly as `dbt ls` lists it
"""
_STRATEGIES = ("immediate", "deferred", "skip")
_STRATEGY_HELP = "where tests run: right after their parents, after everything, or not at all"


def _concurrency(value: str) -> int | str:
    """``--concurrency``: nodes at once (>= 1), or a Prefect concurrency limit's name."""
    try:
        number = float(value)
    except ValueError:
        if not value.strip():
            raise argparse.ArgumentTypeError("a concurrency limit name cannot be empty") from None
        return value
    if number < 1 or number != int(number):
        raise argparse.ArgumentTypeError(
            f"{value} is not a positive number of nodes: pass an int >= 1, "
            "or the name of a Prefect global concurrency limit"
        )
    return int(number)


def _add_build_flags(build: argparse.ArgumentParser) -> None:
    build.add_argument(
        "--mode",
        choices=["per-node", "per-wave"],
        default="per-wave",
        help="one Prefect task per node, or per wave of independent nodes (default)",
    )
    build.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help="how many nodes run at once (an int >= 1), or the name of a Prefect "
        "global concurrency limit held around each dbt call",
    )
    build.add_argument(
        "--test-strategy", choices=_STRATEGIES, default="immediate", help=_STRATEGY_HELP
    )
    build.add_argument(
        "--retries", type=int, default=0, help="retries of a failed model, seed or snapshot"
    )
    build.add_argument(
        "--retry-delay", type=float, default=0, help="seconds between retries (default 0)"
    )
    build.add_argument(
        "--results-json",
        type=Path,
        default=None,
        help="write every node's result there as JSON (also when a node failed)",
    )
    build.add_argument(
        "--write-run-results",
        action="store_true",
        help="write the target dir's run_results.json as dbt does (for `dbt retry`)",
    )
    build.add_argument(
        "--disable-assets",
        action="store_true",
        help="send no Prefect asset events for the models, seeds and snapshots that run",
    )
    build.add_argument(
        "--include-compiled-code",
        action="store_true",
        help="put each node's compiled SQL in its Prefect asset's description",
    )
    build.add_argument(
        "--task-tags",
        action="store_true",
        help="tag task runs (resource type, materialization, tags)",
    )
    build.add_argument(
        "--task-runner", type=task_runner_spec, default=None, metavar="RUNNER", help=RUNNER_HELP
    )
    _add_limit_flags(build)
    add_cache_flags(build)


def _add_limit_flags(build: argparse.ArgumentParser) -> None:
    """Time limits, each in seconds (> 0) and off unless given."""
    for flag, what in (
        ("--node-timeout", "cancel a node running longer (a node's prefect_timeout_seconds wins)"),
        ("--timeout", "stop the whole build after this long, as Ctrl-C does"),
        ("--concurrency-timeout", "give up waiting for a global concurrency limit's slot"),
    ):
        build.add_argument(flag, type=positive_seconds, default=None, metavar="SECONDS", help=what)


def _add_plan_and_ls_flags(plan: argparse.ArgumentParser, ls: argparse.ArgumentParser) -> None:
    for sub in (plan, ls):
        sub.add_argument(
            "--quiet", "-q", action="store_true", help="print no warning or note on stderr"
        )
    plan.add_argument(
        "--test-strategy", choices=_STRATEGIES, default="immediate", help=_STRATEGY_HELP
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_cache_flags(plan)
    add_listing_flags(ls)


def build_parser() -> argparse.ArgumentParser:
    """The ``dbt-orchestrate`` argument parser."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="dbt-orchestrate", description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=raw
    )
    add_debug_flag(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "build": "run the selection like `dbt build`, inside a Prefect flow",
        "retry": "run again only the nodes that errored or were skipped in the previous "
        "build (the target dir's run_results.json, ours or dbt's), like `dbt retry`",
        "plan": "print what build would run, without running it",
        "ls": "list the selected resources exactly like `dbt ls`",
    }
    subs = {
        name: commands.add_parser(
            name, help=text, description=text, epilog=EXIT_CODES, formatter_class=raw
        )
        for name, text in helps.items()
    }
    for name, sub in subs.items():
        add_dbt_flags(sub, name)
        add_debug_flag(sub, top=False)
    _add_build_flags(subs["build"])
    _add_build_flags(subs["retry"])
    _add_plan_and_ls_flags(subs["plan"], subs["ls"])
    return parser


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write ``payload`` to ``path`` via a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=True)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600; a result file is not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _orchestrator(args: argparse.Namespace) -> PrefectDbtOrchestrator:
    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator
    from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings

    values: dict[str, Path] = {"project_dir": args.project_dir.resolve()}
    if args.profiles_dir is not None:
        values["profiles_dir"] = args.profiles_dir
    if args.target_path is not None:
        values["target_path"] = args.target_path
    return PrefectDbtOrchestrator(
        settings=PrefectDbtSettings(**values),
        manifest_path=args.manifest,
        execution_mode=args.mode.replace("-", "_"),
        test_strategy=args.test_strategy,
        concurrency=args.concurrency,
        retries=args.retries,
        retry_delay_seconds=args.retry_delay,
        threads=args.threads,
        raise_on_failure=True,  # the flow run ends Failed when a node errored
        state_path=args.state,
        defer=args.defer,
        defer_state_path=args.defer_state,
        favor_state=args.favor_state,
        task_tags=args.task_tags,
        node_timeout_seconds=args.node_timeout,
        timeout_seconds=args.timeout,
        concurrency_timeout_seconds=args.concurrency_timeout,
        cache=cache_config(args),
        write_run_results=args.write_run_results,
        disable_assets=args.disable_assets,
        include_compiled_code=args.include_compiled_code,
        task_runner=task_runner_for(getattr(args, "task_runner", None)),
    )


def _build_flow(
    orchestrator: PrefectDbtOrchestrator, request: SelectionRequest, args: argparse.Namespace
) -> Callable[..., Any]:
    """The ``dbt-orchestrate-build`` (or ``-retry``) flow: Failed when a node errored or dbt could
    not run, Cancelled when interrupted; the state holds the error."""
    from prefect import flow
    from prefect.states import Cancelled, Failed

    extra = dbt_extra_args(args)

    @flow(name=f"dbt-orchestrate-{args.command}", log_prints=False)
    def dbt_orchestrate_build() -> Any:
        try:
            results = orchestrator.run_build(
                select=" ".join(request.select) if request.select else None,
                exclude=" ".join(request.exclude) if request.exclude else None,
                selector=request.selector,
                full_refresh=args.full_refresh,
                target=args.target,
                extra_cli_args=extra,
                resource_types=request.resource_types,
                exclude_resource_types=request.exclude_resource_types,
                indirect_selection=request.indirect_selection,
                only_fresh_sources=args.only_fresh_sources,
                retry_failed=args.command == "retry",
            )
        except BuildInterrupted as stopped:
            _keep_results(args.results_json, stopped.results, NODE_FAILED)
            return Cancelled(message=str(stopped), data=stopped)
        except DbtBuildFailed as failed:
            _keep_results(args.results_json, failed.results, NODE_FAILED)
            return Failed(message=str(failed), data=failed)
        except OrchestrationError as failed:  # returned as a state: Prefect logs no traceback
            return Failed(message=str(failed), data=failed)
        _keep_results(args.results_json, results, SUCCESS)
        return results

    return dbt_orchestrate_build


def _keep_results(path: Path | None, results: dict[str, Any], code: int) -> None:
    """Write the results while the flow still runs, then make sure Prefect is
    still there: when its API went away during the build, Prefect's client would
    retry the flow's last calls for minutes; the results are safe on disk, so the
    build ends here with its own exit code and a warning."""
    from prefect_dbt_orchestrator.adapters.prefect._api import check_prefect_api

    if path is not None:
        write_json_atomically(path, results)
    try:
        check_prefect_api(API_CHECK_SECONDS)
    except SchedulerUnavailable as lost:
        where = f"; the results are in {path}" if path is not None else ""
        print(
            f"dbt-orchestrate: warning: {lost}. Every node ran, but Prefect's record of this "
            f"run is incomplete{where}",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _check_build(
    orchestrator: PrefectDbtOrchestrator, request: SelectionRequest, args: argparse.Namespace
) -> None:
    """Plan the build as it will plan itself, outside any flow run: bad input
    (flags, selection, profile, target) raises here and leaves no flow run."""
    from prefect_dbt_orchestrator.adapters.prefect._freshness import require_state

    require_state(args.only_fresh_sources, args.state)
    orchestrator.plan_request(
        request,
        full_refresh=args.full_refresh,
        target=args.target,
        extra_cli_args=dbt_extra_args(args),
        retry_failed=args.command == "retry",
    )


def _run_build(args: argparse.Namespace) -> int:
    import prefect  # noqa: F401  # first: Prefect sets up logging before dbt is imported

    from prefect_dbt_orchestrator.adapters.prefect._api import check_prefect_api

    check_results_path(args.results_json)
    check_prefect_api()  # in seconds, before anything parses or a flow run starts
    request = selection_request(args) if args.command == "build" else SelectionRequest()
    orchestrator = _orchestrator(args)
    _check_build(orchestrator, request, args)
    state = _build_flow(orchestrator, request, args)(return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BuildInterrupted):
        raise outcome  # main exits 128 + its signal's number
    if isinstance(outcome, DbtBuildFailed):
        return NODE_FAILED
    if isinstance(outcome, BaseException):
        raise outcome
    return SUCCESS


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dbt-orchestrate`` console script; returns the exit code
    (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("build", "retry"):
            return _run_build(args)
        if args.command == "plan":
            return run_plan(args)
        return run_ls(args)
    except (Exception, KeyboardInterrupt) as exc:  # every failure ends as its exit code
        return report(exc, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
