"""``write_run_results=True``: the build's run_results.json, as dbt writes it,
into the target dir, so that ``dbt retry`` and dbt tooling read our builds."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from prefect_dbt_orchestrator.adapters.dbt_core._environment import version_of
from prefect_dbt_orchestrator.adapters.dbt_core._vars import cli_vars_and_secrets
from prefect_dbt_orchestrator.adapters.local.run_results_file import FILE_NAME, write_run_results
from prefect_dbt_orchestrator.adapters.prefect._build import BuildCall
from prefect_dbt_orchestrator.adapters.prefect.settings import PrefectDbtSettings
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult
from prefect_dbt_orchestrator.domain.run_results import build_args, run_results_document

_LOG = logging.getLogger("prefect_dbt_orchestrator")


def record_run_results(
    call: BuildCall,
    results: Mapping[str, NodeResult],
    nodes: Mapping[str, Node],
    settings: PrefectDbtSettings,
    elapsed: float,
) -> Path | None:
    """Write ``<target>/run_results.json`` atomically; None (and a warning) when
    it cannot be written: the build's results matter more than the file."""
    cli_vars, secrets = cli_vars_and_secrets(call.invocation.extra_args)
    path = Path(settings.target_dir) / FILE_NAME
    try:
        args = build_args(
            command=call.command,
            selection=call.request,
            invocation=call.invocation,
            project_dir=settings.project_dir,
            profiles_dir=settings.profiles_dir,
            target_path=settings.target_dir,
            secrets=secrets,
            cli_vars=cli_vars,
        )
        now = datetime.now(UTC)
        document = run_results_document(
            results,
            args=args,
            dbt_version=version_of("dbt-core"),
            invocation_id=str(uuid.uuid4()),
            generated_at=now,
            elapsed_time=elapsed,
            nodes=nodes,
            secrets=secrets,
        )
        write_run_results(path, document)
    except (OSError, ValueError) as exc:
        _LOG.warning("could not write %s: %s", path, exc)
        return None
    return path
