"""The orchestrator's keyword arguments folded into one checked, frozen value."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TypeVar

import attrs

from prefect_dbt_orchestrator.domain.commands import InvocationOptions
from prefect_dbt_orchestrator.domain.errors import OptionsConflictError
from prefect_dbt_orchestrator.domain.execution import ExecutionMode
from prefect_dbt_orchestrator.domain.placement import TestStrategy

E = TypeVar("E", bound=enum.Enum)


def coerce_enum(kind: type[E], value: E | str, parameter: str) -> E:
    """``value`` as a member of ``kind``; strings match names or values in any case.

    Raises:
        OptionsConflictError: the string names no member.
    """
    if isinstance(value, kind):
        return value
    text = str(value).strip().lower().replace("-", "_")
    for member in kind:
        if text in (member.name.lower(), str(member.value).lower()):
            return member
    valid = ", ".join(m.name for m in kind)
    raise OptionsConflictError(f"{parameter}={value!r} is not valid", f"use one of {valid}")


@attrs.frozen
class RunOptions:
    """How a build runs; built and checked once by ``fold_run_options``."""

    execution_mode: ExecutionMode = ExecutionMode.PER_WAVE
    test_strategy: TestStrategy = TestStrategy.IMMEDIATE
    concurrency: int | None = None
    concurrency_limit: str | None = None
    threads: int | None = None
    retries: int = 0
    retry_delay_seconds: float = 0
    retry_tests: bool = False
    raise_on_failure: bool = True
    state_path: Path | None = None
    defer: bool = False
    defer_state_path: Path | None = None
    favor_state: bool = False
    create_summary_artifact: bool = True
    task_tags: bool = False
    node_timeout_seconds: float | None = None
    timeout_seconds: float | None = None
    concurrency_timeout_seconds: float | None = None
    write_run_results: bool = False
    disable_assets: bool = False
    include_compiled_code: bool = False

    def invocation(
        self, full_refresh: bool, target: str | None, extra: tuple[str, ...]
    ) -> InvocationOptions:
        """The dbt flags of one call with these options."""
        return InvocationOptions(
            full_refresh=full_refresh,
            target=target,
            threads=self.threads,
            extra_args=extra,
            state_path=None if self.state_path is None else str(self.state_path),
            defer=self.defer,
            defer_state_path=None if self.defer_state_path is None else str(self.defer_state_path),
            favor_state=self.favor_state,
        )


def _concurrency(
    concurrency: int | str | None, limit_name: str | None
) -> tuple[int | None, str | None]:
    if isinstance(concurrency, str) and limit_name and concurrency != limit_name:
        raise OptionsConflictError(
            f"concurrency={concurrency!r} and concurrency_limit_name={limit_name!r} disagree",
            "pass one name, as concurrency=",
        )
    if isinstance(concurrency, bool) or (isinstance(concurrency, int) and concurrency < 1):
        raise OptionsConflictError(
            f"concurrency={concurrency!r} is not a positive number of nodes",
            "pass an int >= 1, or the name of a Prefect global concurrency limit",
        )
    if isinstance(concurrency, str):
        return None, concurrency
    return concurrency, limit_name


_SECONDS = ("node_timeout_seconds", "timeout_seconds", "concurrency_timeout_seconds")


def _check_seconds(options: RunOptions) -> None:
    for name in _SECONDS:
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise OptionsConflictError(
                f"{name}={value!r} is not a positive number of seconds",
                f"pass {name}=<seconds> greater than 0, or None for no limit",
            )


def _check(options: RunOptions) -> None:
    _check_seconds(options)
    if options.retries < 0 or options.retry_delay_seconds < 0:
        raise OptionsConflictError(
            "retries and retry_delay_seconds cannot be negative", "pass 0 or more"
        )
    if options.threads is not None and options.threads < 1:
        raise OptionsConflictError(f"threads={options.threads} is not >= 1", "pass threads >= 1")
    if options.defer and options.state_path is None and options.defer_state_path is None:
        raise OptionsConflictError(
            "defer=True needs a state to defer to",
            "pass state_path=Path(...) or defer_state_path=Path(...) (a folder with manifest.json)",
        )
    if options.favor_state and not options.defer:
        raise OptionsConflictError(
            "favor_state=True only applies with defer=True", "add defer=True"
        )


def fold_run_options(
    *,
    execution_mode: ExecutionMode | str,
    test_strategy: TestStrategy | str,
    concurrency: int | str | None,
    concurrency_limit_name: str | None,
    **rest: object,
) -> RunOptions:
    """Check the orchestrator's keyword arguments and freeze them.

    Raises:
        OptionsConflictError: a bad value, or options that cannot go together.
    """
    count, limit = _concurrency(concurrency, concurrency_limit_name)
    for key in ("state_path", "defer_state_path"):
        if rest.get(key) is not None:
            # Absolute now: dbt reads --state relative to the project dir, the
            # selector relative to the current one; both must see one folder.
            rest[key] = Path(str(rest[key])).expanduser().resolve()
    options = RunOptions(
        execution_mode=coerce_enum(ExecutionMode, execution_mode, "execution_mode"),
        test_strategy=coerce_enum(TestStrategy, test_strategy, "test_strategy"),
        concurrency=count,
        concurrency_limit=limit,
        **rest,  # type: ignore[arg-type]
    )
    _check(options)
    return options
