"""Which extra dbt flags a build may pass through, and which it must refuse; pure.

Blocked flags would fight the orchestrator (it owns selection, paths and
logging); flags with a first-class parameter must use that parameter; caveat
flags pass with a warning because they interact with test scheduling. Every
spelling dbt's click parser accepts is checked: ``--select=X``, ``-sX``, and
bundled one-letter flags such as ``-xs X``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from prefect_dbt_orchestrator.domain.errors import PlanError

BLOCKED = frozenset(
    {
        "--select",
        "-s",
        "--models",
        "--model",
        "-m",
        "--exclude",
        "--selector",
        "--indirect-selection",
        "--project-dir",
        "--target-path",
        "--profiles-dir",
        "--log-level",
    }
)
FIRST_CLASS = {
    "--full-refresh": "run_build(full_refresh=True)",
    "-f": "run_build(full_refresh=True)",
    "--target": 'run_build(target="...")',
    "-t": 'run_build(target="...")',
    "--threads": "PrefectDbtOrchestrator(threads=N)",
    "--defer": "PrefectDbtOrchestrator(defer=True)",
    "--no-defer": "PrefectDbtOrchestrator(defer=False)",
    "--state": "PrefectDbtOrchestrator(state_path=Path(...))",
    "--defer-state": "PrefectDbtOrchestrator(defer_state_path=Path(...))",
    "--favor-state": "PrefectDbtOrchestrator(favor_state=True)",
    "--no-favor-state": "PrefectDbtOrchestrator(favor_state=False)",
}
CAVEATS = {
    "--resource-type": "it can drop tests the orchestrator placed",
    "--resource-types": "it can drop tests the orchestrator placed",
    "--exclude-resource-type": "it can drop tests the orchestrator placed",
    "--exclude-resource-types": "it can drop tests the orchestrator placed",
    "--fail-fast": "the orchestrator already skips exactly the descendants of a failure",
    "-x": "the orchestrator already skips exactly the descendants of a failure",
}


@attrs.frozen
class BlockedFlagError(PlanError):
    """An extra dbt flag the orchestrator cannot pass through."""

    flag: str
    instead: str

    def __str__(self) -> str:
        return f"extra_cli_args cannot contain {self.flag}: {self.instead}"


# dbt's one-letter options that take a value (--select, --models, --target,
# --output, --record-timing-info): in a bundle, the rest of it is their value.
_SHORT_WITH_VALUE = frozenset("smtor")


def flag_names(arg: str) -> tuple[str, ...]:
    """The dbt options ``arg`` spells, as click reads it.

    ``--select=X`` is ``--select``; ``-sX`` and ``-s=X`` are ``-s``; ``-xs`` is
    ``-x`` then ``-s`` (click reads one-letter flags until one that takes a
    value). A value (no leading ``-``) spells none.
    """
    if arg.startswith("--"):
        return (arg.split("=", 1)[0],)
    if not arg.startswith("-"):
        return ()
    names: list[str] = []
    for letter in arg[1:]:
        names.append(f"-{letter}")
        if letter in _SHORT_WITH_VALUE or not letter.isalpha():
            break
    return tuple(names)


def check_extra_args(args: Sequence[str]) -> tuple[str, ...]:
    """Validate ``extra_cli_args``; return one warning per caveat flag.

    Raises:
        BlockedFlagError: a blocked flag, or one that has a first-class parameter.
    """
    warnings: list[str] = []
    for name in (name for arg in args for name in flag_names(arg)):
        if name in BLOCKED:
            raise BlockedFlagError(
                name,
                "the orchestrator sets it itself; use the "
                "select/exclude parameters or PrefectDbtSettings instead",
            )
        if name in FIRST_CLASS:
            raise BlockedFlagError(name, f"use {FIRST_CLASS[name]} instead")
        if name in CAVEATS:
            warnings.append(f"extra_cli_args has {name}: accepted, but {CAVEATS[name]}")
    return tuple(warnings)
