"""Prefect asset lineage: each model, seed and snapshot that ran is an asset
materialization, with its upstream relations (through ephemeral models, and
the dbt sources it reads) as the assets it depends on.

The events are the ones a ``MaterializingTask`` emits (``prefect.asset.
referenced`` for each upstream asset, here once per build, then ``prefect.
asset.materialization.succeeded`` or ``.failed``, with the same resource and
related shapes and ``dbt`` as ``asset-materialized-by``), sent as each node's
final result is known, in both execution modes. Sending them here rather than from a
``MaterializingTask`` keeps the lineage exact: Prefect would also inherit
upstream assets through the ``wait_for`` edges of tests (a relationships test
would add its other model as an upstream of every child), it cannot give a
wave's nodes each their own upstream assets, and it would emit once per
attempt of a retried node. A cached node materializes nothing and sends none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs
from prefect.assets import Asset, AssetProperties
from prefect.context import AssetContext
from prefect.events import emit_event

from prefect_dbt_orchestrator.domain.assets import AssetDescription, describe_asset
from prefect_dbt_orchestrator.domain.manifest import Group, Manifest, Node
from prefect_dbt_orchestrator.domain.outcomes import NodeResult, NodeStatus

MATERIALIZED_BY = "dbt"
_LOG = logging.getLogger("prefect_dbt_orchestrator")
_PLAIN = (str, int, float, bool, type(None))


@attrs.frozen
class AssetEvents:
    """Sends the asset events of one build's nodes."""

    adapter_type: str | None
    members: Mapping[str, Node]
    groups: Mapping[str, Group]
    include_compiled_code: bool = False
    referenced: set[str] = attrs.field(factory=set, eq=False)  # the keys already sent so

    @classmethod
    def for_manifest(cls, manifest: Manifest, include_compiled_code: bool) -> AssetEvents:
        return cls(
            manifest.metadata.adapter_type,
            manifest.all_resources(),
            manifest.groups,
            include_compiled_code,
        )

    def describe(self, result: NodeResult) -> AssetDescription | None:
        """The asset ``result``'s node materialized, or None: it has no relation
        (tests, ephemeral models), or it did not run (skipped, cached, carried over)."""
        if result.status not in (NodeStatus.SUCCESS, NodeStatus.ERROR) or result.carried_over:
            return None
        node = self.members.get(result.unique_id)
        if node is None:
            return None
        return describe_asset(
            self.adapter_type,
            node,
            self.members,
            self.groups,
            compiled_code=result.compiled_code,
            include_compiled_code=self.include_compiled_code,
        )

    def materialized(self, result: NodeResult, task_run_id: UUID | None = None) -> None:
        """Send ``result``'s asset events (never raises: lineage must not fail a build)."""
        try:
            described = self.describe(result)
            if described is not None:
                _emit(described, result, task_run_id, self.referenced)
        except Exception as exc:  # noqa: BLE001  # an event the API refuses, a bad key...
            _LOG.warning("no asset event for %s: %s", result.unique_id, exc)


def _emit(
    described: AssetDescription, result: NodeResult, task_run_id: UUID | None, sent: set[str]
) -> None:
    properties = AssetProperties(
        name=described.name,
        description=described.description or None,
        owners=list(described.owners) or None,
    )
    asset = Asset(key=described.key, properties=properties)
    upstream = [Asset(key=key) for key in described.upstream_keys]
    for parent in upstream:
        if parent.key in sent:  # once per build is enough to make it known
            continue
        sent.add(parent.key)
        emit_event(
            event="prefect.asset.referenced",
            resource=AssetContext.asset_as_resource(parent),
            related=[],
        )
    related = [AssetContext.asset_as_related(parent) for parent in upstream]
    related.append(AssetContext.related_materialized_by(MATERIALIZED_BY))
    if task_run_id is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.task-run.{task_run_id}",
                "prefect.resource.role": "task-run",
            }
        )
    outcome = "succeeded" if result.status is NodeStatus.SUCCESS else "failed"
    emit_event(
        event=f"prefect.asset.materialization.{outcome}",
        resource=AssetContext.asset_as_resource(asset),
        related=related,
        payload=_payload(described, result),
    )


def _payload(described: AssetDescription, result: NodeResult) -> dict[str, Any]:
    """The node's metadata and what its run reported (JSON values only)."""
    payload = dict(described.metadata)
    payload["status"] = result.status.value
    payload["dbt_status"] = result.dbt_status.value if result.dbt_status else None
    payload["attempts"] = result.attempts
    if result.timing is not None:
        payload["execution_time"] = round(result.timing.duration_seconds, 6)
    if result.rows_affected is not None:
        payload["rows_affected"] = result.rows_affected
    response = {k: v for k, v in result.adapter_response.items() if isinstance(v, _PLAIN)}
    if response:
        payload["adapter_response"] = response
    return payload
