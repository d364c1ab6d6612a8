"""A Prefect-free driver: runs a plan on a thread pool against any executor.

It proves the planner is reusable: the whole scheduling logic is the
domain's ``Schedule``; this module only submits work and reports ends.
Exposures and saved queries never reach the executor: ``end_no_ops`` ends
them the moment they are released.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import attrs

from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, missing_result
from prefect_dbt_orchestrator.domain.plan import Plan
from prefect_dbt_orchestrator.domain.schedule import Schedule
from prefect_dbt_orchestrator.ports.executor import DbtExecutor


@attrs.frozen
class ThreadPoolDriver:
    """Runs each node (or each wave) as soon as the schedule allows.

    Attributes:
        executor: any DbtExecutor (dbt Core, dbt Cloud, a fake).
        max_workers: how many nodes run at once (per-node mode).
        per_wave: run every ready batch as one ``run_wave`` call instead.
    """

    executor: DbtExecutor
    max_workers: int = 4
    per_wave: bool = False

    def run(
        self, plan: Plan, nodes: Mapping[str, Node], options: InvocationOptions
    ) -> dict[str, NodeResult]:
        """Run ``plan``; ``nodes`` maps each planned id to its manifest node.

        Returns one result per planned node. Raises what the executor raises
        when dbt cannot run at all (ExecutorUnavailable), after cancelling
        what has not started.
        """
        schedule = Schedule.start(plan)
        runnable = [uid for uid in sorted(plan.nodes) if not plan.nodes[uid].is_no_op]
        self.executor.start_run([nodes[uid] for uid in runnable], options=options)
        try:
            if self.per_wave:
                self._run_waves(schedule, nodes, options)
            else:
                self._run_nodes(schedule, nodes, options)
        finally:
            self.executor.finish_run()
        return dict(schedule.results)

    def _run_waves(
        self, schedule: Schedule, nodes: Mapping[str, Node], options: InvocationOptions
    ) -> None:
        batch = _to_start(schedule, schedule.ready())
        while batch:
            results = self.executor.run_wave([nodes[uid] for uid in batch], options=options)
            upcoming: list[str] = []
            for uid in batch:
                if uid not in schedule.results:
                    progress = schedule.complete(uid, results.get(uid) or missing_result(uid))
                    upcoming.extend(progress.ready)
            batch = _to_start(
                schedule, [uid for uid in dict.fromkeys(upcoming) if uid not in schedule.results]
            )

    def _run_nodes(
        self, schedule: Schedule, nodes: Mapping[str, Node], options: InvocationOptions
    ) -> None:
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            running: dict[Future[NodeResult], str] = {}
            for uid in _to_start(schedule, schedule.ready()):
                running[pool.submit(self.executor.run_node, nodes[uid], options=options)] = uid
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    uid = running.pop(future)
                    try:
                        result = future.result()
                    except BaseException:
                        for pending in running:
                            pending.cancel()
                        raise
                    for ready in _to_start(schedule, schedule.complete(uid, result).ready):
                        submitted = pool.submit(
                            self.executor.run_node, nodes[ready], options=options
                        )
                        running[submitted] = ready


def _to_start(schedule: Schedule, released: Iterable[str]) -> list[str]:
    """The released nodes the executor runs, once the no-op ones have ended."""
    return list(schedule.end_no_ops(released, datetime.now(UTC)).ready)
