"""The selection arguments every backend gives dbt for a node or a wave."""

from __future__ import annotations

from prefect_dbt_orchestrator.domain.commands import exact_selector, wave_selection
from tests.unit.builders import PROJECT, manifest_of, model, seed, uid


def test_a_wave_selects_each_node_exactly_and_pulls_in_no_test() -> None:
    manifest = manifest_of(seed("raw"), model("orders", "raw"))
    nodes = [manifest.nodes[uid("raw", "seed")], manifest.nodes[uid("orders")]]

    args = wave_selection(nodes, PROJECT)

    assert args == [
        "--select",
        "resource_type:seed,fqn:proj.raw,path:models/raw.sql",
        "resource_type:model,fqn:proj.orders,path:models/orders.sql",
        "--indirect-selection",
        "empty",
    ]
    assert args[1] == exact_selector(nodes[0], PROJECT)


def test_a_node_of_another_package_is_selected_without_its_path() -> None:
    manifest = manifest_of(model("orders"))
    node = manifest.nodes[uid("orders")]

    assert wave_selection([node], "another_root")[1] == "resource_type:model,fqn:proj.orders"
