"""``dbt-orchestrate ls`` and ``plan``: selection and planning without running dbt.

Both go through ``plan_selection``, as ``PrefectDbtOrchestrator.plan()`` does,
so ``plan`` prints what ``plan()`` returns. ``ls`` prints on stdout exactly
what ``dbt ls --quiet`` prints, in the same formats, so scripts can swap one
for the other: one line per selected resource, sorted by unique_id, and
nothing when nothing is selected. dbt's warnings go to stderr (not with
``--quiet``): one per selector term that matches nothing, and "No nodes
selected!". A dbt process starts only to parse the project: when its
manifest is missing, or when ``--vars``, ``--target`` or ``--profile`` can
change it (and no ``--manifest`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.cli._cache_flags import cache_config
from prefect_dbt_orchestrator.adapters.cli._flags import (
    dbt_extra_args,
    output_keys,
    selection_request,
)
from prefect_dbt_orchestrator.adapters.cli._ls_format import lines, resources
from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.build_plan import (
    BuildPlan,
    build_plan_to_dict,
    plan_selection,
)
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import ManifestError, ManifestMalformedError
from prefect_dbt_orchestrator.domain.placement import TestStrategy

NO_NODES = "No nodes selected!"


@attrs.frozen
class ManifestNotFoundError(ManifestError):
    """``--manifest`` names no file."""

    path: Path

    def __str__(self) -> str:
        return (
            f"no manifest at {self.path}: run `dbt parse` in the project, or pass "
            "--manifest with the path of an existing manifest.json"
        )


def _target_dir(args: argparse.Namespace) -> Path:
    target = Path(args.target_path or os.environ.get("DBT_TARGET_PATH") or "target")
    return target if target.is_absolute() else args.project_dir / target


def _profiles_dir(args: argparse.Namespace) -> Path:
    """dbt's lookup: --profiles-dir, DBT_PROFILES_DIR, the project dir, the cwd, ~/.dbt."""
    if args.profiles_dir is not None:
        return Path(args.profiles_dir)
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    for folder in (args.project_dir, Path.cwd()):
        if (Path(folder) / "profiles.yml").is_file():
            return Path(folder)
    return Path.home() / ".dbt"


def _why_parse(args: argparse.Namespace, path: Path) -> str | None:
    """Why dbt must parse before selecting, or None to read ``path`` as it is."""
    if not path.is_file():
        return f"no manifest at {path}"
    given = [flag for flag in ("vars", "target", "profile") if getattr(args, flag) is not None]
    if given:
        flags = ", ".join(f"--{flag}" for flag in given)
        return f"{flags} given, which can change the manifest at {path}"
    return None


def _parse(args: argparse.Namespace) -> None:
    """``dbt parse`` with the command's --vars, --target and --profile (it writes
    the target dir's manifest.json)."""
    from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject

    project = DbtProject(args.project_dir, _profiles_dir(args), _target_dir(args))
    DbtCoreExecutor(project).load_manifest(
        target=args.target, extra_args=dbt_extra_args(args), fresh=True
    )


def manifest_path(args: argparse.Namespace) -> Path:
    """``--manifest``, else ``<target dir>/manifest.json``, parsed first when needed."""
    if args.manifest is not None:
        return Path(args.manifest)
    path = _target_dir(args) / "manifest.json"
    why = _why_parse(args, path)
    if why is not None:
        if not args.quiet:
            print(f"{why}: parsing the project with dbt ...", file=sys.stderr)
        _parse(args)
    return path


def _manifest_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestNotFoundError(path) from None
    except json.JSONDecodeError as exc:
        raise ManifestMalformedError(
            str(path), f"invalid JSON at line {exc.lineno}, column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise ManifestMalformedError(str(path), "the top level is not a JSON object")
    return data


def build_plan_of(args: argparse.Namespace) -> tuple[BuildPlan, dict[str, Any]]:
    """The command's BuildPlan, through ``plan_selection``, and the manifest's JSON.

    dbt's selection warnings are printed on stderr (not with ``--quiet``).
    """
    request = selection_request(args)  # flag conflicts fail before any file is read
    path = manifest_path(args)
    data = _manifest_json(path)
    manifest = structure_manifest(data, source=str(path))
    context = selection_context(
        args.project_dir, target_dir=_target_dir(args), state_path=args.state, manifest_path=path
    )
    strategy = TestStrategy(getattr(args, "test_strategy", TestStrategy.IMMEDIATE.value))
    build_plan = plan_selection(manifest, request, context, strategy)
    if not args.quiet:
        for warning in build_plan.warnings:
            print(warning, file=sys.stderr)
    return build_plan, data


def _checked(build_plan: BuildPlan, args: argparse.Namespace) -> BuildPlan:
    """The plan as ``plan()`` gives it: the freshness check's drops
    (``--only-fresh-sources``) and each node's cache prediction (``--cache``)."""
    config = cache_config(args)
    if (config is None and not args.only_fresh_sources) or not build_plan.plan.nodes:
        return build_plan
    from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject
    from prefect_dbt_orchestrator.adapters.prefect._build import BuildSteps
    from prefect_dbt_orchestrator.adapters.prefect._caching import fold_cache_options
    from prefect_dbt_orchestrator.adapters.prefect._freshness import require_state

    state = None if args.state is None else Path(args.state).resolve()
    require_state(args.only_fresh_sources, state)
    setup = None if config is None else fold_cache_options(cache=config, enable_caching=None)
    project = DbtProject(
        Path(args.project_dir).resolve(),
        _profiles_dir(args).resolve(),
        _target_dir(args).resolve(),
    )
    invocation = InvocationOptions(
        full_refresh=getattr(args, "full_refresh", False),
        target=args.target,
        extra_args=dbt_extra_args(args),
    )
    steps = BuildSteps(DbtCoreExecutor(project), project.project_dir, state, setup)
    strategy = build_plan.plan.test_strategy
    check = steps.check_freshness(
        build_plan, invocation, strategy, args.only_fresh_sources, record=False
    )
    if not args.quiet:
        for note in check.notes:
            print(note, file=sys.stderr)
    return steps.predicted(check, invocation)


def run_plan(args: argparse.Namespace) -> int:
    """``dbt-orchestrate plan``: what a build of the selection would run, in waves."""
    build_plan, _ = build_plan_of(args)
    build_plan = _checked(build_plan, args)
    if args.json:
        print(json.dumps(build_plan_to_dict(build_plan), indent=2, sort_keys=True))
    else:
        print(build_plan, end="")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    """``dbt-orchestrate ls``: what ``dbt ls --quiet`` prints; exit 0 even when empty."""
    build_plan, data = build_plan_of(args)
    if not build_plan.selected and not args.quiet:
        print(NO_NODES, file=sys.stderr)
    table = resources(data)
    out = "\n".join(lines(args.output, build_plan.selected, table, output_keys(args)))
    if out:
        sys.stdout.write(out + "\n")
    return 0
