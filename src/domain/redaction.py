"""Keep secrets out of what a build reports (args, messages, logs); pure.

dbt treats the values of ``DBT_ENV_SECRET_*`` environment variables as secret
and scrubs them from its own output (dbt_common's ``env_secrets()`` and
``scrub_secrets``); ``--vars`` may carry passwords too. The adapters read the
environment and parse ``--vars``; this module gets those values as data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from prefect_dbt_orchestrator.domain.outcomes import ErrorInfo, NodeResult

REDACTED = "<redacted>"
# dbt_common.constants.SECRET_ENV_PREFIX: dbt scrubs the values of these variables.
SECRET_ENV_PREFIX = "DBT_ENV_SECRET"
# Flags whose whole value is replaced by REDACTED wherever args are reported.
SECRET_FLAGS = ("--vars",)
# A string in --vars shorter than this is not scrubbed out of messages: a var
# like {env: dev} would otherwise blank every "dev" in dbt's text.
MIN_VAR_SECRET_LENGTH = 4


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a secret that contains another one goes as a whole.
    return tuple(sorted({v for v in values if v.strip()}, key=lambda v: (-len(v), v)))


@attrs.frozen
class Secrets:
    """Text that must not leave the build; ``repr`` never shows it."""

    values: tuple[str, ...] = attrs.field(default=(), converter=_longest_first, repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by REDACTED (as dbt's
        ``scrub_secrets`` does with its own marker)."""
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text

    def redact_args(self, args: Sequence[str]) -> tuple[str, ...]:
        """``args`` with the value of each SECRET_FLAGS flag replaced by REDACTED
        (``--vars X`` and ``--vars=X``) and secret values scrubbed from the rest."""
        out: list[str] = []
        hide_next = False
        for arg in args:
            name = arg.split("=", 1)[0]
            if hide_next:
                out.append(REDACTED)
            elif name in SECRET_FLAGS and "=" in arg:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(self.scrub(arg))
            hide_next = not hide_next and arg in SECRET_FLAGS
        return tuple(out)

    def scrub_result(self, result: NodeResult) -> NodeResult:
        """``result`` with its message, error message, compiled code and the text
        values of its adapter response scrubbed."""
        if not self.values:
            return result
        message = None if result.message is None else self.scrub(result.message)
        error = result.error
        if error is not None:
            error = ErrorInfo(self.scrub(error.message), error.type)
        response = {
            key: self.scrub(value) if isinstance(value, str) else value
            for key, value in result.adapter_response.items()
        }
        code = None if result.compiled_code is None else self.scrub(result.compiled_code)
        return attrs.evolve(
            result, message=message, error=error, adapter_response=response, compiled_code=code
        )


def secret_env_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The values dbt treats as secret: those of ``DBT_ENV_SECRET*`` variables."""
    return tuple(v for k, v in environ.items() if k.startswith(SECRET_ENV_PREFIX) and v.strip())


def flag_values(args: Sequence[str], flag: str = "--vars") -> tuple[str, ...]:
    """Every value given to ``flag`` in ``args`` (``flag X`` or ``flag=X``)."""
    found: list[str] = []
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found.append(args[index + 1])
        elif arg.startswith(f"{flag}="):
            found.append(arg.split("=", 1)[1])
    return tuple(found)


def string_leaves(value: object, min_length: int = MIN_VAR_SECRET_LENGTH) -> tuple[str, ...]:
    """The strings of at least ``min_length`` characters in parsed ``--vars``
    (nested mappings and lists included; keys are not secret)."""
    if isinstance(value, str):
        return (value,) if len(value.strip()) >= min_length else ()
    if isinstance(value, Mapping):
        children: Iterable[object] = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return ()
    return tuple(leaf for child in children for leaf in string_leaves(child, min_length))


def build_secrets(
    environ: Mapping[str, str], args: Sequence[str], parsed_vars: Iterable[object] = ()
) -> Secrets:
    """The secrets of one build: ``DBT_ENV_SECRET*`` values, the raw ``--vars``
    texts in ``args``, and the strings inside ``parsed_vars`` (the adapter
    parses each ``--vars`` text as dbt does)."""
    values = [*secret_env_values(environ), *flag_values(args)]
    for parsed in parsed_vars:
        values += string_leaves(parsed)
    return Secrets(values)
