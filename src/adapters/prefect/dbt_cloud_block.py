"""The ``DbtCloudCredentials`` Prefect block: dbt Cloud credentials saved on the
Prefect server, loaded by name in a flow.

    DbtCloudCredentials(api_key="dbc_...", account_id=12345).save("my-dbt-cloud")
    credentials = DbtCloudCredentials.load("my-dbt-cloud")
    DbtCloudExecutor(credentials, project_id=..., environment_id=...)

The token is a ``SecretStr``: Prefect shows it masked, in the UI and in the
block's repr. ``DbtCloudExecutor`` takes the block (or the plain value of
``adapters.dbt_cloud``, which ``plain()`` makes).
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import DEFAULT_BASE_URL
from prefect_dbt_orchestrator.adapters.dbt_cloud.credentials import (
    DbtCloudCredentials as PlainCredentials,
)


class DbtCloudCredentials(Block):
    """An account of dbt Cloud and a token that may use its Administrative API."""

    _block_type_name: ClassVar[str] = "dbt Cloud Orchestrator Credentials"
    _block_type_slug: ClassVar[str] = "dbt-cloud-orchestrator-credentials"
    _description: ClassVar[str] = (
        "A dbt Cloud account and API token for prefect-dbt-orchestrator's DbtCloudExecutor."
    )

    api_key: SecretStr = Field(description="A dbt Cloud service token or personal access token.")
    account_id: int = Field(description="The number in your dbt Cloud URL: /deploy/{id}/.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="The dbt Cloud host: the multi-tenant one, a region's or a cell's.",
    )

    def plain(self) -> PlainCredentials:
        """The plain value the executor uses (checked).

        Raises:
            OptionsConflictError: an empty token, a bad account id or base URL.
        """
        return PlainCredentials(
            api_key=self.api_key.get_secret_value(),
            account_id=self.account_id,
            base_url=self.base_url,
        )
