"""Is the Prefect API there? Asked once, with a short timeout, before a build.

Prefect's own client retries a dead server for about 25 s and then fails with
chained tracebacks; a server that accepts connections but never answers can
hang a flow run's start. One plain ``GET /health`` with a timeout answers the
question in seconds. Without ``PREFECT_API_URL`` Prefect starts a temporary
server of its own: there is nothing to ask yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prefect.settings import (
    PREFECT_API_KEY,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    Settings,
    temporary_settings,
)

from prefect_dbt_orchestrator.domain.errors import SchedulerUnavailable

HEALTH_TIMEOUT_SECONDS = 5.0


def check_prefect_api(timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
    """Raise unless the configured Prefect API answers ``GET /health`` in time.

    Raises:
        SchedulerUnavailable: unreachable, too slow, or answering with an error.
    """
    url = PREFECT_API_URL.value()
    if not url:
        return
    key = PREFECT_API_KEY.value()
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    where = f"the Prefect API at {url}"
    try:
        response = httpx.get(f"{str(url).rstrip('/')}/health", headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise SchedulerUnavailable(where, f"did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SchedulerUnavailable(where, f"is unreachable ({type(exc).__name__})") from None
    if response.status_code >= 400:
        raise SchedulerUnavailable(where, f"answered HTTP {response.status_code} on /health")


def api_lost(timeout: float) -> bool:
    """True when the configured Prefect API no longer answers ``GET /health``."""
    try:
        check_prefect_api(timeout)
    except SchedulerUnavailable:
        return True
    return False


@contextmanager
def own_client_settings() -> Iterator[Settings]:
    """A private copy of Prefect's settings around a flow run this library starts.

    When the API goes away during that run, ``stop_retrying`` on the copy makes
    the engine's last calls fail at once instead of retrying a dead server for
    minutes (``PREFECT_CLIENT_MAX_RETRIES``, 5 with back-off by default), so the
    caller gets its results; the caller's own settings are left as they were.
    """
    retries = PREFECT_CLIENT_MAX_RETRIES.value()
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: retries}) as settings:
        yield settings


def stop_retrying(settings: Settings) -> None:
    """Prefect's client, under ``settings``, tries each call once from now on."""
    settings.client.max_retries = 0
