"""DbtCloudCredentials: the account and API token the dbt Cloud executor uses.

A plain value, usable without Prefect. Its token never shows: not in its
repr, not in its str, not when it is compared or hashed into a log line,
and it refuses to be pickled (a process pool would otherwise carry it into
task parameters). The Prefect block of the same name maps to it
(``adapters/prefect``). Also here: the checks of the executor's other
inputs (ids, durations, the job name prefix).
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import attrs

from prefect_dbt_orchestrator.domain.errors import OptionsConflictError

DEFAULT_BASE_URL = "https://cloud.getdbt.com"  # the multi-tenant host


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionsConflictError(
            f"base_url={value!r} is not an http(s) address",
            "pass the dbt Cloud host, e.g. https://cloud.getdbt.com or your region's or "
            "single-tenant host (https://ACCOUNT_PREFIX.us1.dbt.com)",
        )
    return value.rstrip("/")


def _account_id(value: int | str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise OptionsConflictError(
            f"account_id={value!r} is not a dbt Cloud account id",
            "pass the number in your dbt Cloud URL: /deploy/{account_id}/...",
        )
    return number


def _api_key(value: str) -> str:
    if not str(value).strip():
        raise OptionsConflictError(
            "the dbt Cloud api_key is empty",
            "pass a service token or personal access token (Account settings -> API tokens)",
        )
    return str(value).strip()


@attrs.frozen(repr=False)
class DbtCloudCredentials:
    """An account of dbt Cloud and the token that may use its API.

    Raises:
        OptionsConflictError: an empty token, a bad account id or base URL.
    """

    api_key: str = attrs.field(converter=_api_key, eq=False, hash=False)
    account_id: int = attrs.field(converter=_account_id)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, converter=_base_url)

    def __repr__(self) -> str:
        return (
            f"DbtCloudCredentials(account_id={self.account_id}, base_url={self.base_url!r}, "
            "api_key=<hidden>)"
        )

    __str__ = __repr__

    @property
    def api_root(self) -> str:
        """The account's v2 API root, ending with a slash."""
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/"

    def headers(self) -> dict[str, str]:
        """The headers every API request carries."""
        return {"Authorization": f"Token {self.api_key}", "Accept": "application/json"}

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "DbtCloudCredentials do not pickle: the token would travel with them; load the "
            "credentials where they are used (DbtCloudCredentials block .load(name))"
        )


def as_credentials(given: Any) -> DbtCloudCredentials:
    """``given`` as plain credentials: ours, a block with ``plain()``, or anything
    with ``api_key`` (a str or a pydantic SecretStr), ``account_id`` and maybe
    ``base_url`` (prefect-dbt's block of the same name)."""
    if isinstance(given, DbtCloudCredentials):
        return given
    plain = getattr(given, "plain", None)
    if callable(plain):
        found = plain()
        if isinstance(found, DbtCloudCredentials):
            return found
    key = getattr(given, "api_key", None)
    secret = getattr(key, "get_secret_value", None)
    values: dict[str, Any] = {
        "api_key": secret() if callable(secret) else key,
        "account_id": getattr(given, "account_id", None),
    }
    if getattr(given, "base_url", None):
        values["base_url"] = str(given.base_url)
    return DbtCloudCredentials(**values)


def checked_id(name: str, value: object) -> int:
    number = value if isinstance(value, int) else 0
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number <= 0:
        raise OptionsConflictError(
            f"{name}={value!r} is not a dbt Cloud id",
            f"pass the number in the dbt Cloud URL (see the README: finding your {name})",
        )
    return number


def checked_seconds(name: str, value: object) -> float:
    if not isinstance(value, int | float) or value <= 0:
        raise OptionsConflictError(f"{name}={value!r} is not a duration", "pass seconds > 0")
    return float(value)


def checked_prefix(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value.strip()) <= 100:
        raise OptionsConflictError(
            f"job_name_prefix={value!r} cannot name jobs",
            "pass 1 to 100 characters; orphans are found by it, so keep it per team or CI",
        )
    return value.strip()
