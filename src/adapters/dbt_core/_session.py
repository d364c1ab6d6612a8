"""One dbt session per build: flags, config, adapter and manifest set up once.

``dbtRunner.invoke`` rebuilds flags, the runtime config and the adapter on
every call (about 0.1 s per node at best). A session does that once, the way
``dbt build`` itself does, and then hands single nodes to dbt's own runners,
from as many threads as the caller likes: exactly what ``dbt build --threads``
does, with one adapter and a connection per thread. That also keeps DuckDB's
one-writer-per-file rule: every node writes through the same process.

dbt's flags are process-global, so only one session may be open at a time.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dbt.adapters.factory import adapter_management, get_adapter
from dbt.cli.flags import Flags, args_to_context
from dbt.cli.requires import setup_manifest
from dbt.config.runtime import RuntimeConfig, load_profile, load_project
from dbt.contracts.graph.manifest import Manifest
from dbt.events.logging import setup_event_logger
from dbt.exceptions import DbtProfileError
from dbt.flags import set_flags
from dbt.task.build import BuildTask
from dbt.tracking import initialize_from_flags
from dbt_common.clients.system import get_env
from dbt_common.context import (
    get_invocation_context,
    reliably_get_invocation_var,
    set_invocation_context,
)
from dbt_common.events.contextvars import task_contextvars

from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    BACKEND,
    ProfileNotFoundError,
    dbt_errors,
)
from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

_ONE_SESSION = threading.Lock()


class DbtSession:
    """An open dbt build context that runs single nodes by unique_id."""

    def __init__(
        self,
        project: DbtProject,
        manifest: Manifest,
        args: list[str],
        *,
        shared_warehouse: bool = False,
    ) -> None:
        self._project = project
        self._manifest = manifest
        self._args = args
        # other processes write the same schemas (a worker of a process pool)
        self._shared = shared_warehouse
        self._stack = contextlib.ExitStack()
        self._task: BuildTask | None = None
        self._counter = threading.Lock()

    def open(self, node_ids: Iterable[str], *, create_schemas: bool = True) -> None:
        """Set dbt up, create the schemas ``node_ids`` build into (unless not
        ``create_schemas``: a look at the warehouse that writes nothing) and load
        their relations into dbt's relation cache.

        Raises:
            ExecutorUnavailable: another session is open, or dbt cannot start.
            ProfileNotFoundError: the profile or target does not exist.
        """
        if not _ONE_SESSION.acquire(blocking=False):
            raise ExecutorUnavailable(
                BACKEND,
                "another build's dbt session is open in this process (dbt's flags and "
                "adapters are process-wide)",
                "run one build at a time per process: wait for the other build, or run "
                "this one in its own process",
            )
        self._stack.callback(_ONE_SESSION.release)
        try:
            with dbt_errors("setting up dbt"):
                self._task = self._start()
                self._create_schemas(set(node_ids), create_schemas)
        except BaseException:
            self.close()
            raise

    def _start(self) -> BuildTask:
        set_invocation_context(get_env())
        ctx = args_to_context(self._args)
        flags = Flags(ctx)
        set_flags(flags)
        setup_event_logger(flags)
        initialize_from_flags(flags.SEND_ANONYMOUS_USAGE_STATS, flags.PROFILES_DIR)
        self._stack.enter_context(adapter_management())
        try:
            threads = getattr(flags, "THREADS", None)
            profile = load_profile(
                flags.PROJECT_DIR, flags.VARS, flags.PROFILE, flags.TARGET, threads
            )
        except DbtProfileError as exc:
            raise ProfileNotFoundError(self._project.profiles_dir, str(exc).strip()) from exc
        # The project was validated when the manifest was parsed; validating the
        # JSON schema again costs ~0.4 s per build.
        project = load_project(
            flags.PROJECT_DIR, flags.VERSION_CHECK, profile, flags.VARS, validate=False
        )
        config = RuntimeConfig.from_parts(project, profile, flags)
        ctx.obj = {
            "flags": flags,
            "profile": profile,
            "project": project,
            "runtime_config": config,
            "manifest": self._manifest,
        }
        setup_manifest(ctx, write=False)
        self._context = get_invocation_context()
        return BuildTask(flags, config, self._manifest)

    def _create_schemas(self, node_ids: set[str], create: bool) -> None:
        task = self._require_task()
        adapter = get_adapter(task.config)
        with self._in_context(), adapter.connection_named("master"):
            task.defer_to_manifest()
            schemas = task.get_model_schemas(adapter, node_ids)
            if create:
                task.create_schemas(adapter, schemas)
            # As dbt's before_run does: without a populated relation cache,
            # concurrent rebuilds of existing relations corrupt it ("Cache
            # inconsistency detected").
            task.populate_adapter_cache(adapter, schemas)
        task.num_nodes = len(node_ids)

    def _require_task(self) -> BuildTask:
        if self._task is None:
            raise RuntimeError("the dbt session is not open")
        return self._task

    @contextlib.contextmanager
    def _in_context(self) -> Iterator[None]:
        """dbt reads its invocation context from a contextvar; a fresh thread has none."""
        reliably_get_invocation_var().set(self._context)
        with task_contextvars(project_root=str(self._project.project_dir)):
            yield

    def node(self, unique_id: str) -> Any:
        """dbt's own node object for ``unique_id`` (nodes, unit tests, functions)."""
        for table in (self._manifest.nodes, self._manifest.unit_tests, self._manifest.functions):
            if unique_id in table:
                return table[unique_id]
        raise KeyError(unique_id)

    def run(self, unique_id: str) -> Any:
        """Run one node with dbt's runner for its type; returns dbt's RunResult.

        A node that fails in dbt comes back as a result with an error status;
        dbt's ``call_runner`` turns unexpected exceptions into such results too.
        """
        task = self._require_task()
        node = self.node(unique_id)
        with self._counter:
            runner = task.get_runner(node)
        with self._in_context():
            if self._shared:
                self._refresh_relation(node)
            return task.call_runner(runner)

    _MATERIALIZED = frozenset({"model", "seed", "snapshot"})
    _TRANSIENT_SUFFIXES = ("", "__dbt_tmp", "__dbt_backup")

    def _refresh_relation(self, node: Any) -> None:
        """Make dbt's relation cache tell the truth about ``node``'s relation
        (and its ``__dbt_tmp``/``__dbt_backup``) before it runs.

        The cache was loaded when this session opened, and other processes
        have written the schema since: rebuilding a table in PostgreSQL drops
        its dependent views (``drop ... cascade``), which only the process that
        did it knows. dbt would then rename a view that is gone. One query per
        node lists the schema's relations.
        """
        if str(node.resource_type) not in self._MATERIALIZED:
            return
        if getattr(node.config, "materialized", None) == "ephemeral":
            return
        adapter = get_adapter(self._require_task().config)
        identifier = str(getattr(node, "alias", None) or node.name)
        schema = adapter.Relation.create(database=node.database, schema=node.schema)
        with adapter.connection_named(f"refresh {node.unique_id}"):
            present = {
                str(r.identifier).lower(): r for r in adapter.list_relations_without_caching(schema)
            }
        cached = {
            str(r.identifier).lower(): r
            for r in adapter.cache.get_relations(node.database, node.schema)
        }
        for name in (f"{identifier}{suffix}".lower() for suffix in self._TRANSIENT_SUFFIXES):
            if name in cached and name not in present:
                adapter.cache.drop(cached[name])
            elif name in present and name not in cached:
                adapter.cache.add(present[name])

    def run_hooks(self, hook_type: Any) -> None:
        """Run the project's on-run-start or on-run-end hooks once."""
        task = self._require_task()
        adapter = get_adapter(task.config)
        with self._in_context(), adapter.connection_named("master"):
            task.safe_run_hooks(adapter, hook_type, {})

    def cancel(self, unique_ids: Collection[str] | None) -> list[str]:
        """Cancel the running queries of ``unique_ids`` (all when None) through
        the adapter (DuckDB ``interrupt()``, PostgreSQL's ``pg_terminate_backend``).

        dbt names each node's connection by its unique_id, as ``dbt build``
        does when it cancels open connections on Ctrl-C. Some adapters cancel
        with a query of their own (dbt-postgres), which needs a connection of
        the calling thread, as dbt's main thread has: one is opened for the
        cancel and closed after it. Returns the names of the connections
        cancelled; never raises.
        """
        task = self._task
        if task is None:
            return []
        adapter = get_adapter(task.config)
        manager = adapter.connections
        with manager.lock:
            targets = [
                connection
                for connection in manager.thread_connections.values()
                if (unique_ids is None or connection.name in unique_ids)
                and connection.handle is not None
                and connection.state == "open"
            ]
        if not targets:
            return []
        cancelled = []
        try:
            with self._in_context(), adapter.connection_named("cancel"):
                for connection in targets:
                    with contextlib.suppress(Exception):  # best effort: the query may just end
                        manager.cancel(connection)
                        cancelled.append(str(connection.name))
        except Exception:  # no connection for the cancel itself (the warehouse went away)
            pass
        finally:
            with contextlib.suppress(Exception):
                manager.clear_thread_connection()
        return cancelled

    def existing_relations(
        self, relations: Mapping[str, tuple[str | None, str | None, str]]
    ) -> frozenset[str]:
        """The keys of ``relations`` (key -> database, schema, identifier) that
        dbt's relation cache holds: loaded by ``open``, so no query runs."""
        cache = get_adapter(self._require_task().config).cache
        listed: dict[tuple[str, str], frozenset[str]] = {}
        found = set()
        for key, (database, schema, identifier) in relations.items():
            where = ((database or "").lower(), (schema or "").lower())
            if where not in listed:
                names = {
                    str(r.identifier or "").lower() for r in cache.get_relations(database, schema)
                }
                listed[where] = frozenset(names)
            if identifier.lower() in listed[where]:
                found.add(key)
        return frozenset(found)

    def environment(self) -> tuple[str, str, dict[str, Any]]:
        """The target name, the adapter type and dbt's vars (dbt_project.yml's
        ``vars:`` with ``--vars`` over them) this session runs with."""
        config = self._require_task().config
        merged = dict(getattr(config.vars, "vars", {}) or {})
        merged.update(config.cli_vars or {})
        return str(config.target_name), str(config.credentials.type), merged

    def packages_dir(self) -> str:
        """Where the project's packages are installed (``packages-install-path``)."""
        return str(self._require_task().config.packages_install_path)

    def threads(self) -> int:
        """The thread count dbt's profile (or ``--threads``) asks for."""
        return int(self._require_task().config.threads)

    def close(self) -> None:
        """Close connections and release the process-wide session slot.

        dbt-duckdb keeps its database open for the life of the process (it
        closes it at exit); a scheduler process outlives one build, so the
        database is released here for other processes and later builds.
        """
        task, self._task = self._task, None
        try:
            if task is not None:
                manager = type(get_adapter(task.config).connections)
                release = getattr(manager, "close_all_connections", None)
                if callable(release):
                    release()
        finally:
            self._stack.close()


def read_runnable_manifest(path: Path) -> Manifest:
    """dbt's manifest from ``path`` (a manifest.json), made runnable: dbt itself
    reads one only for deferral.

    ``from_writable_manifest`` reads every test back as a singular test,
    dropping ``test_metadata``, so generic tests would not compile: rebuild
    those from the JSON. A manifest written by ``dbt build`` also records
    nodes as already compiled with their ephemeral CTEs injected; reset that,
    or dbt reuses SQL that lacks the CTEs.
    """
    from dbt.artifacts.schemas.manifest import WritableManifest
    from dbt.contracts.graph.nodes import GenericTestNode

    writable = WritableManifest.read_and_check_versions(str(path))
    manifest = Manifest.from_writable_manifest(writable)
    raw_nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    for unique_id, raw in raw_nodes.items():
        if raw.get("resource_type") == "test" and raw.get("test_metadata"):
            manifest.nodes[unique_id] = GenericTestNode.from_dict(raw)
    for node in manifest.nodes.values():
        if getattr(node, "extra_ctes_injected", False):
            node.extra_ctes_injected = False
            node.extra_ctes = []
            node.compiled = False
            node.compiled_code = None
    return manifest
