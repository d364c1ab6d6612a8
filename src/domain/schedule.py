"""The schedule: a small synchronous state machine a driver feeds; pure.

A driver starts what ``ready()`` returns, reports each end with
``complete(unique_id, result)`` and starts what the returned ``Progress``
makes ready. When a node fails (an error, a failing test, or a skip), every
planned node it blocks is skipped at once, naming the failed node, exactly as
``dbt build`` marks dependents of a failure. Every planned node ends with
exactly one result.

Exposures and saved queries never reach an executor: a driver hands what
was released to ``end_no_ops``, which ends those at once with their no-op
result (dbt runs nothing for them), and starts the rest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime

import attrs

from prefect_dbt_orchestrator.domain.errors import ScheduleError, UnknownNodeError, closest
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, no_op_result, skipped
from prefect_dbt_orchestrator.domain.plan import Plan, PlannedNode

UPSTREAM_FAILURE = "upstream failure"


@attrs.frozen
class Progress:
    """What one completion changed: nodes that may start now, nodes now skipped,
    and (from ``end_no_ops``) the no-op nodes ended at once."""

    ready: tuple[str, ...] = ()
    skipped: tuple[NodeResult, ...] = ()
    no_ops: tuple[NodeResult, ...] = ()


def _reverse(plan: Plan, attribute: str) -> dict[str, list[str]]:
    reverse: dict[str, list[str]] = {uid: [] for uid in plan.nodes}
    for uid in sorted(plan.nodes):
        for parent in getattr(plan.nodes[uid], attribute):
            if parent in reverse:
                reverse[parent].append(uid)
    return reverse


def blocks_dependents(node: PlannedNode, result: NodeResult) -> bool:
    """Whether ``result`` skips what ``node`` blocks.

    A ``severity: warn`` test that fails never blocks (dbt reports it as a
    warning); one that cannot run at all (a runtime error) still does.
    """
    if not result.is_failure:
        return False
    warn_failure = result.dbt_status in (DbtStatus.FAIL, DbtStatus.WARN)
    return node.can_block or not warn_failure


@attrs.define
class Schedule:
    """Tracks which planned nodes are waiting, released, done or skipped."""

    plan: Plan
    _unmet: dict[str, int]
    _dependents: dict[str, list[str]]
    _blocks: dict[str, list[str]]
    _phase_left: dict[int, int]
    _released: set[str] = attrs.Factory(set)
    _results: dict[str, NodeResult] = attrs.Factory(dict)

    @classmethod
    def start(cls, plan: Plan) -> Schedule:
        """A fresh schedule over ``plan``; nothing has run yet."""
        phase_left: dict[int, int] = {}
        for node in plan.nodes.values():
            phase_left[node.phase] = phase_left.get(node.phase, 0) + 1
        schedule = cls(
            plan,
            {uid: len(n.waits_for & plan.nodes.keys()) for uid, n in plan.nodes.items()},
            _reverse(plan, "waits_for"),
            _reverse(plan, "blocked_by"),
            phase_left,
        )
        schedule._release(sorted(plan.nodes))
        return schedule

    @property
    def results(self) -> Mapping[str, NodeResult]:
        """The result of every node that has ended so far."""
        return dict(self._results)

    @property
    def finished(self) -> bool:
        return len(self._results) == len(self.plan.nodes)

    def ready(self) -> tuple[str, ...]:
        """Nodes that may run now and have not ended (including running ones)."""
        return tuple(sorted(self._released - self._results.keys()))

    def complete(self, unique_id: str, result: NodeResult) -> Progress:
        """Record how ``unique_id`` ended.

        Raises:
            UnknownNodeError: ``unique_id`` is not in the plan.
            ScheduleError: it was not ready, or it already ended.
        """
        node = self._planned(unique_id)
        if unique_id in self._results:
            raise ScheduleError(unique_id, "it already ended")
        if unique_id not in self._released:
            raise ScheduleError(unique_id, "it was never ready")
        if result.unique_id != unique_id:
            raise ScheduleError(unique_id, f"the result is for {result.unique_id}")
        ready = self._finish(unique_id, result)
        skips: list[NodeResult] = []
        if blocks_dependents(node, result):
            skips = self._skip_blocked(unique_id)
            for skip in skips:
                ready += self._finish(skip.unique_id, skip)
        ready = [uid for uid in dict.fromkeys(ready) if uid not in self._results]
        return Progress(tuple(ready), tuple(skips))

    def end_no_ops(self, candidates: Iterable[str], at: datetime) -> Progress:
        """End each no-op node (exposure, saved query) among ``candidates``, ready
        nodes, with ``no_op_result`` at ``at``, as dbt does without running it.

        ``ready`` is what is left to start: the other candidates, then what
        those ends released (DEFERRED tests wait for every phase-0 node). A
        no-op never fails, so nothing is skipped.

        Raises:
            UnknownNodeError: a candidate is not in the plan.
            ScheduleError: a no-op candidate was not ready, or already ended.
        """
        todo = deque(candidates)
        run: list[str] = []
        ended: list[NodeResult] = []
        while todo:
            uid = todo.popleft()
            if not self._planned(uid).is_no_op:
                run.append(uid)
                continue
            ended.append(no_op_result(uid, at))
            todo.extend(self.complete(uid, ended[-1]).ready)
        return Progress(tuple(dict.fromkeys(run)), (), tuple(ended))

    def abandon(self, reason: str) -> tuple[NodeResult, ...]:
        """End every node that has no result yet as skipped for ``reason`` (an
        interrupt, a build timeout): the build stops, and each planned node
        still ends exactly once. Returns those skips, in unique_id order."""
        ended = tuple(
            skipped(uid, (), reason) for uid in sorted(self.plan.nodes) if uid not in self._results
        )
        for result in ended:
            self._results[result.unique_id] = result
        return ended

    def _planned(self, unique_id: str) -> PlannedNode:
        try:
            return self.plan.nodes[unique_id]
        except KeyError:
            hint = closest(unique_id, self.plan.nodes)
            raise UnknownNodeError(
                unique_id,
                "plan",
                f"did you mean {', '.join(hint)}?" if hint else "complete only planned nodes",
            ) from None

    def _skip_blocked(self, failed: str) -> list[NodeResult]:
        skips: list[NodeResult] = []
        stack = list(reversed(self._blocks[failed]))
        seen: set[str] = set()
        while stack:
            uid = stack.pop()
            if uid in seen or uid in self._results:
                continue
            seen.add(uid)
            skips.append(skipped(uid, (failed,), UPSTREAM_FAILURE))
            stack.extend(reversed(self._blocks[uid]))
        return skips

    def _finish(self, unique_id: str, result: NodeResult) -> list[str]:
        self._results[unique_id] = result
        phase = self.plan.nodes[unique_id].phase
        self._phase_left[phase] -= 1
        candidates = []
        for child in self._dependents[unique_id]:
            self._unmet[child] -= 1
            candidates.append(child)
        if self._phase_left[phase] == 0:
            candidates.extend(uid for uid, n in self.plan.nodes.items() if n.phase > phase)
        return self._release(candidates)

    def _release(self, candidates: list[str]) -> list[str]:
        open_phase = min((p for p, left in self._phase_left.items() if left), default=0)
        released = []
        for uid in candidates:
            if (
                uid not in self._released
                and self._unmet[uid] == 0
                and self.plan.nodes[uid].phase <= open_phase
            ):
                self._released.add(uid)
                released.append(uid)
        return released
