"""``dbt-orchestrate``'s exit-code contract without dbt or a server: each error's
code, one message and no traceback unless ``--debug``, and the ``--results-json``
check that runs before anything else."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError

from prefect_dbt_orchestrator.adapters.cli import main as cli
from prefect_dbt_orchestrator.adapters.cli._exit import (
    EXIT_CODES,
    ResultsPathError,
    check_results_path,
    exit_code,
    prefect_failure,
    report,
)
from prefect_dbt_orchestrator.adapters.dbt_core._errors import DbtInputError, missing_adapter
from prefect_dbt_orchestrator.adapters.local.build_lock import BuildLockedError
from prefect_dbt_orchestrator.domain.errors import (
    BuildInterrupted,
    OptionsConflictError,
    ScheduleError,
    SchedulerUnavailable,
)
from prefect_dbt_orchestrator.ports.executor import ExecutorUnavailable
from tests.corpus import corpus_dir, project_layout

API = "http://127.0.0.1:4200/api"
RESULTS: dict[str, dict[str, object]] = {"model.proj.a": {"status": "skipped"}}


def _raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """``error`` after a real raise (so it has a traceback), from ``cause``."""
    try:
        if cause is None:
            raise error
        raise error from cause
    except BaseException as caught:  # noqa: B036  # KeyboardInterrupt too
        return caught


def _status_error(status: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", f"{API}/flow_runs/", headers={"Authorization": "Bearer k3y"})
    response = httpx.Response(status, request=request)
    return PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("server error", request=request, response=response)
    )


MISSING_ADAPTER = missing_adapter("Could not find adapter type snowflake!")
assert MISSING_ADAPTER is not None
CASES: list[tuple[str, BaseException, int]] = [
    ("a PlanError", OptionsConflictError("a bad value", "pass another"), 2),
    ("an unwritable results path", ResultsPathError(Path("/x"), "it is a directory"), 2),
    ("dbt refusing a target", DbtInputError("dbt parse", "no target named 'x'"), 2),
    ("dbt unavailable", ExecutorUnavailable("dbt Core", "dbt parse failed: boom"), 3),
    ("a missing adapter", MISSING_ADAPTER, 3),
    ("the Prefect API down", httpx.ConnectError("All connection attempts failed"), 3),
    (
        "the Prefect API down, as Prefect reports it",
        _raised(RuntimeError(f"Failed to reach API at {API}/"), httpx.ConnectError("refused")),
        3,
    ),
    ("the Prefect API failing", _status_error(503), 3),
    (
        "the project busy with another build",
        BuildLockedError(Path("/p/target/.lock"), 42, "host", "2026-12-01T00:00:00Z", "x"),
        2,
    ),
    ("a build timeout", BuildInterrupted(RESULTS, "build timed out after 9 s", 0), 1),
    ("the Prefect API silent", SchedulerUnavailable("the Prefect API", "did not answer"), 3),
    ("Ctrl-C", KeyboardInterrupt(), 130),
    ("SIGINT during the build", BuildInterrupted(RESULTS, "build interrupted (SIGINT)", 2), 130),
    ("SIGTERM during the build", BuildInterrupted(RESULTS, "build interrupted (SIGTERM)", 15), 143),
    ("a bug", ScheduleError("model.proj.a", "it already ended"), 70),
    ("a bug outside ours", ZeroDivisionError("division by zero"), 70),
]


@pytest.mark.parametrize(("_", "error", "code"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_failure_has_its_exit_code(_: str, error: BaseException, code: int) -> None:
    assert exit_code(error) == code


def test_every_code_is_in_the_table_of_the_help_and_the_module_docstring() -> None:
    codes = {code for _, _, code in CASES} | {0, 1}

    for code in codes:
        assert f"\n  {code} " in EXIT_CODES
        assert f"\n{code} " in str(cli.__doc__)


@pytest.mark.parametrize(
    ("_", "error", "code"),
    [c for c in CASES if c[2] in (2, 3)],
    ids=[c[0] for c in CASES if c[2] in (2, 3)],
)
def test_an_expected_failure_prints_one_message_and_no_traceback(
    _: str, error: BaseException, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(_raised(error), debug=False) == code

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("dbt-orchestrate: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("_", "error", "code"),
    [c for c in CASES if c[2] in (2, 3)],
    ids=[c[0] for c in CASES if c[2] in (2, 3)],
)
def test_debug_adds_the_traceback(
    _: str, error: BaseException, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(_raised(error), debug=True) == code

    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert err.index("Traceback") < err.index("\ndbt-orchestrate: error: ")


def test_an_interrupt_says_so_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(_raised(KeyboardInterrupt()), debug=False) == 130

    assert capsys.readouterr().err == "dbt-orchestrate: interrupted\n"


def test_a_bug_always_shows_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(_raised(ZeroDivisionError("division by zero")), debug=False) == 70

    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "internal error (ZeroDivisionError: division by zero); please report it" in err


def test_a_prefect_api_failure_names_the_status_and_path_never_the_key() -> None:
    failure = prefect_failure(_raised(RuntimeError("engine failed"), _status_error(503)))

    assert failure == SchedulerUnavailable(
        "the Prefect API", "answered HTTP 503 on /api/flow_runs/"
    )
    assert "k3y" not in str(failure)
    assert "PREFECT_API_URL" in str(failure)


def test_an_unreachable_api_keeps_prefects_words_and_the_cause() -> None:
    error = _raised(RuntimeError(f"Failed to reach API at {API}/"), httpx.ConnectError("refused"))

    assert str(prefect_failure(error)).startswith(
        f"the Prefect API is unavailable: Failed to reach API at {API}/ (ConnectError: refused)"
    )


def test_an_error_unrelated_to_prefect_is_not_taken_for_one() -> None:
    assert prefect_failure(_raised(ValueError("x"), KeyError("y"))) is None


# --- --results-json, checked before anything runs -------------------------------------


def test_a_results_path_in_missing_directories_passes_and_creates_nothing(tmp_path: Path) -> None:
    check_results_path(tmp_path / "a" / "b" / "results.json")

    assert list(tmp_path.iterdir()) == []


def test_a_results_path_that_is_a_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ResultsPathError, match="it is a directory"):
        check_results_path(tmp_path)


def test_a_results_path_below_a_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")

    with pytest.raises(ResultsPathError) as raised:
        check_results_path(tmp_path / "file" / "sub" / "results.json")
    assert f"{tmp_path / 'file'} is a file" in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_results_path_in_a_read_only_directory_is_bad_input(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ResultsPathError, match="is not writable"):
            check_results_path(folder / "results.json")
    finally:
        folder.chmod(0o700)


# --- main(), in this process, on a manifest file ---------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_layout("jaffle_shop", tmp_path_factory.mktemp("layout"))


def _plan(layout: Path, *argv: str) -> list[str]:
    manifest = corpus_dir() / "jaffle_shop" / "manifest.json"
    return ["plan", *argv, "--manifest", str(manifest), "--project-dir", str(layout)]


def test_a_bad_selector_exits_2_with_one_line(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(_plan(layout, "-s", "nosuch:x")) == 2

    err = capsys.readouterr().err
    assert err.startswith("dbt-orchestrate: error: unknown selector method 'nosuch'")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(
    layout: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _plan(layout, "-s", "nosuch:x")
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]

    assert cli.main(argv) == 2

    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "UnknownMethodError" in err


def test_a_keyboard_interrupt_reaching_main_exits_130_without_a_traceback(
    layout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_plan", interrupted)

    assert cli.main(_plan(layout)) == 130

    assert capsys.readouterr().err == "dbt-orchestrate: interrupted\n"


def test_an_unwritable_results_path_fails_the_build_before_dbt_or_prefect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No project, no profile and no server here: the path is checked first.
    argv = ["build", "--project-dir", str(tmp_path / "nowhere"), "--results-json", str(tmp_path)]

    assert cli.main(argv) == 2

    err = capsys.readouterr().err
    assert err == (
        f"dbt-orchestrate: error: --results-json {tmp_path}: it is a directory; pass the "
        "path of a file in a directory you can write to (missing directories are created)\n"
    )
