"""A Prefect API that is not there fails a build at once, with one clear message.

Two real failures, no mock: a port nobody listens on, and a socket that accepts
connections and never answers (where Prefect's own client would hang).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.domain.errors import SchedulerUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listening socket that never answers: its API URL."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@pytest.mark.parametrize(
    ("server", "said"),
    [("closed_port", "is unreachable (ConnectError)"), ("silent_server", "did not answer")],
)
def test_a_build_outside_a_flow_fails_at_once_when_the_api_is_not_there(
    demo_project: Path, request: pytest.FixtureRequest, server: str, said: str
) -> None:
    url = request.getfixturevalue(server)
    settings = PrefectDbtSettings(project_dir=demo_project, profiles_dir=demo_project)
    orchestrator = PrefectDbtOrchestrator(settings=settings)
    started = time.monotonic()

    with temporary_settings({PREFECT_API_URL: url}), pytest.raises(SchedulerUnavailable) as raised:
        orchestrator.run_build()

    print(f"{server}: refused in {time.monotonic() - started:.1f} s")
    assert url in str(raised.value) and said in str(raised.value)
    assert "prefect server start" in str(raised.value)
    assert not (demo_project / "target" / "manifest.json").exists()  # nothing was parsed
