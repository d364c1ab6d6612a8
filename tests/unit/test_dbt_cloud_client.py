"""The dbt Cloud credentials and API client: typed errors, a shared cool-down
after a 429, retries of 5xx and dropped connections, and a token that never
shows. The API is an in-memory httpx transport (a fake of dbt Cloud's
answers); the real-server tests are in tests/integration.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Callable

import attrs
import httpx
import pytest

from prefect_dbt_orchestrator.adapters.dbt_cloud._client import (
    MAX_ATTEMPTS,
    CoolDown,
    DbtCloudClient,
)
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

TOKEN = "dbtc_unit-test-token-0123456789"
OK = {"status": {"code": 200, "is_success": True}, "data": {"id": 7}}


def credentials(base_url: str = "http://127.0.0.1:9") -> DbtCloudCredentials:
    return DbtCloudCredentials(api_key=TOKEN, account_id=42, base_url=base_url)


@attrs.define
class FakeApi:
    """Answers with ``answers`` in turn (then 200 OK); records each request."""

    answers: list[httpx.Response | Exception] = attrs.Factory(list)
    seen: list[tuple[float, httpx.Request]] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.seen.append((time.monotonic(), request))
            answer = self.answers.pop(0) if self.answers else httpx.Response(200, json=OK)
        if isinstance(answer, Exception):
            raise answer
        return answer


@attrs.define
class FakeTime:
    """A clock that moves only when slept on; remembers each sleep."""

    now: float = 1000.0
    slept: list[float] = attrs.Factory(list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(api: FakeApi, fake: FakeTime) -> DbtCloudClient:
    return DbtCloudClient(
        credentials(),
        transport=httpx.MockTransport(api),
        cool_down=CoolDown(clock=fake.clock, sleep=fake.sleep),
        sleep=fake.sleep,
    )


def test_the_token_shows_nowhere_and_does_not_pickle() -> None:
    creds = credentials()

    assert TOKEN not in repr(creds) and TOKEN not in str(creds)
    assert TOKEN not in repr(DbtCloudClient(creds))
    assert creds.headers()["Authorization"] == f"Token {TOKEN}"
    assert creds.api_root == "http://127.0.0.1:9/api/v2/accounts/42/"
    with pytest.raises(TypeError, match="do not pickle"):
        pickle.dumps(creds)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"api_key": " ", "account_id": 1}, "api_key is empty"),
        ({"api_key": TOKEN, "account_id": 0}, "account_id=0"),
        ({"api_key": TOKEN, "account_id": "x"}, "account_id='x'"),
        ({"api_key": TOKEN, "account_id": 1, "base_url": "cloud.getdbt.com"}, "base_url="),
    ],
)
def test_bad_credentials_are_refused_with_what_to_pass(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(OptionsConflictError, match=named) as refused:
        DbtCloudCredentials(**fields)  # type: ignore[arg-type]
    assert TOKEN not in str(refused.value)


def test_a_429_pauses_for_retry_after_then_the_call_succeeds() -> None:
    api, fake = FakeApi([httpx.Response(429, headers={"Retry-After": "7"})]), FakeTime()
    client = client_for(api, fake)

    assert client.get("jobs/7/") == {"id": 7}

    assert fake.slept == [7.0]  # the pause, and no back-off on top of it
    assert len(api.seen) == 2
    assert api.seen[0][1].headers["Authorization"] == f"Token {TOKEN}"


def test_5xx_and_dropped_connections_are_retried_with_growing_back_off() -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    api = FakeApi([httpx.Response(500), dropped, httpx.Response(503)])
    fake = FakeTime()

    assert client_for(api, fake).post("jobs/", {"name": "x"}) == {"id": 7}

    assert fake.slept == [1.0, 2.0, 4.0]
    assert json.loads(api.seen[-1][1].content) == {"name": "x"}


def test_a_call_that_keeps_failing_is_a_typed_error_naming_the_endpoint() -> None:
    refused = httpx.ConnectError(f"refused (token {TOKEN})")
    api, fake = FakeApi([refused] * MAX_ATTEMPTS), FakeTime()

    with pytest.raises(ExecutorUnavailable, match="GET runs/3/ failed 5 times") as failed:
        client_for(api, fake).get("runs/3/")

    assert "ConnectError" in str(failed.value)
    assert TOKEN not in str(failed.value)  # scrubbed, even from the transport's words


@pytest.mark.parametrize(
    ("status", "fix"), [(401, "API token"), (404, "account_id, project_id"), (400, "answer")]
)
def test_a_refusal_is_not_retried_and_says_what_to_check(status: int, fix: str) -> None:
    body = {"status": {"code": status, "is_success": False, "user_message": "Invalid token"}}
    api, fake = FakeApi([httpx.Response(status, json=body)]), FakeTime()

    with pytest.raises(ExecutorUnavailable, match=fix) as refused:
        client_for(api, fake).delete("jobs/9/")

    assert f"DELETE jobs/9/ was refused: {status} Invalid token" in str(refused.value)
    assert len(api.seen) == 1 and fake.slept == []


def test_every_client_of_the_account_waits_out_one_cool_down() -> None:
    """A real clock: the first call gets a 429 with Retry-After 1; the calls
    that three other clients (other node tasks) start meanwhile all wait for
    the same pause. No request arrives during it, and there is one pause."""
    api = FakeApi([httpx.Response(429, headers={"Retry-After": "1"})])
    cool_down = CoolDown()

    def client() -> DbtCloudClient:
        return DbtCloudClient(
            credentials(), transport=httpx.MockTransport(api), cool_down=cool_down
        )

    errors: list[BaseException] = []

    def call(one: DbtCloudClient) -> Callable[[], None]:
        def run() -> None:
            try:
                one.get("runs/1/")
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        return run

    first = threading.Thread(target=call(client()))
    first.start()
    deadline = time.monotonic() + 120
    while cool_down.pauses == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    others = [threading.Thread(target=call(client())) for _ in range(3)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(120)

    assert errors == []
    assert cool_down.pauses == 1
    after_429 = [at for at, _ in api.seen[1:]]
    assert len(after_429) == 4  # the first call's retry and the three others
    assert all(at >= cool_down.until for at in after_429)
