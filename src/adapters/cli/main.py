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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.cli._listing import add_selection_flags, run_ls, run_plan
from prefect_dbt_orchestrator.domain.errors import OrchestrationError, PlanError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbt-orchestrate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="run the project's DAG under Prefect")
    _add_project_flags(build)
    build.add_argument("--select", "-s", nargs="+", default=None)
    build.add_argument("--exclude", nargs="+", default=None)
    build.add_argument("--selector", default=None)
    build.add_argument("--mode", choices=["per-node", "per-wave"], default="per-wave")
    build.add_argument(
        "--concurrency", default=None, help="an int, or a Prefect concurrency limit name"
    )
    build.add_argument(
        "--test-strategy", choices=["immediate", "deferred", "skip"], default="immediate"
    )
    build.add_argument("--retries", type=int, default=0)
    build.add_argument("--retry-delay", type=float, default=0)
    build.add_argument("--threads", type=int, default=None)
    build.add_argument("--target", "-t", default=None)
    build.add_argument("--full-refresh", action="store_true")
    build.add_argument("--vars", default=None, help="dbt --vars, as YAML")
    build.add_argument("--results-json", type=Path, default=None)
    build.add_argument(
        "--task-tags",
        action="store_true",
        help="tag task runs (resource type, materialization, tags)",
    )
    for name, helper in (
        ("plan", "print what a build would run"),
        ("ls", "list selected nodes like dbt ls"),
    ):
        sub = commands.add_parser(name, help=helper)
        _add_project_flags(sub)
        add_selection_flags(sub, listing=name == "ls")
    return parser


def _add_project_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--profiles-dir", type=Path, default=None)
    parser.add_argument("--target-path", type=Path, default=None)


def _concurrency(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


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


def _run_build(args: argparse.Namespace) -> int:
    from prefect import flow  # first: Prefect sets up logging before dbt is imported

    from prefect_dbt_orchestrator.adapters.prefect import PrefectDbtOrchestrator
    from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings

    settings = _settings(args, PrefectDbtSettings)
    orchestrator = PrefectDbtOrchestrator(
        settings=settings,
        execution_mode=args.mode.replace("-", "_"),
        test_strategy=args.test_strategy,
        concurrency=_concurrency(args.concurrency),
        retries=args.retries,
        retry_delay_seconds=args.retry_delay,
        threads=args.threads,
        raise_on_failure=False,
        task_tags=args.task_tags,
    )

    @flow(name="dbt-orchestrate-build", log_prints=False)
    def dbt_orchestrate_build() -> dict[str, dict[str, Any]]:
        return orchestrator.run_build(
            select=" ".join(args.select) if args.select else None,
            exclude=" ".join(args.exclude) if args.exclude else None,
            selector=args.selector,
            full_refresh=args.full_refresh,
            target=args.target,
            extra_cli_args=["--vars", args.vars] if args.vars else None,
        )

    results = dbt_orchestrate_build()
    if args.results_json is not None:
        write_json_atomically(args.results_json, results)
    return 1 if any(r["status"] == "error" for r in results.values()) else 0


def _settings(args: argparse.Namespace, kind: Any) -> Any:
    values: dict[str, Path] = {"project_dir": args.project_dir.resolve()}
    if args.profiles_dir is not None:
        values["profiles_dir"] = args.profiles_dir
    if args.target_path is not None:
        values["target_path"] = args.target_path
    return kind(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dbt-orchestrate`` console script."""
    args = _build_parser().parse_args(argv)
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
