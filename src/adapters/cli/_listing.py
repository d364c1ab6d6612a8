"""``dbt-orchestrate ls`` and ``plan``: selection without a dbt process.

``ls`` prints what ``dbt ls`` prints, in the same formats, so scripts can
swap one for the other. A dbt process starts only when the manifest is
missing and must be parsed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.local.manifest_file import read_manifest
from adapters.local.project_files import selection_context
from domain.graph import build_graph
from domain.manifest import Manifest
from domain.placement import TestStrategy
from domain.plan import plan_build
from domain.build_plan import BuildPlan, build_plan_to_dict
from domain.selection import SelectionRequest, select

# The keys ``dbt ls --output json`` prints when --output-keys is not given.
DEFAULT_JSON_KEYS = (
    "alias",
    "name",
    "package_name",
    "depends_on",
    "tags",
    "config",
    "resource_type",
    "source_name",
    "original_file_path",
    "unique_id",
)
_TABLES = (
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "semantic_models",
    "saved_queries",
    "unit_tests",
    "functions",
)


def add_selection_flags(parser: argparse.ArgumentParser, *, listing: bool) -> None:
    """dbt's own selection flags, spelled as ``dbt ls`` spells them."""
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--select", "-s", "--models", "-m", nargs="+", default=None)
    parser.add_argument("--exclude", nargs="+", default=None)
    parser.add_argument("--selector", default=None)
    parser.add_argument("--resource-type", "--resource-types", action="append", default=[])
    parser.add_argument(
        "--exclude-resource-type", "--exclude-resource-types", action="append", default=[]
    )
    parser.add_argument(
        "--indirect-selection", choices=["eager", "cautious", "buildable", "empty"], default="eager"
    )
    parser.add_argument("--state", type=Path, default=None)
    if listing:
        parser.add_argument(
            "--output", "-o", choices=["json", "name", "selector", "path"], default="selector"
        )
        parser.add_argument("--output-keys", nargs="+", default=None)
    else:
        parser.add_argument(
            "--test-strategy", choices=["immediate", "deferred", "skip"], default="immediate"
        )
        parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _manifest_path(args: argparse.Namespace) -> Path:
    if args.manifest is not None:
        return Path(args.manifest)
    target = args.target_path or Path("target")
    return target if target.is_absolute() else args.project_dir / target / "manifest.json"


def _load(args: argparse.Namespace) -> Manifest:
    path = _manifest_path(args)
    if args.manifest is None and not path.is_file():
        # dbt is imported only when the manifest must be parsed: `ls` and `plan`
        # on an existing manifest start no dbt and no Prefect.
        from adapters.dbt_core import DbtCoreExecutor, DbtProject

        profiles = args.profiles_dir or args.project_dir
        project = DbtProject(args.project_dir, profiles, args.target_path or Path("target"))
        return DbtCoreExecutor(project).load_manifest()
    return read_manifest(path)


def _request(args: argparse.Namespace) -> SelectionRequest:
    return SelectionRequest(
        select=tuple(args.select or ()),
        exclude=tuple(args.exclude or ()),
        selector=args.selector,
        resource_types=tuple(args.resource_type),
        exclude_resource_types=tuple(args.exclude_resource_type),
        indirect_selection=args.indirect_selection,
    )


def _selected(args: argparse.Namespace, manifest: Manifest) -> tuple[str, ...]:
    context = selection_context(args.project_dir, state_path=args.state)
    return select(manifest, _request(args), context).sorted_ids()


def run_plan(args: argparse.Namespace) -> int:
    manifest = _load(args)
    graph = build_graph(manifest)
    selection = select(manifest, _request(args), selection_context(args.project_dir, state_path=args.state))
    plan = plan_build(graph, selection.unique_ids, TestStrategy(args.test_strategy))
    build_plan = BuildPlan(plan, {uid: selection.reasons.get(uid, "selected") for uid in plan.nodes})
    if args.json:
        print(json.dumps(build_plan_to_dict(build_plan), indent=2, sort_keys=True))
    else:
        print(build_plan, end="")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    manifest = _load(args)
    ids = _selected(args, manifest)
    raw = _raw_tables(_manifest_path(args)) if args.output == "json" else {}
    for line in _lines(args, manifest, ids, raw):
        print(line)
    return 0


def _raw_tables(path: Path) -> dict[str, Mapping[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    merged: dict[str, Mapping[str, Any]] = {}
    for table in _TABLES:
        merged.update(data.get(table) or {})
    return merged


def _lines(
    args: argparse.Namespace, manifest: Manifest, ids: tuple[str, ...], raw: Mapping[str, Any]
) -> Iterator[str]:
    members = manifest.all_resources()
    for uid in ids:
        node = members[uid]
        if args.output == "path":
            yield node.original_file_path
        elif args.output == "name":
            yield _search_name(node)
        elif args.output == "selector":
            yield _selector(node)
        else:
            yield json.dumps(_json_fields(raw[uid], args.output_keys))


def _json_fields(data: Mapping[str, Any], keys: list[str] | None) -> dict[str, Any]:
    if not keys:
        return {k: v for k, v in data.items() if k in DEFAULT_JSON_KEYS}
    out: dict[str, Any] = {}
    for key in keys:
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None or (key in data):
            out[key] = value if "." in key else data.get(key)
    return out


def _search_name(node: Any) -> str:
    if node.resource_type.value == "source":
        return f"{node.source_name}.{node.name}"
    if node.version is not None:
        return f"{node.name}.v{node.version}"
    return str(node.name)


def _selector(node: Any) -> str:
    kind = node.resource_type.value
    if kind == "source":
        return f"source:{node.package_name}.{node.source_name}.{node.name}"
    if kind in ("exposure", "metric", "saved_query", "semantic_model"):
        return f"{kind}:{node.package_name}.{node.name}"
    if kind == "unit_test":
        return f"unit_test:{'.'.join(node.fqn)}"
    return ".".join(node.fqn)
