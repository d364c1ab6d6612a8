"""DbtCoreRecipe: how a worker process opens its own dbt session for a build.

A process pool's or a Dask cluster's worker cannot use the session of the
process that started the build. The recipe is plain data (paths, options,
the manifest's checksum) that pickles; ``open()`` in the worker makes a
``DbtCoreExecutor`` over the build's copy of the manifest and opens a
session that runs nodes only: the build's process created the schemas and
runs the on-run-start and on-run-end hooks once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from prefect_dbt_orchestrator.adapters.dbt_core.project import DbtProject
from prefect_dbt_orchestrator.domain.commands import InvocationOptions

if TYPE_CHECKING:  # dbt itself loads when a session opens, not with this module
    from prefect_dbt_orchestrator.adapters.dbt_core.executor import DbtCoreExecutor

MANIFEST_COPY = "manifest.json"


@attrs.frozen
class DbtCoreRecipe:
    """A worker's way to a dbt session for one build (see ``WorkerRecipe``).

    Attributes:
        project: where the project and its profiles are (the worker needs the
            same paths: the same machine, image or shared volume).
        manifest_path: the build's own copy of the manifest it runs.
        checksum: that copy's sha256, checked before it is used.
        node_ids: the build's nodes dbt runs (their schemas' relations are
            loaded into the session's relation cache, as ``dbt build`` does).
    """

    project: DbtProject
    manifest_path: Path
    checksum: str
    node_ids: tuple[str, ...]
    options: InvocationOptions
    root_package: str | None
    quiet: bool = True

    @classmethod
    def write(
        cls,
        folder: Path,
        project: DbtProject,
        manifest: Path,
        *,
        node_ids: Sequence[str],
        options: InvocationOptions,
        root_package: str | None,
        quiet: bool,
    ) -> DbtCoreRecipe:
        """The recipe, with ``manifest`` copied into ``folder``."""
        copy = folder / MANIFEST_COPY
        partial = copy.with_name(f".{MANIFEST_COPY}.{os.getpid()}")
        shutil.copyfile(manifest, partial)
        os.replace(partial, copy)
        return cls(project, copy, _sha256(copy), tuple(node_ids), options, root_package, quiet)

    @property
    def session_key(self) -> str:
        flags = "\0".join(self.options.dbt_flags())
        parts = (str(self.manifest_path), str(self.project.project_dir), self.checksum, flags)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def open(self) -> DbtCoreExecutor:
        """A ``DbtCoreExecutor`` with its session open in this process.

        Raises:
            ExecutorUnavailable: the manifest copy is gone or changed, or dbt
                cannot start here.
        """
        from prefect_dbt_orchestrator.adapters.dbt_core._errors import BACKEND
        from prefect_dbt_orchestrator.adapters.dbt_core.executor import DbtCoreExecutor
        from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

        try:
            found = _sha256(self.manifest_path)
        except OSError as exc:
            raise ExecutorUnavailable(
                BACKEND,
                f"this worker cannot read the build's manifest {self.manifest_path} ({exc})",
                "run the workers where the project is at the same path (the same machine, "
                "image or a shared volume)",
            ) from None
        if found != self.checksum:
            raise ExecutorUnavailable(
                BACKEND, f"the build's manifest {self.manifest_path} changed while it ran"
            )
        executor = DbtCoreExecutor(self.project, manifest_path=self.manifest_path, quiet=self.quiet)
        executor.join_run(self.node_ids, options=self.options, root_package=self.root_package)
        return executor


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
