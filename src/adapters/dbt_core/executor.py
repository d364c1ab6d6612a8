"""DbtCoreExecutor: the executor port over dbt-core, in this process.

The manifest is parsed once (only when missing, stale, or for another
target) and every node runs through one open dbt session (see ``_session``):
no re-parse, no ``target/*.json`` rewrite, no adapter re-registration per node.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_dbt_orchestrator.adapters.dbt_core._environment import installed_packages, version_of
from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    BACKEND,
    ProfileNotFoundError,
    dbt_errors,
    dbt_failure,
    dbt_reason,
    missing_adapter,
)
from prefect_dbt_orchestrator.adapters.dbt_core._results import (
    crashed,
    no_op_results,
    to_node_result,
)
from prefect_dbt_orchestrator.adapters.dbt_core._vars import read_secrets
from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject, ProjectLocation
from prefect_dbt_orchestrator.domain.cache_keys import KeyEnvironment
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.commands import (
    InvocationOptions,
    command_for,
    exact_selector,
    wave_selection,
)
from prefect_dbt_orchestrator.domain.errors import ManifestMalformedError
from prefect_dbt_orchestrator.domain.freshness import SourceLoad, read_source_loads
from prefect_dbt_orchestrator.domain.graph import is_no_op
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, Source
from prefect_dbt_orchestrator.domain.outcomes import Invocation, NodeResult
from prefect_dbt_orchestrator.domain.redaction import Secrets
from prefect_dbt_orchestrator.ports.executor import CacheInputs, DbtExecutor, ExecutorUnavailable

if TYPE_CHECKING:  # dbt itself is imported when a build starts, not with this module
    from prefect_dbt_orchestrator.adapters.dbt_core._session import DbtSession
    from prefect_dbt_orchestrator.adapters.dbt_core.worker import DbtCoreRecipe

# Flags every dbt call passes: no usage tracking calls from inside a
# scheduler, and no logs/dbt.log: dbt's file logger is rebuilt per invocation
# without closing the old file, which leaks a handle per build in a long-lived
# process (`--log-level-file debug` in extra_cli_args turns it back on).
COMMON_FLAGS = ("--no-send-anonymous-usage-stats", "--log-level-file", "none")
# A session also writes no JSON artifacts per node.
SESSION_FLAGS = ("--no-write-json", *COMMON_FLAGS)
# With quiet=True (the default) dbt prints nothing on the console: the
# orchestrator reports every node itself, and dbt's own lines ("17 of 29
# ERROR creating ...", with its numbering and ANSI colours) would repeat it
# wrongly. `--quiet` alone still prints dbt's error lines.
CONSOLE_QUIET = ("--quiet", "--log-level", "none")


class DbtCoreExecutor(DbtExecutor):
    """Runs nodes with dbt-core.

    Args:
        settings: where the project, profiles and target dir are.
        run_deps: run ``dbt deps`` before parsing when the project declares
            packages that are not installed.
        manifest_path: a pre-built manifest to use instead of parsing.
        quiet: keep dbt's own per-node log lines out of stdout.
    """

    def __init__(
        self,
        settings: ProjectLocation,
        *,
        run_deps: bool = True,
        manifest_path: Path | None = None,
        quiet: bool = True,
    ) -> None:
        self._settings = settings
        self._run_deps = run_deps
        self._manifest_path = manifest_path
        self._quiet = quiet
        self._dbt_manifest: Any = None
        self._root_package: str | None = None
        self._session: DbtSession | None = None
        self._lock = threading.Lock()
        self._secrets = Secrets()  # the running build's; set by start_run
        self._hooks = True  # False in a worker: the build's own process runs them
        self._started: tuple[tuple[str, ...], InvocationOptions] | None = None  # for workers
        self._parsed: tuple[object, ...] | None = None  # what the last parse was for

    @property
    def project(self) -> DbtProject:
        return DbtProject.at(self._settings)

    def load_manifest(
        self, *, target: str | None = None, extra_args: Sequence[str] = (), fresh: bool = False
    ) -> Manifest:
        """The manifest; a pre-built ``manifest_path`` is used as it is.

        Otherwise dbt parses the project when ``manifest.json`` is missing or
        older than a project file, when a ``target`` is given, or when
        ``fresh`` (a build: the profile, env vars and ``--vars`` in
        ``extra_args`` can change what the manifest says, and dbt's partial
        parsing notices that cheaply).
        """
        project = self.project
        if self._manifest_path is not None:
            path = Path(self._manifest_path)
        else:
            path = project.manifest_path
            if fresh or target is not None or not project.manifest_is_current():
                self._parse_unless_just_parsed(project, target, extra_args)
        manifest = _read_manifest(path)
        self._root_package = manifest.project_name
        return manifest

    def _parse_unless_just_parsed(
        self, project: DbtProject, target: str | None, extra_args: Sequence[str]
    ) -> None:
        """Parse, unless this executor parsed for the same target, flags and
        environment and nothing changed since: the CLI plans before its flow
        starts (to refuse bad input without a flow run) and then in it."""
        signature = (target, tuple(_parse_flags(extra_args)), tuple(sorted(os.environ.items())))
        written = _mtime(project.manifest_path)
        fresh_enough = self._dbt_manifest is not None and project.manifest_is_current()
        if fresh_enough and self._parsed == (*signature, written):
            return
        self._dbt_manifest = self._parse(project, target, extra_args)
        self._parsed = (*signature, _mtime(project.manifest_path))

    def _parse(self, project: DbtProject, target: str | None, extra_args: Sequence[str]) -> Any:
        from dbt.cli.main import dbtRunner

        # parse and deps keep dbt's error lines (--quiet only): a project that
        # does not parse is explained there.
        base = [*self._location_args(project), *COMMON_FLAGS, *self._console_flags()[:1]]
        base += _parse_flags(extra_args)
        if target is not None:
            base += ["--target", target]
        if self._run_deps and project.declares_packages() and not project.packages_installed():
            deps = ["deps", "--project-dir", str(project.project_dir), *COMMON_FLAGS]
            deps += self._console_flags()[:1]
            self._invoke(
                dbtRunner(), deps + ["--profiles-dir", str(project.profiles_dir)], "dbt deps"
            )
        return self._invoke(dbtRunner(), ["parse", *base], "dbt parse")

    @staticmethod
    def _invoke(runner: Any, args: list[str], step: str) -> Any:
        # dbt's whole reason ("no target named 'x'" and the valid names), its
        # --vars values scrubbed: they may hold passwords.
        secrets = read_secrets(args)
        with dbt_errors(step, secrets):
            outcome = runner.invoke(args)
        if outcome.success:
            return outcome.result
        if isinstance(outcome.exception, KeyboardInterrupt):  # Ctrl-C while dbt ran: not a failure
            raise outcome.exception
        problem = secrets.scrub(dbt_reason(str(outcome.exception or "")) or "it reported failure")
        lowered = problem.lower()
        no_profile = "profile" in lowered and "could not find" in lowered
        if no_profile and missing_adapter(problem) is None:
            raise ProfileNotFoundError(Path(args[args.index("--profiles-dir") + 1]), problem)
        raise dbt_failure(step, outcome.exception, problem)

    def _console_flags(self) -> tuple[str, ...]:
        return CONSOLE_QUIET if self._quiet else ()

    @staticmethod
    def _location_args(project: DbtProject) -> list[str]:
        return [
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(project.target_dir),
        ]

    def _load_dbt_manifest(self, project: DbtProject) -> Any:
        if self._dbt_manifest is None:
            from prefect_dbt_orchestrator.adapters.dbt_core._session import read_runnable_manifest

            path = Path(self._manifest_path or project.manifest_path)
            with dbt_errors(f"reading {path}"):
                self._dbt_manifest = read_runnable_manifest(path)
        return self._dbt_manifest

    def start_run(self, nodes: Sequence[Node], *, options: InvocationOptions) -> None:
        with self._lock:
            self._close_session()
            self._secrets = read_secrets(options.extra_args)
            runnable = [n for n in nodes if not is_no_op(n)]  # dbt runs nothing for those
            self._session = self._open_session(
                [n.unique_id for n in runnable], options, create_schemas=True
            )
            self._started = (tuple(n.unique_id for n in runnable), options)
            self._hooks = True
            self._run_hooks("start")

    def join_run(
        self, node_ids: Sequence[str], *, options: InvocationOptions, root_package: str | None
    ) -> None:
        """Open this process's session for a build started in another one (a
        worker): no on-run-start or on-run-end hooks, no schemas created.

        Raises:
            ExecutorUnavailable: dbt cannot start.
        """
        with self._lock:
            self._close_session()
            self._secrets = read_secrets(options.extra_args)
            self._root_package = root_package
            self._hooks = False
            self._session = self._open_session(
                node_ids, options, create_schemas=False, shared_warehouse=True
            )

    def worker_recipe(self, folder: Path) -> DbtCoreRecipe:
        """The recipe for the workers of the build ``start_run`` started; the
        manifest it ran with is copied into ``folder`` (another build may
        re-parse the project meanwhile).

        Raises:
            ExecutorUnavailable: no build was started.
        """
        from prefect_dbt_orchestrator.adapters.dbt_core.worker import DbtCoreRecipe

        session, started = self._session, self._started
        if session is None or started is None:
            raise ExecutorUnavailable(BACKEND, "start_run() was not called before worker_recipe()")
        project = self.project
        return DbtCoreRecipe.write(
            folder,
            project,
            Path(self._manifest_path or project.manifest_path),
            node_ids=started[0],
            options=started[1],
            root_package=self._root_package,
            quiet=self._quiet,
        )

    def _open_session(
        self,
        node_ids: Sequence[str],
        options: InvocationOptions,
        *,
        create_schemas: bool,
        shared_warehouse: bool = False,
    ) -> DbtSession:
        from prefect_dbt_orchestrator.adapters.dbt_core._session import DbtSession

        project = self.project
        args = ["build", *self._location_args(project)]
        args += [*SESSION_FLAGS, *self._console_flags()]
        # a later flag wins in click: the user's --log-level-file overrides ours
        session = DbtSession(
            project,
            self._load_dbt_manifest(project),
            args + list(options.dbt_flags()),
            shared_warehouse=shared_warehouse,
        )
        session.open(node_ids, create_schemas=create_schemas)
        return session

    def finish_run(self) -> None:
        with self._lock:
            try:
                if self._session is not None and self._hooks:
                    self._run_hooks("end")
            finally:
                self._close_session()
                self._started = None
                # dbt compiles nodes in place (ephemeral CTEs, compiled SQL):
                # the next build starts from a freshly read manifest.
                self._dbt_manifest = None

    def _run_hooks(self, when: str) -> None:
        from dbt.artifacts.resources.types import RunHookType

        if self._session is not None:
            hook = RunHookType.Start if when == "start" else RunHookType.End
            with dbt_errors(f"on-run-{when} hooks"):
                self._session.run_hooks(hook)

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _require_session(self) -> DbtSession:
        if self._session is None:
            raise ExecutorUnavailable(BACKEND, "start_run() was not called before running nodes")
        return self._session

    def cancel(self, unique_ids: Collection[str] | None = None) -> None:
        session = self._session  # read once: finish_run may close it meanwhile
        if session is not None:
            session.cancel(None if unique_ids is None else frozenset(unique_ids))

    def cache_inputs(self, nodes: Sequence[Node], *, options: InvocationOptions) -> CacheInputs:
        relations = {
            n.unique_id: (n.database, n.schema, n.alias or n.name) for n in nodes if n.relation_name
        }
        with self._lock:
            session = self._session
            own = session is None
            if session is None:  # plan(): a look that creates nothing
                ids = [n.unique_id for n in nodes]
                session = self._open_session(ids, options, create_schemas=False)
            try:
                target, adapter_type, variables = session.environment()
                environment = KeyEnvironment(
                    target_name=target,
                    adapter_type=adapter_type,
                    dbt_version=version_of("dbt-core"),
                    adapter_version=version_of(f"dbt-{adapter_type}"),
                    full_refresh=options.full_refresh,
                    vars=variables,
                    packages=installed_packages(Path(session.packages_dir())),
                    env=dict(os.environ),
                )
                return CacheInputs(environment, session.existing_relations(relations))
            finally:
                if own:
                    session.close()

    def source_freshness(
        self, sources: Sequence[Node], *, options: InvocationOptions, record: bool
    ) -> Mapping[str, SourceLoad]:
        """``dbt source freshness`` for ``sources``; with ``record`` its
        sources.json replaces the target dir's, as dbt's own command does."""
        from dbt.cli.main import dbtRunner

        if not sources:
            return {}
        project = self.project
        kept = project.target_dir / "sources.json"
        output = kept.with_name(f".sources.{os.getpid()}.{threading.get_ident()}.json")
        selectors = [
            f"source:{n.package_name}.{n.source_name}.{n.name}"
            for n in sources
            if isinstance(n, Source)
        ]
        args = ["source", "freshness", *self._location_args(project), *COMMON_FLAGS]
        args += [*self._console_flags(), "--select", *selectors, "--output", str(output)]
        args += list(options.dbt_flags())
        with self._lock, dbt_errors("dbt source freshness", read_secrets(options.extra_args)):
            output.unlink(missing_ok=True)
            dbtRunner().invoke(args)  # fails when a source is past error_after: that is data
        try:
            data = json.loads(output.read_text(encoding="utf-8"))
            if record:
                os.replace(output, kept)
        except (OSError, ValueError) as exc:
            raise ExecutorUnavailable(
                BACKEND, f"dbt source freshness wrote no readable sources.json ({exc})"
            ) from None
        finally:
            output.unlink(missing_ok=True)
        return read_source_loads(data, source=str(kept))

    def run_node(self, node: Node, *, options: InvocationOptions) -> NodeResult:
        if is_no_op(node):  # an exposure or saved query: dbt runs nothing for it
            return no_op_results([node])[node.unique_id]
        args = ("--select", exact_selector(node, self._root_package), *options.dbt_flags())
        # Reported args keep --vars with its value replaced: it may hold passwords.
        invocation = Invocation(
            command_for(node.resource_type).value, self._secrets.redact_args(args)
        )
        return self._run_one(node.unique_id, invocation)

    def _run_one(
        self,
        unique_id: str,
        invocation: Invocation,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> NodeResult:
        session = self._require_session()
        try:
            with around_node(unique_id) if around_node else nullcontext():
                dbt_result = session.run(unique_id)
        except Exception as exc:  # dbt's runner normally turns these into results
            return crashed(unique_id, invocation, exc, secrets=self._secrets)
        return to_node_result(unique_id, dbt_result, invocation, secrets=self._secrets)

    def run_wave(
        self,
        nodes: Sequence[Node],
        *,
        options: InvocationOptions,
        around_node: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> Mapping[str, NodeResult]:
        done = no_op_results(nodes)  # never in dbt's --select: dbt runs nothing for them
        nodes = [n for n in nodes if n.unique_id not in done]
        if not nodes:
            return done
        args = (*wave_selection(nodes, self._root_package), *options.dbt_flags())
        invocation = Invocation("build", self._secrets.redact_args(args))
        workers = max(1, min(len(nodes), options.threads or self._profile_threads()))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dbt-wave") as pool:
            futures = {
                n.unique_id: pool.submit(self._run_one, n.unique_id, invocation, around_node)
                for n in nodes
            }
            return {**done, **{uid: future.result() for uid, future in futures.items()}}

    def _profile_threads(self) -> int:
        return self._require_session().threads()


def _parse_flags(extra_args: Sequence[str]) -> list[str]:
    """The flags of ``extra_args`` that change what dbt parses: ``--vars``
    (vars enable nodes and feed configs) and ``--profile``."""
    args, found = list(extra_args), []
    for index, arg in enumerate(args):
        for flag in ("--vars", "--profile"):
            if arg == flag and index + 1 < len(args):
                found += [flag, args[index + 1]]
            elif arg.startswith(f"{flag}="):
                found.append(arg)
    return found


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _read_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExecutorUnavailable(BACKEND, f"dbt wrote no manifest at {path}") from None
    except json.JSONDecodeError as exc:
        raise ManifestMalformedError(str(path), f"invalid JSON ({exc.msg})") from exc
    return structure_manifest(data, source=str(path))
