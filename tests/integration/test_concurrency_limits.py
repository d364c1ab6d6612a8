"""Global concurrency limits that say what they do: checked before anything
runs, a wait that is logged and gives up, on real dbt-duckdb and Prefect."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency

from prefect_dbt_orchestrator import ExecutionMode, PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.prefect._guards import ConcurrencyLimitError
from tests.integration.test_failures_visible import read_back

pytestmark = pytest.mark.integration


def _limit(slots: int) -> str:
    name = f"limit-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        async with get_client() as client:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=slots)
            )

    anyio.run(create)
    return name


def _orchestrator(project: Path, **options: object) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    return PrefectDbtOrchestrator(settings=settings, raise_on_failure=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("slots", [None, 0])
def test_a_missing_or_empty_limit_is_refused_before_anything_runs(
    demo_project: Path, tmp_path: Path, slots: int | None
) -> None:
    name = f"no-such-limit-{uuid.uuid4().hex[:8]}" if slots is None else _limit(slots)
    orchestrator = _orchestrator(demo_project, concurrency=name)

    with pytest.raises(ConcurrencyLimitError) as raised:
        orchestrator.run_build()

    assert name in str(raised.value) and "prefect gcl create" in str(raised.value)
    assert not (tmp_path / "demo.duckdb").exists()  # no node ran: nothing was built


@pytest.fixture
def full_limit() -> Iterator[str]:
    """A one-slot limit whose slot another holder keeps for the whole test."""
    name = _limit(1)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with concurrency(name, occupy=1):
            taken.set()
            release.wait(300)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(120)
    yield name
    release.set()
    holder.join(120)


@pytest.mark.parametrize("mode", [ExecutionMode.PER_NODE, ExecutionMode.PER_WAVE])
def test_a_full_limit_logs_the_wait_and_gives_up_with_an_error_per_node(
    demo_project: Path, full_limit: str, mode: ExecutionMode
) -> None:
    orchestrator = _orchestrator(
        demo_project, execution_mode=mode, concurrency=full_limit, concurrency_timeout_seconds=3
    )
    kept: list[dict[str, dict[str, object]]] = []

    @flow(name=f"full-limit-{uuid.uuid4().hex[:6]}", log_prints=False)
    def build() -> None:
        kept.append(orchestrator.run_build(select="raw_bikes"))

    state = build(return_state=True)

    results = kept[0]
    (seed_result,) = results.values()
    error = seed_result["error"]
    assert isinstance(error, dict) and error["type"] == "SlotTimeout"
    assert f"waited 3 s for a slot of the global concurrency limit {full_limit!r}" in str(
        error["message"]
    )
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    messages = [log.message for log in read_back(flow_run_id)[3]]
    assert any(
        f"waiting for a slot of the global concurrency limit {full_limit!r}" in m for m in messages
    )
    assert not any("Traceback" in m for m in messages)
