"""dbt's flags on ``dbt-orchestrate build``, ``plan`` and ``ls``, spelled as dbt spells them.

Each subcommand takes the flags its dbt counterpart takes (``build`` and
``plan`` those of ``dbt build``, ``ls`` those of ``dbt ls``), repeatable and
space-splitting where dbt's are, so a ``dbt ls ...`` or ``dbt build ...``
line from a real project runs unchanged after ``dbt-orchestrate``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.cli._ls_format import OUTPUTS
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.selection import SelectionRequest

_MANY: dict[str, Any] = {"nargs": "+", "action": "extend", "default": []}
_INDIRECT = ("eager", "cautious", "buildable", "empty")


def _split(value: str) -> list[str]:
    """dbt's multi-value flags split each value on spaces: ``--resource-type "model seed"``."""
    return [part for part in value.split(" ") if part]


def positive_seconds(value: str) -> float:
    """An argparse type: a number of seconds greater than 0."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value} is not greater than 0")
    return seconds


def positive_int(value: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return number


def add_debug_flag(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--debug``, before or after the subcommand: show the Python traceback of a
    failure. A subcommand's own flag sets nothing when absent (SUPPRESS), so it
    never resets ``dbt-orchestrate --debug build``."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="on failure, print the Python traceback too",
    )


def add_dbt_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The dbt flags of ``command`` (build, retry, plan or ls)."""
    _add_location(parser)
    if command != "retry":  # a retry's selection is the previous run's
        _add_selection(parser, listing=command == "ls")
    _add_state(parser)
    if command != "ls":  # dbt ls has neither
        parser.add_argument(
            "--full-refresh",
            "-f",
            action="store_true",
            help="rebuild incremental models and seeds from scratch (dbt's --full-refresh)",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=None,
            help="dbt's --threads for each dbt invocation (default: the profile's)",
        )


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path(os.environ.get("DBT_PROJECT_DIR") or Path.cwd()),
        help="the folder holding dbt_project.yml (default: $DBT_PROJECT_DIR, else the cwd)",
    )
    parser.add_argument(
        "--profiles-dir",
        type=Path,
        default=None,
        help="the folder holding profiles.yml (default: dbt's lookup)",
    )
    parser.add_argument(
        "--target-path",
        type=Path,
        default=None,
        help="dbt's target directory, relative to the project dir (default: target)",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="a manifest.json to use as it is; without it the target dir's is used, "
        "parsed with dbt first when missing or when --vars/--target/--profile is given",
    )
    parser.add_argument("--vars", default=None, help="dbt's --vars: a YAML dict, as for dbt")
    parser.add_argument("--target", "-t", default=None, help="the profile target dbt uses")
    parser.add_argument(
        "--profile", default=None, help="the profile dbt uses (default: dbt_project.yml's)"
    )


def _add_selection(parser: argparse.ArgumentParser, *, listing: bool) -> None:
    if listing:  # `dbt ls --models` is legacy: it implies --resource-type model
        parser.add_argument("--select", "-s", help="dbt selector terms to include", **_MANY)
        parser.add_argument(
            "--models", "-m", "--model", help="legacy: --select with --resource-type model", **_MANY
        )
    else:
        parser.add_argument(
            "--select", "-s", "--models", "-m", "--model", help="dbt selector terms", **_MANY
        )
    parser.add_argument("--exclude", help="dbt selector terms to leave out", **_MANY)
    parser.add_argument("--selector", default=None, help="a YAML selector (selectors.yml)")
    parser.add_argument(
        "--resource-type",
        "--resource-types",
        type=_split,
        help="keep only these resource types (model, seed, test, all, default...)",
        **_MANY,
    )
    parser.add_argument(
        "--exclude-resource-type",
        "--exclude-resource-types",
        type=_split,
        help="drop these resource types",
        **_MANY,
    )
    parser.add_argument(
        "--indirect-selection",
        type=str.lower,
        choices=_INDIRECT,
        default=os.environ.get("DBT_INDIRECT_SELECTION", "eager").lower(),
        help="which tests of the selected nodes come along (default: eager, as in dbt)",
    )


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="the target dir of a previous run, for state:/result:/source_status: selectors",
    )
    parser.add_argument(
        "--defer",
        action="store_true",
        help="resolve refs to unselected nodes from the state (listing and planning do "
        "not change with it)",
    )
    parser.add_argument(
        "--defer-state", type=Path, default=None, help="the state to defer to (default: --state)"
    )
    parser.add_argument(
        "--favor-state", action="store_true", help="with --defer: prefer the state's relations"
    )


def add_listing_flags(parser: argparse.ArgumentParser) -> None:
    """``ls``'s own flags: dbt ls's output formats, and --quiet."""
    parser.add_argument(
        "--output", "-o", type=str.lower, choices=OUTPUTS, default="selector", help="line format"
    )
    parser.add_argument(
        "--output-keys", type=_split, help="the keys of --output json lines", **_MANY
    )


def _flat(values: list[Any]) -> tuple[str, ...]:
    return tuple(v for value in values for v in (value if isinstance(value, list) else [value]))


def output_keys(args: argparse.Namespace) -> tuple[str, ...]:
    return _flat(args.output_keys)


def selection_request(args: argparse.Namespace) -> SelectionRequest:
    """The selection flags; for ``ls``, ``-m X`` is ``-s X --resource-type model``.

    Raises:
        OptionsConflictError: ``ls --models`` with ``--select`` or ``--resource-type``.
    """
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


def dbt_extra_args(args: argparse.Namespace) -> tuple[str, ...]:
    """``--vars`` and ``--profile`` as dbt flags, for the dbt calls that need them."""
    extra: list[str] = []
    for flag, value in (("--vars", args.vars), ("--profile", args.profile)):
        if value is not None:
            extra += [flag, value]
    return tuple(extra)
