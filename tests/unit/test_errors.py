"""Every public error pickles (process pools send them back), keeps its message, never
repeats it, names a fix, and sits where the hierarchy says."""

from __future__ import annotations

import pickle
import re

import attrs
import pytest

from prefect_dbt_orchestrator.domain import errors
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
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
    SchedulerUnavailable,
    UnknownNodeError,
    closest,
)
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable

SOURCE = "target/manifest.json"
V13 = "https://schemas.getdbt.com/dbt/manifest/v13.json"
BUILD_RESULTS: dict[str, dict[str, object]] = {
    "model.proj.a": {"status": "error"},
    "model.proj.b": {"status": "success"},
    "model.proj.c": {"status": "skipped", "failed_upstream": ["model.proj.a"]},
}

# Each error, and the texts its message must hold exactly once.
CASES: list[tuple[OrchestrationError, tuple[str, ...]]] = [
    (
        ManifestMalformedError(SOURCE, "expected a JSON object, got list"),
        (SOURCE, "expected a JSON object, got list"),
    ),
    (
        ManifestKeyError(SOURCE, 'nodes["model.proj.a"].resource_type'),
        (SOURCE, 'nodes["model.proj.a"].resource_type'),
    ),
    (ManifestVersionError(SOURCE, V13), (SOURCE, V13)),
    (CycleError(("model.proj.a", "model.proj.b")), ("model.proj.a, model.proj.b",)),
    (
        UnknownNodeError("model.proj.ordrs", "plan", "did you mean model.proj.orders?"),
        ("model.proj.ordrs", "did you mean model.proj.orders?"),
    ),
    (ScheduleError("model.proj.a", "it already ended"), ("model.proj.a", "it already ended")),
    (
        OptionsConflictError("per_wave cannot run with max_workers=0", "set max_workers to 1"),
        ("per_wave cannot run with max_workers=0", "set max_workers to 1"),
    ),
    (DbtBuildFailed(BUILD_RESULTS), ("model.proj.a", "1 dbt node(s) failed")),
    (
        BuildInterrupted(
            {"model.proj.a": {"status": "skipped", "reason": "build interrupted (SIGINT)"}},
            "build interrupted (SIGINT)",
            2,
        ),
        ("build interrupted (SIGINT)", "1 node(s) did not finish"),
    ),
    (
        SchedulerUnavailable("the Prefect API at http://127.0.0.1:4200/api", "did not answer"),
        ("the Prefect API at http://127.0.0.1:4200/api did not answer",),
    ),
    (
        ExecutorUnavailable("dbt-core", "no profiles.yml found: create one or pass --profiles-dir"),
        ("dbt-core", "no profiles.yml found: create one or pass --profiles-dir"),
    ),
]
EXAMPLES = [error for error, _ in CASES]
IDS = [type(e).__name__ for e in EXAMPLES]

# Words a message uses when it tells the reader what to do.
FIX = re.compile(
    r"regenerate|remove one|complete each|did you mean|check the id|complete only|"
    r"create one|pass |install|run `|set |see ",
    re.IGNORECASE,
)


def _public_error_classes() -> set[type[BaseException]]:
    found = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    return found | {ExecutorUnavailable}


def test_the_examples_cover_every_concrete_public_error() -> None:
    classes = _public_error_classes()
    concrete = {c for c in classes if getattr(c, "__attrs_attrs__", None) is not None}

    assert concrete == {type(e) for e in EXAMPLES}


@pytest.mark.parametrize("error", EXAMPLES, ids=IDS)
def test_every_error_unpickles_with_the_same_type_fields_and_message(
    error: OrchestrationError,
) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert attrs.asdict(copy) == attrs.asdict(error)  # type: ignore[arg-type]
    assert str(copy) == str(error)
    assert copy.args == error.args


@pytest.mark.parametrize("error", EXAMPLES, ids=IDS)
def test_every_error_unpickles_to_an_equal_object(error: OrchestrationError) -> None:
    assert pickle.loads(pickle.dumps(error)) == error


@pytest.mark.parametrize(("error", "said"), CASES, ids=IDS)
def test_every_message_says_its_problem_once(
    error: OrchestrationError, said: tuple[str, ...]
) -> None:
    message = str(pickle.loads(pickle.dumps(error)))

    for text in said:
        assert message.count(text) == 1, (text, message)
    assert message.count(";") <= 2


@pytest.mark.parametrize("error", EXAMPLES, ids=IDS)
def test_every_message_names_a_fix(error: OrchestrationError) -> None:
    assert FIX.search(str(error)), str(error)


def test_executor_unavailable_names_a_fix_whatever_the_problem() -> None:
    assert FIX.search(str(ExecutorUnavailable("dbt Cloud", "the API answered 503")))


def test_an_unknown_node_error_without_a_hint_still_names_a_fix() -> None:
    assert FIX.search(str(UnknownNodeError("model.proj.x", "plan")))


def test_the_hierarchy_separates_bad_input_from_misuse_of_the_schedule() -> None:
    manifest_errors = (ManifestMalformedError, ManifestKeyError, ManifestVersionError)
    assert all(issubclass(cls, ManifestError) for cls in manifest_errors)
    plan_errors = (ManifestError, CycleError, UnknownNodeError)
    assert all(issubclass(c, PlanError) and issubclass(c, ValueError) for c in plan_errors)
    assert issubclass(ScheduleError, RuntimeError) and not issubclass(ScheduleError, PlanError)
    assert issubclass(ExecutorUnavailable, OrchestrationError)
    assert issubclass(ExecutorUnavailable, RuntimeError)
    assert all(issubclass(c, OrchestrationError) for c in _public_error_classes())


def test_an_unknown_node_message_carries_its_hint() -> None:
    error = UnknownNodeError("model.proj.ordrs", "plan", "did you mean model.proj.orders?")

    assert str(error) == (
        "unknown node 'model.proj.ordrs': it is not in the plan; did you mean model.proj.orders?"
    )


def test_closest_suggests_ids_containing_the_last_dotted_part() -> None:
    candidates = ["model.proj.stg_orders", "model.proj.orders", "model.proj.customers"]

    assert closest("model.other.orders", candidates) == (
        "model.proj.orders",
        "model.proj.stg_orders",
    )
    assert closest("x.", candidates) == ()
    assert closest("orders", candidates, limit=1) == ("model.proj.orders",)
