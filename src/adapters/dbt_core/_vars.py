"""``--vars`` as dbt parses it, and the secrets a build must never report."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from prefect_dbt_orchestrator.domain.redaction import Secrets, build_secrets, flag_values


def _parsed_vars(extra_args: Sequence[str]) -> list[object]:
    from dbt.clients.yaml_helper import load_yaml_text

    parsed: list[object] = []
    for text in flag_values(extra_args, "--vars"):
        try:
            parsed.append(load_yaml_text(text))
        except Exception:  # dbt reports bad --vars itself; its raw text is scrubbed anyway
            continue
    return parsed


def read_secrets(extra_args: Sequence[str]) -> Secrets:
    """What a build must not report: the ``DBT_ENV_SECRET*`` values dbt scrubs,
    and ``--vars`` (its text, and the strings in it as dbt parses it)."""
    return build_secrets(os.environ, extra_args, _parsed_vars(extra_args))


def cli_vars_and_secrets(extra_args: Sequence[str]) -> tuple[Mapping[str, Any] | None, Secrets]:
    """``--vars`` as dbt parses it (the last one wins, as in click), and what the
    build must not report."""
    parsed = [v for v in _parsed_vars(extra_args) if isinstance(v, Mapping)]
    return (parsed[-1] if parsed else None), build_secrets(os.environ, extra_args, parsed)
