"""Input that used to be silently wrong is now refused or honoured: extra dbt flags
in their short spellings, an empty ``--select``, and dbt's reasons kept whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from dbt.cli.exceptions import DbtUsageException
from dbt.exceptions import DbtProfileError, DbtProjectError
from dbt_common.exceptions import CompilationError, DbtRuntimeError

from prefect_dbt_orchestrator import PrefectDbtOrchestrator, PrefectDbtSettings
from prefect_dbt_orchestrator.adapters.dbt_core._errors import (
    DbtInputError,
    MissingAdapterError,
    dbt_errors,
    dbt_failure,
    dbt_reason,
)
from prefect_dbt_orchestrator.domain.cli_args import BlockedFlagError, check_extra_args, flag_names
from prefect_dbt_orchestrator.domain.errors import PlanError
from prefect_dbt_orchestrator.domain.redaction import Secrets
from prefect_dbt_orchestrator.domain.selection import SelectionRequest, select
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable
from tests.unit.builders import manifest_of, model, test, uid
from tests.unit.fakes import FakeExecutor

# --- extra_cli_args: every spelling click accepts goes through the blocklist ---------


@pytest.mark.parametrize(
    ("arg", "names"),
    [
        ("--select=a", ("--select",)),
        ("-sa", ("-s",)),
        ("-s=a", ("-s",)),
        ("-xs", ("-x", "-s")),
        ("-xfs", ("-x", "-f", "-s")),
        ("-tprod", ("-t",)),
        ("-x", ("-x",)),
        ("{a: 1}", ()),
        ("model_a", ()),
    ],
)
def test_flag_names_reads_an_arg_as_click_does(arg: str, names: tuple[str, ...]) -> None:
    assert flag_names(arg) == names


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["-smodel_a"], "-s"),
        (["-s=model_a"], "-s"),
        (["-mmarts"], "-m"),
        (["--models=marts"], "--models"),
        (["--model", "marts"], "--model"),
        (["-xs", "model_a"], "-s"),
        (["--exclude=model_a"], "--exclude"),
        (["--selector=nightly"], "--selector"),
        (["--project-dir=/elsewhere"], "--project-dir"),
    ],
)
def test_a_short_or_joined_selection_or_path_flag_is_blocked(args: list[str], flag: str) -> None:
    with pytest.raises(BlockedFlagError) as raised:
        check_extra_args(args)

    assert raised.value.flag == flag
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        (["-tprod"], 'run_build(target="...")'),
        (["-t=prod"], 'run_build(target="...")'),
        (["--target=prod"], 'run_build(target="...")'),
        (["-f"], "run_build(full_refresh=True)"),
        (["-xf"], "run_build(full_refresh=True)"),
        (["--threads=4"], "PrefectDbtOrchestrator(threads=N)"),
        (["--no-defer"], "PrefectDbtOrchestrator(defer=False)"),
    ],
)
def test_a_short_or_joined_first_class_flag_names_its_parameter(
    args: list[str], parameter: str
) -> None:
    with pytest.raises(BlockedFlagError) as raised:
        check_extra_args(args)

    assert str(raised.value).endswith(f"use {parameter} instead")


def test_a_bundled_fail_fast_still_warns_once() -> None:
    assert check_extra_args(["-xq"]) == (
        "extra_cli_args has -x: accepted, but the orchestrator already skips exactly the "
        "descendants of a failure",
    )


def test_values_that_are_not_flags_pass() -> None:
    assert check_extra_args(["--vars", "{select: -s}", "--log-format", "json"]) == ()


# --- an empty --select: what dbt 1.11 does, never the whole project -------------------

WARNING = "The selection criterion '' does not match any enabled nodes"
MANIFEST = manifest_of(model("a"), model("b", "a"), test("t", "b"))


def test_a_request_keeps_an_empty_string_as_a_value_and_none_as_absent() -> None:
    assert SelectionRequest(select="").select == ("",)
    assert SelectionRequest(select=None, exclude=None).select == ()
    assert SelectionRequest(select=None, exclude=None).exclude == ()


@pytest.mark.parametrize(("value", "warnings"), [("", 1), (" ", 2), ("   ", 4)])
def test_an_empty_or_blank_select_selects_nothing_with_one_warning_per_piece(
    value: str, warnings: int
) -> None:
    selection = select(MANIFEST, SelectionRequest(select=value))

    assert selection.unique_ids == frozenset()
    assert selection.warnings == (WARNING,) * warnings


def test_an_empty_exclude_excludes_nothing_and_warns() -> None:
    selection = select(MANIFEST, SelectionRequest(exclude=""))

    assert selection.unique_ids == {uid("a"), uid("b"), uid("t", "test")}
    assert selection.warnings == (WARNING,)


def _orchestrator(tmp_path: Path) -> PrefectDbtOrchestrator:
    settings = PrefectDbtSettings(project_dir=tmp_path, profiles_dir=tmp_path)
    return PrefectDbtOrchestrator(settings=settings, executor=FakeExecutor(manifest=MANIFEST))


def test_the_orchestrators_plan_of_an_empty_select_is_empty(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)

    planned = orchestrator.plan(select="")

    assert planned.plan.node_count == 0
    assert planned.warnings == (WARNING,)
    assert orchestrator.plan(select=None).plan.node_count == 3


def test_plan_request_plans_what_plan_plans_and_checks_the_extra_args(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)

    planned = orchestrator.plan_request(SelectionRequest(select="b", resource_types=("model",)))

    assert set(planned.plan.nodes) == {uid("b")}
    assert orchestrator.plan_request(SelectionRequest(select="")).plan.node_count == 0
    with pytest.raises(BlockedFlagError):
        orchestrator.plan_request(SelectionRequest(), extra_cli_args=["-sb"])


# --- dbt's reasons, kept whole and sorted into bad input or dbt not running ----------

NO_TARGET = (
    "Runtime Error\n  The profile 'demo' does not have a target named 'nosuch'. The valid "
    "target names for this profile are:\n   - dev\n   - ci"
)


def test_dbts_reason_keeps_every_line_but_the_bare_heading() -> None:
    assert dbt_reason(NO_TARGET) == (
        "The profile 'demo' does not have a target named 'nosuch'. The valid target names "
        "for this profile are:\n - dev\n - ci"
    )


def test_a_heading_that_says_more_is_kept() -> None:
    text = "Compilation Error in model broken (models/broken.sql)\n  unexpected '}'\n    line 1"

    assert (
        dbt_reason(text)
        == "Compilation Error in model broken (models/broken.sql)\n  unexpected '}'\n    line 1"
    )


@pytest.mark.parametrize(
    "exc",
    [
        DbtProfileError(NO_TARGET),
        DbtProjectError("Could not find profile named 'nosuch'"),
        CompilationError("Model 'model.demo.a' depends on a node named 'nope' which was not found"),
        DbtUsageException("String '{a: [}' is not valid YAML"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_dbt_refusing_its_input_is_bad_input_with_the_whole_reason(exc: Exception) -> None:
    reason = dbt_reason(str(exc))

    error = dbt_failure("dbt parse", exc, reason)

    assert error == DbtInputError("dbt parse", reason)
    assert isinstance(error, PlanError)
    assert str(error).startswith(f"dbt parse failed: {reason}\n")


def test_a_missing_adapter_wins_over_the_profile_error_dbt_wraps_it_in() -> None:
    text = (
        'Runtime Error\n  Credentials in profile "demo", target "dev" invalid: Runtime Error\n'
        "    Could not find adapter type snowflake!"
    )

    error = dbt_failure("dbt parse", DbtProfileError(text), dbt_reason(text))

    assert isinstance(error, MissingAdapterError)
    assert "pip install dbt-snowflake" in str(error)


def test_anything_else_is_dbt_not_running_with_the_whole_reason() -> None:
    error = dbt_failure("dbt deps", DbtRuntimeError("hub.getdbt.com\nunreachable"), "a\nb")

    assert error == ExecutorUnavailable("dbt Core", "dbt deps failed: a\nb")


def test_dbt_errors_scrubs_the_secrets_it_is_given_from_the_reason() -> None:
    with pytest.raises(DbtInputError) as raised:
        with dbt_errors("dbt parse", Secrets(("hunter2",))):
            raise DbtUsageException("String '{password: hunter2}' is not valid YAML")

    assert "hunter2" not in str(raised.value)
    assert "<redacted>" in raised.value.reason
