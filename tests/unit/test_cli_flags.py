"""``dbt-orchestrate``'s flags: dbt's spellings on every subcommand, clear errors for
bad values, and ``ls``/``plan`` answered in-process from a manifest file (no dbt)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from prefect_dbt_orchestrator.adapters.cli._flags import dbt_extra_args
from prefect_dbt_orchestrator.adapters.cli._listing import _why_parse
from prefect_dbt_orchestrator.adapters.cli.main import build_parser, main
from prefect_dbt_orchestrator.adapters.dbt_core.executor import _parse_flags
from prefect_dbt_orchestrator.adapters.local.project_files import selection_context
from prefect_dbt_orchestrator.domain.build_plan import (
    BuildPlan,
    build_plan_to_dict,
    plan_selection,
)
from prefect_dbt_orchestrator.domain.placement import TestStrategy
from prefect_dbt_orchestrator.domain.selection import SelectionRequest
from tests.corpus import corpus_dir, jsonl, manifest, project_layout

PROJECT = "jaffle_shop"
COMMANDS = ("build", "plan", "ls")

# Every dbt flag the three subcommands share, with a value, and what argparse makes of it.
SHARED: list[tuple[list[str], str, Any]] = [
    (["--vars", "{x: 1}"], "vars", "{x: 1}"),
    (["-t", "prod"], "target", "prod"),
    (["--target", "prod"], "target", "prod"),
    (["--profile", "other"], "profile", "other"),
    (["--state", "prev"], "state", Path("prev")),
    (["--defer"], "defer", True),
    (["--defer-state", "prev"], "defer_state", Path("prev")),
    (["--favor-state"], "favor_state", True),
    (["--manifest", "m.json"], "manifest", Path("m.json")),
    (["--project-dir", "proj"], "project_dir", Path("proj")),
    (["--profiles-dir", "profiles"], "profiles_dir", Path("profiles")),
    (["--target-path", "out"], "target_path", Path("out")),
    (["-s", "a", "b", "--select", "c"], "select", ["a", "b", "c"]),
    (["--exclude", "a", "--exclude", "b"], "exclude", ["a", "b"]),
    (["--selector", "nightly"], "selector", "nightly"),
    (["--resource-type", "model seed", "--resource-types", "test"], "resource_type",
     [["model", "seed"], ["test"]]),
    (["--exclude-resource-type", "test"], "exclude_resource_type", [["test"]]),
    (["--indirect-selection", "Cautious"], "indirect_selection", "cautious"),
]  # fmt: skip
BUILDS: list[tuple[list[str], str, Any]] = [
    (["--full-refresh"], "full_refresh", True),
    (["-f"], "full_refresh", True),
    (["--threads", "4"], "threads", 4),
    (["-m", "a"], "select", ["a"]),
]


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("argv", "dest", "value"), SHARED, ids=[" ".join(a) for a, _, _ in SHARED])
def test_every_subcommand_takes_dbts_flags(
    command: str, argv: list[str], dest: str, value: Any
) -> None:
    assert getattr(_parse(command, *argv), dest) == value


@pytest.mark.parametrize("command", ["build", "plan"])
@pytest.mark.parametrize(("argv", "dest", "value"), BUILDS, ids=[" ".join(a) for a, _, _ in BUILDS])
def test_build_and_plan_take_dbt_builds_own_flags(
    command: str, argv: list[str], dest: str, value: Any
) -> None:
    assert getattr(_parse(command, *argv), dest) == value


@pytest.mark.parametrize("flag", ["--full-refresh", "--threads"])
def test_ls_refuses_what_dbt_ls_refuses(flag: str) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse("ls", flag, *(["2"] if flag == "--threads" else []))
    assert exited.value.code == 2


@pytest.mark.parametrize(
    "case", list(jsonl("tuva", "selectors.jsonl")), ids=lambda case: str(case["id"])
)
def test_a_real_dbt_ls_line_parses_unchanged(case: dict[str, Any]) -> None:
    args = _parse("ls", *case["dbt_argv"][2:])

    assert args.vars == "{snapshots_enabled: true}"
    assert args.output == "json"


def test_every_option_has_a_help_text() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_the_description_tells_users_what_it_does_and_the_exit_codes() -> None:
    text = build_parser().format_help()

    assert "Run a dbt project's DAG under Prefect" in text
    for code in ("0    success", "1    build: some node errored", "2    bad input"):
        assert code in text
    for code in ("3    infrastructure", "130  interrupted", "143  terminated"):
        assert code in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommands_help_ends_with_the_exit_codes(command: str) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    text = subparsers.choices[command].format_help()

    assert "exit codes:" in text and "--debug" in text


@pytest.mark.parametrize(
    ("argv", "debug"),
    [
        (["plan"], False),
        (["--debug", "plan"], True),
        (["plan", "--debug"], True),
        (["--debug", "ls", "--debug"], True),
        (["build", "--debug"], True),
    ],
)
def test_debug_is_taken_before_or_after_the_subcommand(argv: list[str], debug: bool) -> None:
    assert _parse(*argv).debug is debug


# --- --concurrency ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("warehouse", "warehouse")])
def test_concurrency_is_a_count_or_a_limit_name(value: str, expected: int | str) -> None:
    assert _parse("build", "--concurrency", value).concurrency == expected


@pytest.mark.parametrize("value", ["-1", "0", "1.5", " "])
def test_a_concurrency_that_is_no_count_and_no_name_exits_2_with_the_fix(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse("build", "--concurrency", value)

    assert exited.value.code == 2
    assert "argument --concurrency" in capsys.readouterr().err


def test_threads_below_one_exits_2() -> None:
    with pytest.raises(SystemExit) as exited:
        _parse("build", "--threads", "0")
    assert exited.value.code == 2


# --- ls and plan, in-process on a corpus manifest --------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_layout(PROJECT, tmp_path_factory.mktemp("layout"))


def _ls(layout: Path, *argv: str) -> list[str]:
    return ["ls", *argv, "--manifest", str(corpus_dir() / PROJECT / "manifest.json"),
            "--project-dir", str(layout)]  # fmt: skip


@pytest.mark.parametrize(
    "case", list(jsonl(PROJECT, "selectors.jsonl"))[::5], ids=lambda case: str(case["id"])
)
def test_ls_prints_what_dbt_ls_printed(
    case: dict[str, Any], layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ls(layout, *case["dbt_argv"][2:])) == 0

    printed = [json.loads(line)["unique_id"] for line in capsys.readouterr().out.splitlines()]
    assert printed == case["expected"]


def test_ls_warns_on_stderr_for_each_term_that_matches_nothing(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ls(layout, "-s", "orders", "nope", "--exclude", "gone")) == 0

    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "The selection criterion 'nope' does not match any enabled nodes",
        "The selection criterion 'gone' does not match any enabled nodes",
    ]
    assert "orders" in out


@pytest.mark.parametrize("command", ["ls", "plan"])
@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_select_selects_nothing_and_warns_as_dbt_does(
    layout: Path, command: str, empty: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _ls(layout, "-s", empty)
    argv[0] = command

    assert main(argv) == 0

    out, err = capsys.readouterr()
    warning = "The selection criterion '' does not match any enabled nodes"
    # dbt 1.11 splits the value on spaces, as for any --select: one warning per piece
    assert err.splitlines().count(warning) == len(empty.split(" "))
    assert out == "" if command == "ls" else out.startswith("BuildPlan: 0 node(s) in 0 wave(s)")


def test_an_empty_select_among_others_keeps_the_others(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(_ls(layout, "-s", "", "-s", "orders", "--resource-type", "model", "-o", "name")) == 0
    )

    assert capsys.readouterr().out.split() == ["orders"]


def test_ls_quiet_prints_no_warning(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_ls(layout, "-s", "nope", "--quiet")) == 0

    assert capsys.readouterr() == ("", "")


def test_ls_says_no_nodes_selected_after_the_warnings(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ls(layout, "-s", "nope")) == 0

    assert capsys.readouterr().err.splitlines()[-1] == "No nodes selected!"


def test_a_state_selector_without_state_exits_2_naming_the_flag(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ls(layout, "-s", "state:modified+")) == 2

    err = capsys.readouterr().err
    assert err.startswith("dbt-orchestrate: error: cannot answer selector 'state:modified+'")
    assert "--state DIR" in err


def test_a_state_directory_without_a_manifest_is_named(
    layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ls(layout, "-s", "state:new", "--state", str(tmp_path))) == 2

    assert f"the state directory {tmp_path} has none" in capsys.readouterr().err


def test_ls_models_with_select_exits_2(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_ls(layout, "-m", "orders", "-s", "customers")) == 2
    assert '"models" and "select" are mutually exclusive' in capsys.readouterr().err


def _expected_plan(layout: Path, strategy: TestStrategy, *select: str) -> BuildPlan:
    context = selection_context(layout)
    return plan_selection(manifest(PROJECT), SelectionRequest(select=select), context, strategy)


def test_plan_prints_the_build_plan_of_plan_selection(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _ls(layout, "-s", "+orders", "--test-strategy", "deferred")
    argv[0] = "plan"

    assert main(argv) == 0

    expected = _expected_plan(layout, TestStrategy.DEFERRED, "+orders")
    assert capsys.readouterr().out == str(expected)


def test_plan_json_is_the_build_plans_dict(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _ls(layout, "-s", "orders", "--json")
    argv[0] = "plan"

    assert main(argv) == 0

    expected = _expected_plan(layout, TestStrategy.IMMEDIATE, "orders")
    assert json.loads(capsys.readouterr().out) == build_plan_to_dict(expected)


# --- when ls and plan parse, and what dbt gets ----------------------------------------


def test_a_missing_manifest_is_parsed_and_said_so(tmp_path: Path) -> None:
    args = _parse("ls", "--project-dir", str(tmp_path))

    why = _why_parse(args, tmp_path / "target" / "manifest.json")

    assert why == f"no manifest at {tmp_path / 'target' / 'manifest.json'}"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], None),
        (["--vars", "{x: 1}"], "--vars given"),
        (["-t", "prod", "--profile", "p"], "--target, --profile given"),
    ],
)
def test_vars_target_and_profile_parse_again(
    argv: list[str], said: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{}", encoding="utf-8")

    why = _why_parse(_parse("plan", *argv), path)

    assert (why is None) if said is None else (why is not None and why.startswith(said))


def test_vars_and_profile_reach_dbt_as_its_flags() -> None:
    args = _parse("build", "--vars", "{x: 1}", "--profile", "other")

    assert dbt_extra_args(args) == ("--vars", "{x: 1}", "--profile", "other")
    assert dbt_extra_args(_parse("build")) == ()


def test_dbt_parse_gets_the_vars_and_the_profile_of_the_extra_args() -> None:
    extra = ("--vars", "{x: 1}", "--no-partial-parse", "--profile=other", "--target", "t")

    assert _parse_flags(extra) == ["--vars", "{x: 1}", "--profile=other"]
    assert _parse_flags(("--profile",)) == []


def test_retry_takes_builds_flags_but_no_selection(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("retry", "--mode", "per-node", "--vars", "{a: 1}", "--write-run-results")
    assert (args.mode, args.vars, args.write_run_results) == ("per-node", "{a: 1}", True)
    for flag in ("--select", "--exclude", "--selector"):
        with pytest.raises(SystemExit) as raised:
            _parse("retry", flag, "x")
        assert raised.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["build", "retry"])
def test_asset_flags_reach_the_orchestrator(command: str, tmp_path: Path) -> None:
    from prefect_dbt_orchestrator.adapters.cli.main import _orchestrator

    plain = _orchestrator(_parse(command, "--project-dir", str(tmp_path)))
    flagged = _orchestrator(
        _parse(
            command, "--project-dir", str(tmp_path), "--disable-assets", "--include-compiled-code"
        )
    )

    assert (plain.options.disable_assets, plain.options.include_compiled_code) == (False, False)
    assert (flagged.options.disable_assets, flagged.options.include_compiled_code) == (True, True)
