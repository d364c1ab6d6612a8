"""Caching options in both spellings, and custom cache policy factories.

``prepare_cache`` runs here with the fake executor and a real file store in
``tmp_path``: no dbt, no Prefect server.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.cache_policies import CachePolicy

from prefect_dbt_orchestrator import CacheConfig, OptionsConflictError, PrefectDbtOrchestrator
from prefect_dbt_orchestrator.adapters.prefect._cache_policy import ManifestView
from prefect_dbt_orchestrator.adapters.prefect._caching import (
    LEGACY_EXPIRATION,
    CacheSetup,
    fold_cache_options,
    prepare_cache,
)
from prefect_dbt_orchestrator.domain.build_plan import plan_selection
from prefect_dbt_orchestrator.domain.caching import Prediction
from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from tests.unit.builders import manifest_of, model, seed, uid
from tests.unit.fakes import FakeExecutor


def test_the_002_spelling_folds_into_options_with_no_expiration_by_default() -> None:
    setup = fold_cache_options(cache=CacheConfig(key_storage=Path("/x")), enable_caching=None)

    assert setup is not None and setup.options.expiration is None
    assert setup.storage == Path("/x")
    assert setup.options.exclude_resource_types == {"test", "snapshot", "unit_test"}


def test_the_000_001_spelling_enables_caching_with_a_one_day_expiration() -> None:
    setup = fold_cache_options(cache=None, enable_caching=True, result_storage="s3-bucket/r")

    assert setup is not None and setup.options.expiration == LEGACY_EXPIRATION
    assert setup.storage == "s3-bucket/r"


def test_a_cache_policy_factory_alone_turns_caching_on() -> None:
    setup = fold_cache_options(
        cache=None, enable_caching=None, cache_policy_factory=lambda *a: CachePolicy()
    )

    assert setup is not None and setup.policy_factory is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cache": CacheConfig(), "enable_caching": True},
        {"cache": CacheConfig(), "enable_caching": None, "cache_expiration": timedelta(hours=1)},
        {"cache": CacheConfig(), "enable_caching": None, "use_source_freshness_expiration": True},
        {"cache": None, "enable_caching": False, "result_storage": Path("/x")},
        {"cache": None, "enable_caching": None, "cache_key_storage": Path("/x")},
    ],
)
def test_both_spellings_or_options_without_caching_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(OptionsConflictError):
        fold_cache_options(**kwargs)


def test_the_orchestrator_refuses_both_spellings_before_anything_runs() -> None:
    with pytest.raises(OptionsConflictError, match="one spelling"):
        PrefectDbtOrchestrator(cache=CacheConfig(), enable_caching=True)


def test_resource_types_may_be_given_as_enums_or_strings() -> None:
    class NodeType:
        value = "seed"

    config = CacheConfig(exclude_resource_types={NodeType(), "test"})

    assert config.exclude_resource_types == {"seed", "test"}


# ---------------------------------------------------------------- custom policies

MANIFEST = manifest_of(seed("s"), model("a", "s"), model("b", "a"))


class EnvironmentPolicy(CachePolicy):
    """Seed 000's example 9: the key names the environment."""

    def __init__(self, node: Node, environment: str) -> None:
        super().__init__()
        self.node, self.environment = node, environment

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kw: Any) -> str:
        return f"{self.node.unique_id}-{self.environment}-v1"


def _prepare(tmp_path: Path, factory: Any) -> Any:
    build_plan = plan_selection(MANIFEST, SelectionRequest())
    setup = CacheSetup(fold_cache_options(cache=CacheConfig(), enable_caching=None).options,  # type: ignore[union-attr]
                       tmp_path, factory)  # fmt: skip
    return prepare_cache(
        setup, FakeExecutor(manifest=MANIFEST), build_plan, InvocationOptions(), tmp_path
    )


def test_a_custom_factory_gives_each_node_its_key_and_a_change_of_it_is_explained(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def factory(env: str) -> Any:
        def make(
            project_dir: Path, view: ManifestView, node: Node, upstream: dict[str, str]
        ) -> CachePolicy:
            seen.append((node.unique_id, dict(upstream)))
            assert node.unique_id in view.keys
            return EnvironmentPolicy(node, env)

        return make

    first = _prepare(tmp_path, factory("dev"))
    for uid_ in (uid("s", "seed"), uid("a"), uid("b")):
        first.record(NodeResult(uid_, NodeStatus.SUCCESS, DbtStatus.SUCCESS))
    assert first.decisions[uid("a")].key == f"{uid('a')}-dev-v1"
    assert dict(seen)[uid("b")] == {uid("a"): f"{uid('a')}-dev-v1"}  # upstream policy keys

    again = _prepare(tmp_path, factory("dev"))
    prod = _prepare(tmp_path, factory("prod"))

    assert {d.prediction for d in again.decisions.values()} == {Prediction.HIT}
    assert prod.decisions[uid("a")].reason == "cache policy key changed"


def test_a_policy_that_returns_no_key_leaves_its_node_uncached(tmp_path: Path) -> None:
    class NoKey(CachePolicy):
        def compute_key(self, *args: Any, **kwargs: Any) -> None:
            return None

    cache = _prepare(tmp_path, lambda *args: NoKey())

    assert {d.reason for d in cache.decisions.values()} == {"the cache policy gave no key"}


def test_a_store_that_cannot_be_read_makes_misses_with_a_warning_not_a_failed_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")

    cache = _prepare(blocked, None)

    assert {d.reason for d in cache.decisions.values()} == {"no previous run"}
    assert "could not read the cache entry" in caplog.text
