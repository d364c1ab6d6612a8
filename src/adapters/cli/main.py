"""``dbt-orchestrate``: the command line, a thin driving adapter.

``build`` runs the orchestrator inside a Prefect flow; ``plan`` prints what a
build would run; ``ls`` lists what a selection picks, in ``dbt ls``'s formats.
Exit codes: 0 success, 1 some node errored, 2 bad input.
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

from prefect_dbt_orchestrator.adapters.cli._flags import (
    add_dbt_flags,
    add_listing_flags,
    dbt_extra_args,
    selection_request,
)
from prefect_dbt_orchestrator.adapters.cli._listing import run_ls, run_plan
from prefect_dbt_orchestrator.domain.errors import (
    DbtBuildFailed,
    OrchestrationError,
    PlanError,
)
from prefect_dbt_orchestrator.domain.selection import SelectionRequest

if TYPE_CHECKING:
    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator

DESCRIPTION = """\
Run a dbt project's DAG under Prefect, node by node or wave by wave, with
dbt's own selection syntax. The dbt flags are spelled as dbt spells them, so
a `dbt build ...` or `dbt ls ...` line runs unchanged after dbt-orchestrate.

  build  run the selection like `dbt build`, inside a Prefect flow
  plan   print what build would run, wave by wave, without running it
  ls     list what the selection picks, exactly as `dbt ls` lists it

exit codes:
  0  success (plan and ls: even when nothing is selected)
  1  build: some node failed (the flow run ends Failed; --results-json is written)
  2  bad input (a flag, selector, project, profile or manifest), or dbt could not run
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
        "--task-tags",
        action="store_true",
        help="tag task runs (resource type, materialization, tags)",
    )


def _add_plan_and_ls_flags(plan: argparse.ArgumentParser, ls: argparse.ArgumentParser) -> None:
    for sub in (plan, ls):
        sub.add_argument(
            "--quiet", "-q", action="store_true", help="print no warning or note on stderr"
        )
    plan.add_argument(
        "--test-strategy", choices=_STRATEGIES, default="immediate", help=_STRATEGY_HELP
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_listing_flags(ls)


def build_parser() -> argparse.ArgumentParser:
    """The ``dbt-orchestrate`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dbt-orchestrate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "build": "run the selection like `dbt build`, inside a Prefect flow",
        "plan": "print what build would run, without running it",
        "ls": "list the selected resources exactly like `dbt ls`",
    }
    subs = {
        name: commands.add_parser(name, help=text, description=text) for name, text in helps.items()
    }
    for name, sub in subs.items():
        add_dbt_flags(sub, name)
    _add_build_flags(subs["build"])
    _add_plan_and_ls_flags(subs["plan"], subs["ls"])
    return parser


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write ``payload`` to ``path`` via a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=True)
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
    )


def _build_flow(
    orchestrator: PrefectDbtOrchestrator, request: SelectionRequest, args: argparse.Namespace
) -> Callable[..., Any]:
    """The ``dbt-orchestrate-build`` flow: Failed, holding DbtBuildFailed, when a node errored."""
    from prefect import flow
    from prefect.states import Failed

    extra = dbt_extra_args(args)

    @flow(name="dbt-orchestrate-build", log_prints=False)
    def dbt_orchestrate_build() -> Any:
        try:
            return orchestrator.run_build(
                select=" ".join(request.select) or None,
                exclude=" ".join(request.exclude) or None,
                selector=request.selector,
                full_refresh=args.full_refresh,
                target=args.target,
                extra_cli_args=extra,
                resource_types=request.resource_types,
                exclude_resource_types=request.exclude_resource_types,
                indirect_selection=request.indirect_selection,
            )
        except DbtBuildFailed as failed:  # a Failed state: Prefect logs no traceback for it
            return Failed(message=str(failed), data=failed)

    return dbt_orchestrate_build


def _run_build(args: argparse.Namespace) -> int:
    import prefect  # noqa: F401  # first: Prefect sets up logging before dbt is imported

    request = selection_request(args)
    orchestrator = _orchestrator(args)
    state = _build_flow(orchestrator, request, args)(return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException) and not isinstance(outcome, DbtBuildFailed):
        raise outcome
    failed = isinstance(outcome, DbtBuildFailed)
    results = outcome.results if failed else outcome
    if args.results_json is not None:
        write_json_atomically(args.results_json, results)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dbt-orchestrate`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            return _run_build(args)
        if args.command == "plan":
            return run_plan(args)
        return run_ls(args)
    except PlanError as exc:
        print(f"dbt-orchestrate: error: {exc}", file=sys.stderr)
        return 2
    except OrchestrationError as exc:
        print(f"dbt-orchestrate: dbt could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
