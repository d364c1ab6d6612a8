"""The pure planning core: manifest, graph, selection, placement, waves, schedule,
cache keys and decisions, source freshness.

No Prefect, dbt, httpx or I/O. Other schedulers reuse it as is. Its values
pickle (``domain.pickling``), so they cross process boundaries.
"""

from prefect_dbt_orchestrator.domain import pickling as _pickling  # noqa: F401  # registers
from prefect_dbt_orchestrator.domain.cache_keys import (
    KeyEnvironment,
    NodeKey,
    derive_cache_keys,
    first_change,
)
from prefect_dbt_orchestrator.domain.caching import (
    CacheDecision,
    CacheEntry,
    CacheOptions,
    NodeCacheState,
    Prediction,
    decide_cache,
)
from prefect_dbt_orchestrator.domain.codec import structure_manifest
from prefect_dbt_orchestrator.domain.commands import (
    Command,
    InvocationOptions,
    command_for,
    exact_selector,
)
from prefect_dbt_orchestrator.domain.errors import (
    CycleError,
    DbtBuildFailed,
    ManifestError,
    ManifestKeyError,
    ManifestMalformedError,
    ManifestVersionError,
    OptionsConflictError,
    OrchestrationError,
    PlanError,
    ScheduleError,
    UnknownNodeError,
)
from prefect_dbt_orchestrator.domain.freshness import (
    FreshnessSkips,
    SourceLoad,
    fresher_sources,
    freshness_ttl,
    read_source_loads,
    skip_unchanged,
)
from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph, is_executable, is_no_op
from prefect_dbt_orchestrator.domain.manifest import (
    Manifest,
    Node,
    ResourceType,
    Source,
    UnknownResourceType,
)
from prefect_dbt_orchestrator.domain.outcomes import (
    DbtStatus,
    NodeResult,
    NodeStatus,
    Timing,
    no_op_result,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy, place_tests
from prefect_dbt_orchestrator.domain.plan import Plan, PlannedNode, plan_build
from prefect_dbt_orchestrator.domain.result_codec import (
    result_from_dict,
    result_to_dict,
    results_to_dict,
)
from prefect_dbt_orchestrator.domain.schedule import Progress, Schedule
from prefect_dbt_orchestrator.domain.waves import Wave, layer_into_waves

__all__ = [
    "CacheDecision",
    "CacheEntry",
    "CacheOptions",
    "Command",
    "CycleError",
    "DbtBuildFailed",
    "DbtGraph",
    "DbtStatus",
    "FreshnessSkips",
    "InvocationOptions",
    "KeyEnvironment",
    "Manifest",
    "ManifestError",
    "ManifestKeyError",
    "ManifestMalformedError",
    "ManifestVersionError",
    "Node",
    "NodeCacheState",
    "NodeKey",
    "NodeResult",
    "NodeStatus",
    "OptionsConflictError",
    "OrchestrationError",
    "Plan",
    "PlanError",
    "PlannedNode",
    "Prediction",
    "Progress",
    "ResourceType",
    "Schedule",
    "ScheduleError",
    "Source",
    "SourceLoad",
    "TestStrategy",
    "Timing",
    "UnknownNodeError",
    "UnknownResourceType",
    "Wave",
    "build_graph",
    "command_for",
    "decide_cache",
    "derive_cache_keys",
    "exact_selector",
    "first_change",
    "fresher_sources",
    "freshness_ttl",
    "is_executable",
    "is_no_op",
    "layer_into_waves",
    "no_op_result",
    "place_tests",
    "plan_build",
    "read_source_loads",
    "result_from_dict",
    "result_to_dict",
    "results_to_dict",
    "skip_unchanged",
    "structure_manifest",
]
