"""The executor port: how a driver gets dbt to run planned nodes."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OrchestrationError
from prefect_dbt_orchestrator.domain.freshness import SourceLoad
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult


@attrs.frozen
class ExecutorUnavailable(OrchestrationError, RuntimeError):
    """dbt itself could not run (not installed, no profile, API unreachable...)."""

    backend: str
    problem: str
    fix: str = "run `dbt debug` and `dbt parse` in the project to see what dbt itself reports"

    def __str__(self) -> str:
        return f"{self.backend} could not run: {self.problem}; {self.fix}"


def needs_local_project(executor: object) -> bool:
    """Whether ``executor`` runs dbt on a local checkout (the default)."""
    return bool(getattr(executor, "needs_local_project", True))


@attrs.frozen
class CacheInputs:
    """What cache keys and hits need from outside the manifest.

    Attributes:
        environment: the target, versions, vars, packages and environment the
            build runs with.
        existing_relations: the unique_ids (of the nodes asked about) whose
            relation exists in the warehouse now.
    """

    environment: KeyEnvironment
    existing_relations: frozenset[str] = frozenset()


class DbtExecutor(Protocol):
    """Runs dbt for planned nodes.

    A node that fails inside dbt (a SQL error, a failing test) is data: a
    ``NodeResult`` with status ERROR and dbt's own status and message. Only
    ``ExecutorUnavailable`` is raised, when dbt could not run at all.

    Drivers never hand it exposures or saved queries (``PlannedNode.is_no_op``):
    dbt runs nothing for them, and ``Schedule.end_no_ops`` ends them.

    An executor that runs dbt elsewhere, on a project it does not read from
    local files (dbt Cloud), says so with a class attribute
    ``needs_local_project = False``; options that hand dbt local paths are
    then refused (``local_only_options``).
    """

    def load_manifest(
        self, *, target: str | None = None, extra_args: Sequence[str] = (), fresh: bool = False
    ) -> Manifest:
        """The project's manifest (for ``target``), parsed if missing or stale.

        ``fresh`` asks for a manifest that matches this run exactly (a build);
        without it a current manifest on disk may be reused (a dry run).

        Raises:
            ExecutorUnavailable: the manifest cannot be produced.
            ManifestError: the manifest exists but cannot be read.
        """
        ...

    def start_run(self, nodes: Sequence[Node], *, options: InvocationOptions) -> None:
        """Get ready to run ``nodes`` (connections, schemas, on-run-start hooks).

        Raises:
            ExecutorUnavailable: dbt cannot start.
        """
        ...

    def finish_run(self) -> None:
        """Run on-run-end hooks and release what ``start_run`` took. Never raises
        for a failing hook (dbt logs it); safe to call twice."""
        ...

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        """Cancel the warehouse queries of running nodes (every one when None).

        Called from another thread than the one running the node, for an
        interrupt or a node timeout; the cancelled node's ``run_node`` then
        returns an error result. Best effort: never raises.
        """
        ...

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        """The build's key environment, and which of ``nodes`` have a relation.

        During a build (after ``start_run``) the relations come from what the
        build already loaded (no query per node); before one (``plan()``) the
        executor may look at the warehouse, writing nothing.

        Raises:
            ExecutorUnavailable: dbt or the warehouse cannot be reached.
        """
        ...

    def source_freshness(
        self, sources: Sequence[Node], *, options: InvocationOptions, record: bool
    ) -> Mapping[str, SourceLoad]:
        """Run dbt's freshness check for ``sources``: each one's ``max_loaded_at``.

        A source dbt could not check is data (a load with no ``max_loaded_at``
        and dbt's status); called before ``start_run``, never during a build.
        ``record`` also keeps the result where dbt keeps it (the target dir's
        ``sources.json``, the next run's previous state); a dry run does not.

        Raises:
            ExecutorUnavailable: dbt could not run the check at all.
        """
        ...

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        """Run one node with the command its resource type needs."""
        ...

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        """Run several independent nodes in one invocation.

        Each node runs inside ``around_node(unique_id)``, entered as the node
        starts and left as it ends, so a node's timeout counts from its own
        start, not the wave's (a backend that cannot tell enters it for every
        node for the whole invocation). Returns one result per node given,
        keyed by unique_id.
        """
        ...


class WorkerRecipe(Protocol):
    """How a worker process (a process pool's, a Dask worker's) opens its own
    executor for a build that has started elsewhere. It pickles: it holds
    paths and options, never a connection or a secret's value beyond what the
    build's own flags hold.
    """

    @property
    def session_key(self) -> str:
        """What the worker's session is for: the build, its project, manifest
        checksum, target and flags. A worker reuses its session for every node
        with the same key and closes it for another key."""
        ...

    def open(self) -> DbtExecutor:
        """An executor ready to run the build's nodes in this process: its
        session open (connections, the build's relations loaded), without the
        build's on-run-start hooks or schema creation (the build did both).

        Raises:
            ExecutorUnavailable: dbt or the warehouse cannot be reached from here.
        """
        ...


@runtime_checkable
class DistributableExecutor(Protocol):
    """An executor whose nodes can also run in other processes."""

    def worker_recipe(self, folder: Path) -> WorkerRecipe:
        """The recipe for workers of the build that ``start_run`` started;
        ``folder`` is the build's own directory, which the workers can read
        (the recipe may put a copy of the manifest there).

        Raises:
            ExecutorUnavailable: no build was started.
        """
        ...
