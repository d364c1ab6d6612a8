"""Orchestrator options and extra dbt flags are checked before anything runs."""

from __future__ import annotations

import pickle

import pytest

from prefect_dbt_orchestrator.adapters.prefect._options import coerce_enum, fold_run_options
from prefect_dbt_orchestrator.domain.cli_args import BlockedFlagError, check_extra_args
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.placement import TestStrategy


def _fold(**overrides: object) -> object:
    values: dict[str, object] = {
        "execution_mode": ExecutionMode.PER_WAVE,
        "test_strategy": TestStrategy.IMMEDIATE,
        "concurrency": None,
        "concurrency_limit_name": None,
    }
    values.update(overrides)
    return fold_run_options(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["per_node", "PER_NODE", "per-node", "Per_Node"])
def test_execution_mode_strings_are_accepted_in_any_spelling(text: str) -> None:
    assert coerce_enum(ExecutionMode, text, "execution_mode") is ExecutionMode.PER_NODE


def test_an_unknown_mode_names_the_valid_values() -> None:
    with pytest.raises(OptionsConflictError) as raised:
        _fold(execution_mode="sideways")
    assert "PER_NODE" in str(raised.value) and "PER_WAVE" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_string_concurrency_names_a_global_limit_and_an_int_sizes_the_pool() -> None:
    named = _fold(concurrency="warehouse")
    sized = _fold(concurrency=3)
    assert (named.concurrency, named.concurrency_limit) == (None, "warehouse")  # type: ignore[attr-defined]
    assert (sized.concurrency, sized.concurrency_limit) == (3, None)  # type: ignore[attr-defined]


def test_the_older_concurrency_limit_name_spelling_still_works() -> None:
    options = _fold(concurrency_limit_name="dbt-warehouse")
    assert options.concurrency_limit == "dbt-warehouse"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"concurrency": 0}, "positive"),
        ({"concurrency": "a", "concurrency_limit_name": "b"}, "disagree"),
        ({"retries": -1}, "negative"),
        ({"threads": 0}, "threads"),
        ({"defer": True}, "state_path"),
        ({"favor_state": True}, "defer=True"),
    ],
)
def test_options_that_cannot_go_together_raise_before_anything_runs(
    overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(OptionsConflictError) as raised:
        _fold(**overrides)
    assert fragment in str(raised.value)


def test_retries_are_accepted_in_per_wave_mode() -> None:
    options = _fold(retries=3)
    assert options.retries == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "flag",
    [
        "--select",
        "-s",
        "--models",
        "--exclude",
        "--selector",
        "--indirect-selection",
        "--project-dir",
        "--target-path",
        "--profiles-dir",
        "--log-level",
        "--select=a",
    ],
)
def test_blocked_flags_raise_a_value_error(flag: str) -> None:
    with pytest.raises(BlockedFlagError) as raised:
        check_extra_args([flag, "x"])
    assert isinstance(raised.value, ValueError)
    assert flag.split("=")[0] in str(raised.value)


@pytest.mark.parametrize(
    ("flag", "parameter"),
    [
        ("--full-refresh", "run_build(full_refresh=True)"),
        ("--target", 'run_build(target="...")'),
        ("--threads", "threads=N"),
        ("--defer", "defer=True"),
        ("--state", "state_path"),
        ("--defer-state", "defer_state_path"),
        ("--favor-state", "favor_state=True"),
    ],
)
def test_flags_with_a_first_class_parameter_name_that_parameter(flag: str, parameter: str) -> None:
    with pytest.raises(BlockedFlagError) as raised:
        check_extra_args([flag])
    assert parameter in str(raised.value)


def test_caveat_flags_pass_with_one_warning_each() -> None:
    warnings = check_extra_args(["--fail-fast", "--resource-type", "model", "--vars", "{a: 1}"])
    assert len(warnings) == 2
    assert any("--fail-fast" in w for w in warnings)


def test_ordinary_flags_pass_silently() -> None:
    assert check_extra_args(["--vars", '{"run_date": "2024-01-15"}', "--no-partial-parse"]) == ()


def test_a_blocked_flag_error_pickles() -> None:
    error = BlockedFlagError("--select", "use select=")
    assert pickle.loads(pickle.dumps(error)) == error
