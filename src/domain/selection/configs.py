"""The ``config.<key>`` method: a node's or source's config value, compared as dbt does; pure.

Nested keys descend dicts (``config.meta.owner``); a list value matches when
it holds the value; ``true``/``false`` in any case match the booleans; and
``config.severity`` compares without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prefect_dbt_orchestrator.domain.selection.errors import InvalidMethodValueError
from prefect_dbt_orchestrator.domain.selection.index import CONFIGURABLE, SelectionIndex
from prefect_dbt_orchestrator.domain.selection.parse import Criterion


def _config_value(config: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[bool, Any]:
    """Descend ``config.a.b``; (False, None) when a key is absent.

    ``pre_hook``/``post_hook`` are stored as ``pre-hook``/``post-hook``.
    """
    value: Any = config
    for key in keys:
        if not isinstance(value, Mapping):
            return False, None
        if key not in value and key in ("pre_hook", "post_hook"):
            key = key.replace("_", "-")
        if key not in value:
            return False, None
        value = value[key]
    return True, value


class _CaseInsensitive(str):
    """dbt compares ``config.severity`` without regard to case."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.upper() == other.upper()

    def __hash__(self) -> int:
        return hash(self.upper())


def config_value_matches(wanted: Any, value: Any, severity: bool = False) -> bool:
    """dbt's comparison: equality, list membership, and ``true``/``false``
    (any case) matching the booleans."""
    if severity:
        wanted = _CaseInsensitive(wanted)
    flag = str(wanted).upper()
    if isinstance(value, list):
        return (
            wanted in value
            or (flag == "TRUE" and True in value)
            or (flag == "FALSE" and False in value)
        )
    return bool(
        wanted == value
        or (flag == "TRUE" and value is True)
        or (flag == "FALSE" and value is False)
    )


def match_config(index: SelectionIndex, criterion: Criterion) -> Iterator[str]:
    """config.<key>[.<key>...]: nodes and sources."""
    if not criterion.arguments:
        raise InvalidMethodValueError(
            criterion.raw,
            "config needs a key",
            "config.<key>:<value>, e.g. config.materialized:table",
        )
    severity = criterion.arguments == ("severity",)
    for uid, node in index.members(CONFIGURABLE):
        found, value = _config_value(node.config.raw, criterion.arguments)
        if found and config_value_matches(criterion.value, value, severity):
            yield uid
