"""Source freshness: which sources have new data since the last run, which planned
nodes that spares, and how long a node's cached result may live; pure.

``sources.json`` (what ``dbt source freshness`` writes) arrives as a parsed
dict and the source rules come from the ``Manifest``. Nothing is read from disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.errors import (
    ManifestMalformedError,
    PlanError,
    UnknownNodeError,
)
from prefect_dbt_orchestrator.domain.manifest import (
    FreshnessRule,
    FreshnessThreshold,
    Manifest,
    Node,
    Source,
)

# dbt's freshness periods (dbt.artifacts.resources.TimePeriod), as timedeltas.
PERIODS = MappingProxyType(
    {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
)


@attrs.frozen
class SourcesFileError(PlanError):
    """A ``sources.json`` that is not what ``dbt source freshness`` writes."""

    source: str
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.source} is not a usable sources.json: {self.problem}; "
            "re-run `dbt source freshness` to write it again"
        )


@attrs.frozen
class SourceLoad:
    """One source's freshness result: its latest load (None when dbt reported a
    runtime error for it) and dbt's status (pass, warn, error, runtime error)."""

    unique_id: str
    max_loaded_at: datetime | None
    status: str


def _loaded_at(value: Any, unique_id: str, source: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SourcesFileError(source, f"max_loaded_at of {unique_id} is not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        problem = f"max_loaded_at {value!r} of {unique_id} is not an ISO 8601 timestamp"
        raise SourcesFileError(source, problem) from None
    # dbt converts max_loaded_at to UTC before writing it; a naive one is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_load(result: Any, index: int, source: str) -> SourceLoad:
    if not isinstance(result, Mapping):
        raise SourcesFileError(source, f"results[{index}] is not an object")
    unique_id, status = result.get("unique_id"), result.get("status")
    if not isinstance(unique_id, str) or not unique_id:
        raise SourcesFileError(source, f"results[{index}] has no unique_id")
    if not isinstance(status, str):
        raise SourcesFileError(source, f"results[{index}] ({unique_id}) has no status")
    return SourceLoad(unique_id, _loaded_at(result.get("max_loaded_at"), unique_id, source), status)


def read_source_loads(data: Mapping[str, Any], *, source: str) -> dict[str, SourceLoad]:
    """``sources.json`` (dbt's sources/v3 schema, parsed) as loads by unique_id;
    ``source`` names the file in errors.

    Raises:
        SourcesFileError: ``data`` is not an object, its ``results`` is not a
            list, or a result has no unique_id or status, an unreadable
            max_loaded_at, or a unique_id seen before.
    """
    if not isinstance(data, Mapping):
        raise SourcesFileError(source, f"expected a JSON object, got {type(data).__name__}")
    results = data.get("results")
    if not isinstance(results, list):
        raise SourcesFileError(source, "its results is missing or not a list")
    loads: dict[str, SourceLoad] = {}
    for index, result in enumerate(results):
        load = _read_load(result, index, source)
        if load.unique_id in loads:
            raise SourcesFileError(source, f"{load.unique_id} has two results")
        loads[load.unique_id] = load
    return loads


def fresher_sources(
    current: Mapping[str, SourceLoad], previous: Mapping[str, SourceLoad]
) -> frozenset[str]:
    """dbt's ``source_status:fresher``: sources whose current max_loaded_at is later
    than the previous one, or that the previous run did not report with one. A
    source without a current max_loaded_at (a runtime error) is never fresher."""
    fresher = set()
    for uid, load in current.items():
        before = previous.get(uid)
        was = None if before is None else before.max_loaded_at
        if load.max_loaded_at is not None and (was is None or load.max_loaded_at > was):
            fresher.add(uid)
    return frozenset(fresher)


def _frozen(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class FreshnessSkips:
    """What source freshness spares of a plan, and why.

    Attributes:
        skipped: node unique_id -> why it need not run (its sources, all stale).
        always_fresh: source unique_id -> why it counts as having new data
            although it was not compared (no rule, not checked, check failed).
        checked: the sources compared with the previous run.
    """

    skipped: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    always_fresh: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    checked: frozenset[str] = frozenset()


def _member(manifest: Manifest, unique_id: str) -> Node | None:
    tables = (table for _, table in manifest.tables() if unique_id in table)
    return next((table[unique_id] for table in tables), None)


def _upstream_sources(manifest: Manifest, unique_id: str) -> dict[str, Source]:
    """The enabled sources ``unique_id`` reads, through any node between them
    (ephemeral or not: a source behind a table model still feeds its children).

    Raises:
        UnknownNodeError: the manifest has no ``unique_id``.
    """
    start = _member(manifest, unique_id)
    if start is None:
        raise UnknownNodeError(unique_id, "manifest")
    found: dict[str, Source] = {}
    seen = {unique_id}
    stack = list(start.depends_on)
    while stack:
        uid = stack.pop()
        node = _member(manifest, uid)
        # dbt drops disabled and absent members from the graph; so do we.
        if uid in seen or node is None or not node.config.enabled:
            continue
        seen.add(uid)
        if isinstance(node, Source):
            found[uid] = node
        else:
            stack.extend(node.depends_on)
    return found


def _threshold(value: Any) -> FreshnessThreshold | None:
    if not isinstance(value, Mapping) or value.get("count") is None:
        return None
    return FreshnessThreshold(int(value["count"]), str(value.get("period") or ""))


def _is_set(threshold: FreshnessThreshold | None) -> bool:
    # dbt's Time.__bool__: a threshold needs both a count and a period.
    return threshold is not None and bool(threshold.period)


def _rule(source: Source) -> FreshnessRule | None:
    """The source's rule with a threshold, from ``freshness`` or (dbt >= 1.9,
    where the rule moved into config) ``config.freshness``; None when neither has one."""
    rules = [source.freshness]
    raw = source.config.raw.get("freshness")
    if isinstance(raw, Mapping):
        rules.append(
            FreshnessRule(_threshold(raw.get("warn_after")), _threshold(raw.get("error_after")))
        )
    for rule in rules:
        if rule is not None and (_is_set(rule.warn_after) or _is_set(rule.error_after)):
            return rule
    return None


def _uncheckable(source: Source) -> str | None:
    """Why ``dbt source freshness`` cannot compare ``source``, or None when it can."""
    if _rule(source) is None:
        return "no freshness rule"
    raw = source.config.raw
    # dbt >= 1.10 may measure with a loaded_at_query instead of a loaded_at_field.
    if not (source.loaded_at_field or raw.get("loaded_at_field") or raw.get("loaded_at_query")):
        return "no loaded_at_field"
    return None


def _split(sources: Mapping[str, Source]) -> tuple[frozenset[str], dict[str, str]]:
    checkable: set[str] = set()
    unchecked: dict[str, str] = {}
    for uid in sorted(sources):
        reason = _uncheckable(sources[uid])
        if reason is None:
            checkable.add(uid)
        else:
            unchecked[uid] = reason
    return frozenset(checkable), unchecked


def checkable_sources(
    manifest: Manifest, node_ids: Iterable[str]
) -> tuple[frozenset[str], dict[str, str]]:
    """The sources upstream of ``node_ids``, split into those ``dbt source
    freshness`` can check (a rule with a threshold, and a loaded_at_field or
    loaded_at_query) and the others, each with why it cannot be checked.

    Raises:
        UnknownNodeError: a node id that is not in the manifest.
    """
    upstream: dict[str, Source] = {}
    for uid in node_ids:
        upstream.update(_upstream_sources(manifest, uid))
    return _split(upstream)


def _failed_check(load: SourceLoad | None) -> str | None:
    if load is None:
        return "not checked by dbt source freshness"
    if load.max_loaded_at is None:
        return f"dbt source freshness failed: {load.status}"
    return None


def skip_unchanged(
    manifest: Manifest,
    node_ids: Iterable[str],
    current: Mapping[str, SourceLoad],
    previous: Mapping[str, SourceLoad] | None,
) -> FreshnessSkips:
    """dbt's ``source_status:fresher+`` applied per node: a node is skipped when it
    reads at least one source (transitively) and none of them has new data.

    A source has new data when it is fresher than in ``previous`` (or absent
    from it), and counts as having some when it cannot be checked (no rule,
    no loaded_at_field) or this check did not report it or failed on it. With
    no ``previous`` every source is new and nothing is skipped. Tests follow
    their parents like any node, so a skipped node's descendants are skipped
    exactly when their own sources are all stale too.

    Raises:
        UnknownNodeError: a node id that is not in the manifest.
    """
    upstream = {uid: _upstream_sources(manifest, uid) for uid in node_ids}
    checkable, always_fresh = _split({s: n for each in upstream.values() for s, n in each.items()})
    for uid in sorted(checkable):
        reason = _failed_check(current.get(uid))
        if reason is not None:
            always_fresh[uid] = reason
    if previous is None:
        return FreshnessSkips({}, always_fresh, frozenset())
    checked = checkable - always_fresh.keys()
    stale = checked - fresher_sources(current, previous)
    skipped = {
        uid: f"no new data in its sources since the last run: {', '.join(sorted(sources))}"
        for uid, sources in upstream.items()
        if sources and sources.keys() <= stale
    }
    return FreshnessSkips(skipped, always_fresh, checked)


def _lifetime(uid: str, rule: FreshnessRule) -> timedelta | None:
    threshold = rule.warn_after if _is_set(rule.warn_after) else rule.error_after
    if threshold is None or not _is_set(threshold):
        return None
    if threshold.period not in PERIODS:
        raise ManifestMalformedError(
            "manifest.json",
            f"{uid} has the freshness period {threshold.period!r}; dbt accepts "
            f"{', '.join(PERIODS)}",
        )
    return threshold.count * PERIODS[threshold.period]


def freshness_ttl(manifest: Manifest, unique_id: str) -> timedelta | None:
    """How long a node's cached result may live: the shortest, over its upstream
    sources, of each one's warn_after (else its error_after); None when no
    upstream source has a rule.

    Raises:
        UnknownNodeError: the manifest has no ``unique_id``.
        ManifestMalformedError: a rule's period is not minute, hour or day.
    """
    lifetimes = []
    for uid, source in _upstream_sources(manifest, unique_id).items():
        rule = _rule(source)
        lifetime = None if rule is None else _lifetime(uid, rule)
        if lifetime is not None:
            lifetimes.append(lifetime)
    return min(lifetimes, default=None)
