"""``dbt-orchestrate ls`` and ``plan``: selection without a dbt process.

``ls`` prints on stdout exactly what ``dbt ls --quiet`` prints, in the same
formats, so scripts can swap one for the other: one line per selected
resource, sorted by unique_id, and nothing when nothing is selected. dbt's
log lines are never printed; its "No nodes selected!" warning goes to stderr
(not with ``--quiet``). A dbt process starts only when the manifest is
missing and must be parsed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.cli._ls_format import OUTPUTS, lines, resources
from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.build_plan import BuildPlan, build_plan_to_dict
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.errors import (
    ManifestError,
    ManifestMalformedError,
    OptionsConflictError,
)
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.selection import (
    Selection,
    SelectionContext,
    SelectionRequest,
    select,
)

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


def _split(value: str) -> list[str]:
    """dbt's multi-value flags split each value on spaces: ``--resource-type "model seed"``."""
    return [part for part in value.split(" ") if part]


def add_selection_flags(parser: argparse.ArgumentParser, *, listing: bool) -> None:
    """dbt's own selection flags, spelled (and repeatable) as ``dbt ls`` spells them."""
    many: dict[str, Any] = {"nargs": "+", "action": "extend", "default": []}
    parser.add_argument("--manifest", type=Path, default=None)
    if listing:  # `dbt ls --models` is legacy: it implies --resource-type model
        parser.add_argument("--select", "-s", **many)
        parser.add_argument("--models", "-m", "--model", **many)
    else:
        parser.add_argument("--select", "-s", "--models", "-m", "--model", **many)
    parser.add_argument("--exclude", **many)
    parser.add_argument("--selector", default=None)
    parser.add_argument("--resource-type", "--resource-types", type=_split, **many)
    parser.add_argument("--exclude-resource-type", "--exclude-resource-types", type=_split, **many)
    parser.add_argument(
        "--indirect-selection",
        type=str.lower,
        choices=["eager", "cautious", "buildable", "empty"],
        default=os.environ.get("DBT_INDIRECT_SELECTION", "eager").lower(),
    )
    parser.add_argument("--state", type=Path, default=None)
    parser.add_argument("--target", "-t", default=None, help="dbt target, if dbt must parse")
    parser.add_argument("--quiet", "-q", action="store_true", help="no warning on stderr")
    if listing:
        parser.add_argument("--output", "-o", type=str.lower, choices=OUTPUTS, default="selector")
        parser.add_argument("--output-keys", type=_split, **many)
    else:
        parser.add_argument(
            "--test-strategy", choices=["immediate", "deferred", "skip"], default="immediate"
        )
        parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _flat(values: list[Any]) -> tuple[str, ...]:
    return tuple(v for value in values for v in (value if isinstance(value, list) else [value]))


def _request(args: argparse.Namespace) -> SelectionRequest:
    """The selection flags; for ``ls``, ``-m X`` is ``-s X --resource-type model``."""
    select_values, kinds = list(args.select), _flat(args.resource_type)
    models = list(getattr(args, "models", None) or [])
    if models:
        for other, given in (("select", select_values), ("resource_type", kinds)):
            if given:
                raise OptionsConflictError(
                    f'"models" and "{other}" are mutually exclusive arguments',
                    "use --select with --resource-type model instead of --models",
                )
        select_values, kinds = models, ("model",)
    return SelectionRequest(
        select=tuple(select_values),
        exclude=tuple(args.exclude),
        selector=args.selector,
        resource_types=kinds,
        exclude_resource_types=_flat(args.exclude_resource_type),
        indirect_selection=args.indirect_selection,
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


def _manifest_path(args: argparse.Namespace) -> Path:
    """``--manifest``, else ``<target dir>/manifest.json``, parsed first when missing."""
    if args.manifest is not None:
        return Path(args.manifest)
    path = _target_dir(args) / "manifest.json"
    if not path.is_file():
        from prefect_dbt_orchestrator.adapters.dbt_core import DbtCoreExecutor, DbtProject

        project = DbtProject(args.project_dir, _profiles_dir(args), _target_dir(args))
        DbtCoreExecutor(project).load_manifest(target=args.target)
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


def load(args: argparse.Namespace) -> tuple[Manifest, dict[str, Any], SelectionContext]:
    """The manifest (as value objects and as JSON) and the selector's outside data."""
    path = _manifest_path(args)
    data = _manifest_json(path)
    manifest = structure_manifest(data, source=str(path))
    context = selection_context(
        args.project_dir, target_dir=_target_dir(args), state_path=args.state
    )
    if args.state is not None:
        context = attrs.evolve(context, manifest_json=data)
    return manifest, data, context


def _select(args: argparse.Namespace) -> tuple[Manifest, dict[str, Any], Selection]:
    request = _request(args)  # flag conflicts fail before any file is read
    manifest, data, context = load(args)
    return manifest, data, select(manifest, request, context)


def run_plan(args: argparse.Namespace) -> int:
    """``dbt-orchestrate plan``: what a build of the selection would run, in waves."""
    manifest, _, selection = _select(args)
    plan = plan_build(build_graph(manifest), selection.unique_ids, TestStrategy(args.test_strategy))
    build_plan = BuildPlan(
        plan, {uid: selection.reasons.get(uid, "selected") for uid in plan.nodes}
    )
    if args.json:
        print(json.dumps(build_plan_to_dict(build_plan), indent=2, sort_keys=True))
    else:
        print(build_plan, end="")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    """``dbt-orchestrate ls``: what ``dbt ls --quiet`` prints; exit 0 even when empty."""
    _, data, selection = _select(args)
    if not selection.unique_ids and not args.quiet:
        print(NO_NODES, file=sys.stderr)
    table = resources(data)
    keys = _flat(args.output_keys)
    out = "\n".join(lines(args.output, selection.unique_ids, table, keys))
    if out:
        sys.stdout.write(out + "\n")
    return 0
