"""``--task-runner``: where the CLI's node (or wave) tasks run.

``thread`` (the default: Prefect's thread pool, one dbt session in this
process), ``process`` or ``process:N`` (Prefect's process pool of N workers),
``dask`` or ``dask:N`` (a local Dask cluster of N worker processes), and
``dask:tcp://host:port`` (an existing Dask cluster's scheduler).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Prefect loads when a build starts, not with the CLI (ls, plan)
    from prefect.task_runners import TaskRunner

KINDS = ("thread", "process", "dask")
HELP = (
    "where node tasks run: thread (default), process[:N] (a process pool), dask[:N] "
    "(a local Dask cluster of N worker processes) or dask:tcp://HOST:PORT (an existing one); "
    "not with a DuckDB file"
)


def task_runner_spec(text: str) -> str:
    """argparse's check of ``--task-runner``: the spec, unchanged."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS or (kind == "thread" and rest):
        raise argparse.ArgumentTypeError(f"{text!r} is not a task runner: {HELP}")
    if rest and not rest.isdigit() and not (kind == "dask" and "://" in rest):
        raise argparse.ArgumentTypeError(
            f"{text!r}: after {kind}: give a number of workers"
            + (" or a scheduler address (tcp://host:port)" if kind == "dask" else "")
        )
    if rest.isdigit() and int(rest) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the number of workers must be 1 or more")
    return text


def task_runner_for(spec: str | None) -> TaskRunner[Any] | None:
    """The task runner ``spec`` names; None for the default thread pool.

    Raises:
        SystemExit: ``dask`` without prefect-dask installed (exit status 2).
    """
    if spec is None or spec == "thread":
        return None
    from prefect.task_runners import ProcessPoolTaskRunner

    kind, _, rest = spec.partition(":")
    if kind == "process":
        return ProcessPoolTaskRunner(max_workers=int(rest) if rest else None)
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise SystemExit(
            "dbt-orchestrate: --task-runner dask needs prefect-dask: "
            'pip install "prefect-dbt-orchestrator[dask]"'
        ) from None
    if "://" in rest:
        runner: TaskRunner[Any] = DaskTaskRunner(address=rest)
        return runner
    workers = {"n_workers": int(rest)} if rest else {}
    return DaskTaskRunner(cluster_kwargs={**workers, "threads_per_worker": 1, "processes": True})
