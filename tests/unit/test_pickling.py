"""Domain values and the errors node tasks raise pickle, and come back equal,
also in another process: what a process pool or a Dask worker needs."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from types import MappingProxyType
from typing import Any

import pytest

from prefect_dbt_orchestrator.adapters.prefect._tasks import NodeFailed, WaveFailed
from prefect_dbt_orchestrator.domain.build_plan import plan_selection
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, ErrorInfo, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from tests.corpus import PROJECTS, manifest

FAILED = NodeResult(
    "model.p.a",
    NodeStatus.ERROR,
    DbtStatus.ERROR,
    message="boom",
    error=ErrorInfo("Runtime Error in model a (models/a.sql)\n  boom", "DbtRuntimeError"),
    adapter_response={"_message": "ERROR", "code": "X"},
)


def _round_trip(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))


@pytest.mark.parametrize("project", PROJECTS)
def test_a_manifest_and_its_plan_come_back_equal_and_still_read_only(project: str) -> None:
    loaded = manifest(project)
    build_plan = plan_selection(loaded, SelectionRequest())

    again = _round_trip(loaded)
    assert again == loaded
    assert isinstance(again.nodes, MappingProxyType)
    with pytest.raises(TypeError):
        again.nodes["x"] = None  # type: ignore[index]
    assert _round_trip(build_plan) == build_plan


def test_results_and_the_errors_node_tasks_raise_keep_their_results() -> None:
    assert _round_trip(FAILED) == FAILED
    assert isinstance(_round_trip(FAILED).adapter_response, MappingProxyType)
    assert _round_trip(NodeFailed(FAILED)).result == FAILED
    assert str(_round_trip(NodeFailed(FAILED))) == str(NodeFailed(FAILED))
    assert _round_trip(WaveFailed({FAILED.unique_id: FAILED})).results == {FAILED.unique_id: FAILED}


def _echo(value: Any) -> Any:
    return value


def test_they_cross_a_process_boundary_both_ways() -> None:
    loaded = manifest("jaffle_shop")
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a worker is
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        back_result, back_manifest = pool.submit(_echo, (FAILED, loaded)).result()

    assert back_result == FAILED and back_manifest == loaded
