"""DbtCloudCredentials: the account and API token the dbt Cloud executor uses.

A plain value, usable without Prefect. Its token never shows: not in its
repr, not in its str, not when it is compared or hashed into a log line,
and it refuses to be pickled (a process pool would otherwise carry it into
task parameters). The Prefect block of the same name maps to it
(``adapters/prefect``).
"""

from __future__ import annotations

from typing import NoReturn
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
