"""A local dbt Cloud Administrative API v2 (the subset DbtCloudExecutor uses), for tests.

Runs real dbt Core behind the API; see ``server.DbtCloudServer``.
"""

from tests.dbt_cloud_api.server import DbtCloudServer, RecordedRequest, RunStatus

__all__ = ["DbtCloudServer", "RecordedRequest", "RunStatus"]
