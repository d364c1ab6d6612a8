"""Secrets stay out of reported args and messages: DBT_ENV_SECRET* values and --vars."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from prefect_dbt_orchestrator.adapters.dbt_core._results import crashed, to_node_result
from prefect_dbt_orchestrator.domain.outcomes import ErrorInfo, Invocation, NodeResult, NodeStatus
from prefect_dbt_orchestrator.domain.redaction import (
    REDACTED,
    Secrets,
    build_secrets,
    flag_values,
    secret_env_values,
    string_leaves,
)

TOKEN = "s3cr3t-value-123"
PASSWORD = "hunter2-xyz"
VARS_TEXT = "{password: hunter2-xyz}"


def test_the_value_of_vars_is_replaced_in_both_spellings_and_other_args_are_kept() -> None:
    args = ("--select", "a", "--vars", VARS_TEXT, "--target", "dev", f"--vars={VARS_TEXT}")

    redacted = Secrets().redact_args(args)

    assert redacted == (
        "--select", "a", "--vars", REDACTED, "--target", "dev", f"--vars={REDACTED}",
    )  # fmt: skip


def test_a_trailing_vars_flag_without_a_value_is_kept_as_it_is() -> None:
    assert Secrets().redact_args(("--full-refresh", "--vars")) == ("--full-refresh", "--vars")


def test_secret_values_are_scrubbed_out_of_every_other_arg() -> None:
    secrets = Secrets([TOKEN])

    redacted = secrets.redact_args(("--profile", f"p-{TOKEN}", "--target", "dev"))

    assert redacted == ("--profile", f"p-{REDACTED}", "--target", "dev")


def test_scrub_replaces_every_occurrence_and_a_longer_secret_as_a_whole() -> None:
    secrets = Secrets(["abcd", "abcd-efgh"])

    text = secrets.scrub("x abcd-efgh y abcd z abcd")

    assert text == f"x {REDACTED} y {REDACTED} z {REDACTED}"
    assert "efgh" not in text


def test_only_non_blank_values_of_dbt_env_secret_variables_are_secret_as_dbt_rules() -> None:
    environ = {
        "DBT_ENV_SECRET_TOKEN": TOKEN,
        "DBT_ENV_SECRET_BLANK": "  ",
        "DBT_ENV_CUSTOM_ENV_X": "not-secret",
        "HOME": "/home/me",
    }

    assert secret_env_values(environ) == (TOKEN,)


def test_flag_values_finds_each_vars_text() -> None:
    args = ("--vars", "{a: 1}", "--target", "dev", "--vars={b: 2}", "--vars")

    assert flag_values(args) == ("{a: 1}", "{b: 2}")


def test_the_strings_inside_parsed_vars_are_secret_but_short_ones_and_keys_are_not() -> None:
    parsed: dict[str, Any] = {
        "password": PASSWORD,
        "env": "dev",
        "nested": {"list": ["long-enough", 7, True], "key-is-not-secret": None},
    }

    assert sorted(string_leaves(parsed)) == sorted([PASSWORD, "long-enough"])


def test_a_builds_secrets_are_env_secrets_the_vars_text_and_its_strings() -> None:
    secrets = build_secrets(
        {"DBT_ENV_SECRET_TOKEN": TOKEN}, ("--vars", VARS_TEXT), [{"password": PASSWORD}]
    )

    assert set(secrets.values) == {TOKEN, VARS_TEXT, PASSWORD}
    assert TOKEN not in repr(secrets) and PASSWORD not in repr(secrets)


def _failed(message: str) -> NodeResult:
    return NodeResult(
        "model.p.a", NodeStatus.ERROR, message=message, error=ErrorInfo(message, "DbtRuntimeError")
    )


def test_scrub_result_scrubs_the_message_and_the_error_message_and_keeps_the_rest() -> None:
    result = _failed(f"Database Error\n  select '{TOKEN}' as x from a_missing_table")

    scrubbed = Secrets([TOKEN]).scrub_result(result)

    assert TOKEN not in str(scrubbed.message) and TOKEN not in str(scrubbed.error)
    assert scrubbed.message == f"Database Error\n  select '{REDACTED}' as x from a_missing_table"
    assert scrubbed.error == ErrorInfo(str(scrubbed.message), "DbtRuntimeError")
    assert attrs.evolve(scrubbed, message=result.message, error=result.error) == result


def test_scrub_result_scrubs_the_text_of_the_adapter_response_too() -> None:
    result = attrs.evolve(
        _failed("boom"), adapter_response={"_message": f"SET token={TOKEN}", "rows_affected": 3}
    )

    scrubbed = Secrets([TOKEN]).scrub_result(result)

    assert dict(scrubbed.adapter_response) == {
        "_message": f"SET token={REDACTED}",
        "rows_affected": 3,
    }


def test_scrub_result_without_secrets_returns_the_result_itself() -> None:
    result = _failed("boom")

    assert Secrets().scrub_result(result) is result


@attrs.frozen
class _DbtRunResult:
    """The attributes of dbt's RunResult that the mapping reads."""

    status: str
    message: str | None
    adapter_response: dict[str, Any] = attrs.Factory(dict)
    timing: tuple[Any, ...] = ()
    failures: int | None = None


def test_the_dbt_core_result_mapping_scrubs_secrets_out_of_dbts_message() -> None:
    dbt_result = _DbtRunResult("error", f"Runtime Error in model a (models/a.sql)\n  {TOKEN}")

    result = to_node_result("model.p.a", dbt_result, Invocation("run"), secrets=Secrets([TOKEN]))

    assert result.status is NodeStatus.ERROR
    assert TOKEN not in str(result.message) and TOKEN not in str(result.error)
    assert result.error is not None and result.error.type == "RuntimeError"


def test_a_crashed_nodes_message_is_scrubbed_too() -> None:
    started = datetime.now(UTC)

    result = crashed(
        "model.p.a", Invocation("run"), RuntimeError(f"boom {TOKEN}"), secrets=Secrets([TOKEN])
    )

    assert result.message == f"boom {REDACTED}"
    assert result.error == ErrorInfo(f"boom {REDACTED}", "RuntimeError")
    assert result.timing is not None and result.timing.started_at >= started
