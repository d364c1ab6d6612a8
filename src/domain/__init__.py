"""The pure planning core: manifest, graph, selection, placement, waves, schedule.

No Prefect, dbt, httpx or I/O. Other schedulers reuse it as is.
"""

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
from prefect_dbt_orchestrator.domain.graph import DbtGraph, build_graph, is_executable
from prefect_dbt_orchestrator.domain.manifest import (
    Manifest,
    Node,
    ResourceType,
    Source,
    UnknownResourceType,
)
from prefect_dbt_orchestrator.domain.outcomes import DbtStatus, NodeResult, NodeStatus, Timing
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
    "Command",
    "CycleError",
    "DbtBuildFailed",
    "DbtGraph",
    "DbtStatus",
    "InvocationOptions",
    "Manifest",
    "ManifestError",
    "ManifestKeyError",
    "ManifestMalformedError",
    "ManifestVersionError",
    "Node",
    "NodeResult",
    "NodeStatus",
    "OptionsConflictError",
    "OrchestrationError",
    "Plan",
    "PlanError",
    "PlannedNode",
    "Progress",
    "ResourceType",
    "Schedule",
    "ScheduleError",
    "Source",
    "TestStrategy",
    "Timing",
    "UnknownNodeError",
    "UnknownResourceType",
    "Wave",
    "build_graph",
    "command_for",
    "exact_selector",
    "is_executable",
    "layer_into_waves",
    "place_tests",
    "plan_build",
    "result_from_dict",
    "result_to_dict",
    "results_to_dict",
    "structure_manifest",
]
