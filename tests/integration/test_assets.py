"""Prefect asset lineage, read back from a real Prefect server's events.

The demo project: 3 seeds, 7 models that are tables or views (the ephemeral
``int_rides_enriched`` is inlined into ``fct_rides``) and a snapshot each
materialize an asset; ``stg_rides`` reads the dbt source ``bikeshare.rides``.
The expected keys and upstream edges are worked out here from dbt's own
``manifest.json``, independently of ``domain.assets``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.runtime import flow_run

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.prefect._caching import CacheConfig
from tests.integration.test_demo_project import FAILING_MODEL

pytestmark = pytest.mark.integration

MATERIALIZED = "prefect.asset.materialization."
SENTINEL = "tests.build-ended"
# Events reach the server's store in batches; this only bounds a wait for them.
EVENTS_DEADLINE_SECONDS = 180.0


def _expected(project: Path) -> dict[str, set[str]]:
    """Each asset key dbt's manifest implies, with the keys of what it reads."""
    manifest = json.loads((project / "target" / "manifest.json").read_text(encoding="utf-8"))
    nodes, sources = manifest["nodes"], manifest["sources"]

    def key(item: dict[str, Any]) -> str:
        name = item.get("identifier") if item["resource_type"] == "source" else item["alias"]
        return f"duckdb://{item['database']}/{item['schema']}/{name}"

    def reads(uid: str) -> set[str]:
        found: set[str] = set()
        for parent in (nodes.get(uid) or sources[uid])["depends_on"].get("nodes", []):
            if parent in sources:
                found.add(key(sources[parent]))
            elif nodes[parent]["config"]["materialized"] == "ephemeral":
                found |= reads(parent)
            else:
                found.add(key(nodes[parent]))
        return found

    return {
        key(node): reads(uid)
        for uid, node in nodes.items()
        if node["resource_type"] in ("model", "seed", "snapshot")
        and node["config"]["materialized"] != "ephemeral"
    }


def _events(flow_run_id: UUID) -> list[Any]:
    """The asset materialization events of ``flow_run_id``, read once its
    closing sentinel event (sent after ``run_build`` returned) is stored."""
    related = EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"])
    sentinel = EventFilter(event=EventNameFilter(name=[SENTINEL]), related=related)
    wanted = EventFilter(event=EventNameFilter(prefix=[MATERIALIZED]), related=related)
    deadline = time.monotonic() + EVENTS_DEADLINE_SECONDS
    with get_client(sync_client=True) as client:
        while not client.read_events(filter=sentinel, limit=1).events:
            assert time.monotonic() < deadline, "the build's events never reached the server"
            time.sleep(1.0)
        page = client.read_events(filter=wanted, limit=50)
        events = list(page.events)
        while page.next_page is not None:
            page = client.read_events_page(str(page.next_page))
            events += page.events
        return events


def _build(project: Path, mode: str, *extra: str, **options: Any) -> tuple[UUID, dict[str, Any]]:
    """A build in a flow of its own, which ends by sending the sentinel event."""
    settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
    orchestrator = PrefectDbtOrchestrator(
        settings=settings, execution_mode=mode, raise_on_failure=False,
        create_summary_artifact=False, **options,
    )  # fmt: skip

    @flow(name="asset-lineage-test")
    def build() -> tuple[str, dict[str, Any]]:
        results = orchestrator.run_build(extra_cli_args=list(extra))
        emit_event(SENTINEL, resource={"prefect.resource.id": "tests.asset-lineage"})
        return str(flow_run.get_id()), results

    run_id, results = build()
    return UUID(run_id), results


@pytest.mark.parametrize("mode", ["per_node", "per_wave"])
def test_every_relation_is_an_asset_with_its_parents_and_sources_upstream(
    demo_project: Path, mode: str
) -> None:
    run_id, results = _build(demo_project, mode, include_compiled_code=True)
    expected = _expected(demo_project)
    assert len(expected) == 11

    events = _events(run_id)

    by_key = {e.resource.id: e for e in events}
    assert len(events) == len(by_key) == len(expected)
    assert {e.event for e in events} == {MATERIALIZED + "succeeded"}
    for key, upstream in expected.items():
        related = by_key[key].related
        assert {r.id for r in related if r.role == "asset"} == upstream, key
        assert {r.id for r in related if r.role == "asset-materialized-by"} == {"dbt"}
        assert any(r.role == "task-run" for r in related), key
    # through the ephemeral model, fct_rides reads the staging views, not int_rides_enriched
    fct = by_key["duckdb://demo/main/fct_rides"]
    assert {r.id for r in fct.related if r.role == "asset"} == {
        "duckdb://demo/main/stg_rides",
        "duckdb://demo/main/stg_bikes",
    }
    assert fct.resource["prefect.resource.name"] == "fct_rides"
    assert json.loads(fct.resource["prefect.asset.owners"]) == ["rides-team@example.com"]
    description = fct.resource["prefect.asset.description"]
    assert description.startswith("Incremental fact table of rides")
    assert "```sql" in description and "select" in description.lower()
    assert fct.payload["unique_id"] == "model.demo.fct_rides"
    assert fct.payload["materialized"] == "incremental"
    assert fct.payload["status"] == "success"
    assert "hourly" in fct.payload["tags"]
    assert all(r["status"] == "success" for r in results.values())


def test_a_failed_model_is_a_failed_materialization_and_skipped_ones_send_none(
    demo_project: Path,
) -> None:
    run_id, results = _build(demo_project, "per_node", "--vars", "{fail_model: true}")
    ran = {uid for uid, r in results.items() if r["status"] in ("success", "error")}
    relations = {uid for uid in ran if uid.split(".")[0] in ("model", "seed", "snapshot")}

    events = _events(run_id)

    outcome = {e.resource.id.rsplit("/", 1)[1]: e.event for e in events}
    assert FAILING_MODEL in ran
    assert outcome.pop("fct_rides") == MATERIALIZED + "failed"
    assert set(outcome.values()) == {MATERIALIZED + "succeeded"}
    assert len(events) == len(relations)  # none for the skipped marts


def test_cached_nodes_and_disable_assets_send_no_materialization(
    demo_project: Path, tmp_path: Path
) -> None:
    cache = CacheConfig(key_storage=tmp_path / "cache")
    first, _ = _build(demo_project, "per_node", cache=cache)
    assert len(_events(first)) == 11

    cached, results = _build(demo_project, "per_node", cache=cache)
    silent, _ = _build(demo_project, "per_wave", disable_assets=True)

    served = {uid for uid, r in results.items() if r["status"] == "cached"}
    ran = {uid for uid, r in results.items() if r["status"] == "success"}
    assert "model.demo.stg_rides" in served and "snapshot.demo.snap_bikes" in ran
    sent = {e.payload["unique_id"] for e in _events(cached)}
    # only what ran again (never-cached incremental models, snapshots, and
    # what reads them) materialized
    assert sent == {uid for uid in ran if uid.split(".")[0] in ("model", "seed", "snapshot")}
    assert _events(silent) == []
