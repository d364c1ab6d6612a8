"""Retry only what failed: a previous run's ``run_results.json``, read back; pure.

``dbt retry`` re-runs every result whose status is error, fail, skipped,
runtime error or partial success, with the flags the previous run recorded
in ``args``. ``run_build(retry_failed=True)`` does the same through the
orchestrator (any executor, both modes): ``read_previous_run`` turns the
document (ours, written with ``write_run_results``, or plain dbt's) into
results, ``plan_retry`` plans exactly the nodes to run again, and the other
results are carried over, marked ``carried_over``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.build_plan import BuildPlan
from prefect_dbt_orchestrator.domain.cli_args import flag_names
from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.graph import build_graph
from prefect_dbt_orchestrator.domain.manifest import Manifest
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    NodeResult,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.plan import plan_build
from prefect_dbt_orchestrator.domain.redaction import REDACTED
from prefect_dbt_orchestrator.domain.result_entries import EntryError, result_from_entry
from prefect_dbt_orchestrator.domain.selection.request import SelectionRequest

# dbt's core/dbt/task/retry.py: the statuses a retry runs again.
RETRY_STATUSES = frozenset(
    {
        DbtStatus.ERROR,
        DbtStatus.FAIL,
        DbtStatus.SKIPPED,
        DbtStatus.RUNTIME_ERROR,
        DbtStatus.PARTIAL_SUCCESS,
    }
)


@attrs.frozen
class PreviousRunError(PlanError):
    """The previous run's results cannot be used for a retry."""

    source: str
    problem: str

    def __str__(self) -> str:
        return (
            f"cannot retry from {self.source}: {self.problem}; run the build first "
            "(with write_run_results=True, or plain `dbt build`), then retry"
        )


@attrs.frozen
class SecretVarsError(PlanError):
    """The previous run's vars were recorded redacted, so they cannot be replayed."""

    source: str
    keys: tuple[str, ...]

    def __str__(self) -> str:
        names = ", ".join(self.keys)
        return (
            f"the previous run's --vars in {self.source} hold secret values, recorded as "
            f"{REDACTED} ({names}); pass the vars again: extra_cli_args=['--vars', '...'] "
            "(or `dbt-orchestrate retry --vars '...'`)"
        )


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(repr=False)
class PreviousRun:
    """A previous run: each node's recorded result, and the ``args`` dbt recorded."""

    source: str
    results: Mapping[str, NodeResult] = attrs.field(converter=_frozen)
    args: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)

    def __repr__(self) -> str:  # short: Prefect records it among a flow run's parameters
        return f"PreviousRun({self.source!r}, {len(self.results)} result(s))"

    @property
    def to_retry(self) -> tuple[str, ...]:
        """The nodes to run again, sorted."""
        return tuple(
            sorted(uid for uid, r in self.results.items() if r.dbt_status in RETRY_STATUSES)
        )

    def carried_over(self) -> dict[str, NodeResult]:
        """The recorded results of every node not run again, marked carried over
        (a failed node the project no longer has is neither run nor carried)."""
        return {
            uid: attrs.evolve(result, carried_over=True)
            for uid, result in sorted(self.results.items())
            if result.dbt_status not in RETRY_STATUSES
        }

    def selection(self) -> SelectionRequest:
        """The previous run's selection flags as recorded (what the retry records again)."""
        args = self.args
        indirect = args.get("indirect_selection")
        selector = args.get("selector")
        return SelectionRequest(
            select=_texts(args.get("select")),
            exclude=_texts(args.get("exclude")),
            selector=selector if isinstance(selector, str) else None,
            resource_types=_texts(args.get("resource_types")),
            exclude_resource_types=_texts(args.get("exclude_resource_types")),
            indirect_selection=indirect if isinstance(indirect, str) else "eager",
        )

    @property
    def full_refresh(self) -> bool:
        return bool(self.args.get("full_refresh"))

    @property
    def target(self) -> str | None:
        target = self.args.get("target")
        return target if isinstance(target, str) and target else None

    def replayed_extra_args(self, extra_args: Sequence[str]) -> tuple[str, ...]:
        """``extra_args`` plus the previous run's ``--vars`` when they give none.

        Raises:
            SecretVarsError: the recorded vars hold redacted values.
        """
        given = tuple(extra_args)
        recorded = self.args.get("vars")
        if any("--vars" in flag_names(arg) for arg in given) or not recorded:
            return given
        if not isinstance(recorded, Mapping):
            raise PreviousRunError(self.source, "its args.vars is not a mapping")
        hidden = tuple(sorted(str(k) for k, v in recorded.items() if _holds_redacted(v)))
        if hidden:
            raise SecretVarsError(self.source, hidden)
        return (*given, "--vars", json.dumps(dict(recorded), sort_keys=True))


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _holds_redacted(value: Any) -> bool:
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, Mapping):
        return any(_holds_redacted(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_redacted(v) for v in value)
    return False


def _result(source: str, entry: Any) -> NodeResult:
    try:
        return result_from_entry(entry, error_kind="PreviousRunError")
    except EntryError as exc:
        raise PreviousRunError(source, str(exc)) from None


def read_previous_run(document: Any, source: str) -> PreviousRun:
    """The previous run in ``document`` (a parsed ``run_results.json``).

    Raises:
        PreviousRunError: not a run_results document, or a result is unreadable.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("results"), list):
        raise PreviousRunError(source, "it is not a run_results.json (no results list)")
    args = document.get("args")
    results = [_result(source, entry) for entry in document["results"]]
    return PreviousRun(
        source, {r.unique_id: r for r in results}, args if isinstance(args, Mapping) else {}
    )


def plan_retry(
    manifest: Manifest, previous: PreviousRun, strategy: TestStrategy = TestStrategy.IMMEDIATE
) -> BuildPlan:
    """The plan of a retry: exactly the previous run's failed and skipped nodes
    that the project still has, each waiting only for the others it depends on.

    The nodes the project no longer has are named in ``warnings``.
    """
    graph = build_graph(manifest)
    wanted = previous.to_retry
    kept = frozenset(uid for uid in wanted if uid in graph.members)
    gone = [uid for uid in wanted if uid not in kept]
    plan = plan_build(graph, kept, strategy)
    warnings = [
        f"{uid} was {_status_word(previous.results[uid])} in the previous run but is no "
        "longer in the project (or is disabled): not retried"
        for uid in gone
    ]
    return BuildPlan(
        plan,
        {uid: _retry_reason(previous.results[uid]) for uid in plan.nodes},
        nodes={uid: graph.members[uid] for uid in plan.nodes},
        selected=kept,
        warnings=warnings,
        manifest=manifest,
    )


def _status_word(result: NodeResult) -> str:
    return result.dbt_status.value if result.dbt_status else result.status.value


def _retry_reason(result: NodeResult) -> str:
    return f"retry: {_status_word(result)} in the previous run"
