"""Which dbt command runs a node, and the options every invocation shares; pure."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from prefect_dbt_orchestrator.domain.manifest import AnyResourceType, Node, ResourceType


class Command(enum.Enum):
    """A dbt sub-command the executors invoke."""

    RUN = "run"
    SEED = "seed"
    SNAPSHOT = "snapshot"
    TEST = "test"
    BUILD = "build"


_COMMANDS = {
    ResourceType.MODEL: Command.RUN,
    ResourceType.SEED: Command.SEED,
    ResourceType.SNAPSHOT: Command.SNAPSHOT,
    ResourceType.TEST: Command.TEST,
    ResourceType.UNIT_TEST: Command.TEST,
    # dbt 1.11 has no per-type command for functions; build builds just the one.
    ResourceType.FUNCTION: Command.BUILD,
}


def command_for(resource_type: AnyResourceType) -> Command:
    """The command that runs one node of ``resource_type`` on its own.

    Raises:
        ValueError: the resource type is not executable.
    """
    if isinstance(resource_type, ResourceType) and resource_type in _COMMANDS:
        return _COMMANDS[resource_type]
    raise ValueError(f"dbt cannot run a {resource_type.value} node on its own")


@attrs.frozen
class InvocationOptions:
    """Flags every dbt call of one build shares."""

    full_refresh: bool = False
    target: str | None = None
    threads: int | None = None
    extra_args: tuple[str, ...] = ()
    state_path: str | None = None
    defer: bool = False
    defer_state_path: str | None = None
    favor_state: bool = False

    def dbt_flags(self) -> tuple[str, ...]:
        """These options as dbt command-line flags."""
        flags: list[str] = []
        if self.full_refresh:
            flags.append("--full-refresh")
        for flag, value in (
            ("--target", self.target),
            ("--threads", None if self.threads is None else str(self.threads)),
            ("--state", self.state_path),
            ("--defer-state", self.defer_state_path),
        ):
            if value is not None:
                flags += [flag, value]
        if self.defer:
            flags.append("--defer")
        if self.favor_state:
            flags.append("--favor-state")
        return (*flags, *self.extra_args)


def exact_selector(node: Node, root_package: str | None = None) -> str:
    """A dbt selector that matches ``node`` and nothing else.

    ``fqn:`` alone is a prefix match in dbt (``a.marts`` selects all of
    marts), and a bare name matches every resource type with that name, so
    the selector intersects the resource type, the full fqn and, for nodes of
    the root project, the file path. Use it with ``--indirect-selection empty``.
    """
    parts = [f"resource_type:{node.resource_type.value}", f"fqn:{'.'.join(node.fqn)}"]
    if root_package is not None and node.package_name == root_package and node.original_file_path:
        parts.append(f"path:{node.original_file_path}")
    return ",".join(parts)


def wave_selection(nodes: Iterable[Node], root_package: str | None = None) -> list[str]:
    """The arguments that select exactly ``nodes`` in one dbt invocation: each
    one's ``exact_selector``, and no test pulled in beside them."""
    return [
        "--select",
        *(exact_selector(node, root_package) for node in nodes),
        "--indirect-selection",
        "empty",
    ]
