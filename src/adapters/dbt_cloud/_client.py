"""The dbt Cloud Administrative API v2 over httpx, polite to a shared service.

Every request of one account goes through one ``CoolDown``: after a 429 dbt
Cloud asks for a pause (``Retry-After``), and every thread of the build waits
it out instead of each retrying on its own (no storm). 5xx answers and
dropped connections are retried a few times, with back-off. What still
fails is an ``ExecutorUnavailable`` naming the endpoint; the token never
appears in it (nor in a URL: it travels in a header).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx

from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DbtCloudCredentials
from prefect_dbt_orchestrator.domain.redaction import Secrets
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

BACKEND = "dbt Cloud"
DEFAULT_RETRY_AFTER = 30.0  # seconds, when a 429 gives no Retry-After
MAX_ATTEMPTS = 5  # per request, for 429, 5xx and transport errors
BACKOFF_SECONDS = 1.0  # doubled after each 5xx or transport error
REQUEST_TIMEOUT = httpx.Timeout(60.0, connect=30.0)


@attrs.define
class CoolDown:
    """The pause dbt Cloud asked one account for, shared by every thread."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    until: float = 0.0
    pauses: int = 0  # how many 429s started a pause (tests read it)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def wait(self) -> None:
        """Return once no pause is running."""
        while True:
            with self._lock:
                left = self.until - self.clock()
            if left <= 0:
                return
            self.sleep(left)

    def pause(self, seconds: float) -> None:
        """Start (or lengthen) a pause of ``seconds`` from now."""
        with self._lock:
            until = self.clock() + max(seconds, 0.0)
            if until > self.until:
                if self.until <= self.clock():
                    self.pauses += 1
                self.until = until


_COOL_DOWNS: dict[tuple[str, int], CoolDown] = {}
_COOL_DOWNS_LOCK = threading.Lock()


def cool_down_for(credentials: DbtCloudCredentials) -> CoolDown:
    """The one ``CoolDown`` of ``credentials``' account in this process."""
    key = (credentials.base_url, credentials.account_id)
    with _COOL_DOWNS_LOCK:
        return _COOL_DOWNS.setdefault(key, CoolDown())


@attrs.frozen
class ApiRefused(ExecutorUnavailable):
    """The API answered 4xx (not 429): ``status_code`` says which (404: the
    job or run is gone)."""

    status_code: int = 0


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER


class DbtCloudClient:
    """Calls under ``/api/v2/accounts/{account_id}/``; returns each answer's ``data``."""

    def __init__(
        self,
        credentials: DbtCloudCredentials,
        *,
        transport: httpx.BaseTransport | None = None,
        cool_down: CoolDown | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credentials = credentials
        self._secrets = Secrets((credentials.api_key,))
        self._cool_down = cool_down or cool_down_for(credentials)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=credentials.api_root,
            headers=credentials.headers(),
            timeout=REQUEST_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"DbtCloudClient({self._credentials!r})"

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def artifact(self, path: str) -> Any:
        """An artifact's JSON (``runs/{id}/artifacts/run_results.json``...): the
        answer itself, not a ``data`` field."""
        return self.request("GET", path, raw=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        raw: bool = False,
    ) -> Any:
        """One API call, retried for 429 (after the account's pause), 5xx and
        dropped connections.

        Raises:
            ExecutorUnavailable: the API refused the call (4xx), kept failing,
                or could not be reached.
        """
        what = f"{method} {path}"
        delay = BACKOFF_SECONDS
        problem = "no attempt was made"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._cool_down.wait()
            try:
                response = self._http.request(method, path, params=params, json=body)
            except httpx.TransportError as exc:  # refused, dropped, timed out
                problem = f"{type(exc).__name__}: {self._secrets.scrub(str(exc))}"
            else:
                if response.status_code == 429:
                    self._cool_down.pause(_retry_after(response))
                    problem = "429 Too Many Requests"
                    continue
                if response.status_code < 500:
                    return self._answer(what, response, raw)
                problem = f"{response.status_code} {response.reason_phrase}"
            if attempt < MAX_ATTEMPTS:
                self._sleep(delay)
                delay *= 2
        raise ExecutorUnavailable(
            BACKEND,
            f"{what} failed {MAX_ATTEMPTS} times, last with {problem}",
            "check the dbt Cloud status page and base_url; the build can be run again",
        )

    def _answer(self, what: str, response: httpx.Response, raw: bool) -> Any:
        if response.status_code == 204:  # dbt Cloud deletes a job with no body
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_error:
            problem, fix = self._refusal(what, response, payload)
            raise ApiRefused(BACKEND, problem, fix, response.status_code)
        if raw:
            return payload
        if not isinstance(payload, dict) or "data" not in payload:
            raise ExecutorUnavailable(
                BACKEND, f"{what} answered {response.status_code} without a `data` field"
            )
        return payload["data"]

    def _refusal(self, what: str, response: httpx.Response, payload: object) -> tuple[str, str]:
        message = ""
        if isinstance(payload, dict):
            status = payload.get("status")
            if isinstance(status, dict):
                message = str(status.get("user_message") or "")
        problem = f"{what} was refused: {response.status_code} {message}".rstrip()
        problem = self._secrets.scrub(problem)
        if response.status_code in (401, 403):
            return problem, "check the API token and that it may use this account and project"
        if response.status_code == 404:
            return problem, "check account_id, project_id, environment_id and job ids"
        return problem, "see the dbt Cloud API's answer above"
