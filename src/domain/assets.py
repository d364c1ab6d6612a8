"""Prefect asset keys, lineage and descriptions for dbt nodes; pure.

A model, seed or snapshot that builds a relation, and a source that names
one, is the asset ``<adapter>://<database>/<schema>/<identifier>``. The rules
for a valid key are Prefect's (``prefect.types.names``, Prefect 3.8), copied
here because the domain imports no Prefect.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.manifest import (
    Group,
    Node,
    ResourceType,
    Source,
    frozen_mapping,
)

# Prefect's limits: prefect.types.names.MAX_ASSET_KEY_LENGTH and
# RESTRICTED_ASSET_CHARACTERS, prefect.assets.core.MAX_ASSET_DESCRIPTION_LENGTH.
MAX_ASSET_KEY_LENGTH = 512
MAX_ASSET_DESCRIPTION_LENGTH = 2500
RESTRICTED_ASSET_CHARACTERS = frozenset("\n\r\t\0 #?&%\"'<>[]{}|\\^`")
_PROTOCOL = re.compile(r"^[a-z0-9]+://")

ASSET_TYPES = frozenset(
    {ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT, ResourceType.SOURCE}
)
DEFAULT_PROTOCOL = "dbt"
_PROTOCOL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_MAX_PROTOCOL = 32  # keeps the protocol whole when a long key is truncated
# "~" always starts an escape (two hex digits follow), so "~~" never occurs in
# an untruncated key and marks the hash suffix of a truncated one.
_ESCAPE = "~"
_TRUNCATED = "~~"
_HASH_LENGTH = 16
_ELLIPSIS = "…"


def is_valid_asset_key(key: str) -> bool:
    """True when Prefect 3.8 accepts ``key`` as an asset key.

    Mirrors ``prefect.types.names.validate_valid_asset_key``: no restricted
    character, at most 512 characters, a lowercase ``[a-z0-9]+://`` protocol.
    """
    return (
        not RESTRICTED_ASSET_CHARACTERS.intersection(key)
        and len(key) <= MAX_ASSET_KEY_LENGTH
        and _PROTOCOL.match(key) is not None
    )


def _needs_escape(char: str) -> bool:
    # "/" separates the parts and "~" starts an escape; invisible characters
    # (controls, odd spaces, zero-width joiners) are escaped so keys read plainly.
    return char in RESTRICTED_ASSET_CHARACTERS or char in "/~" or not char.isprintable()


def escape_key_part(part: str) -> str:
    """``part`` with each character Prefect refuses (and "/", "~", invisible
    ones) written as ``~XX`` per UTF-8 byte; case, dots and the rest kept.

    Injective: "~" appears only as an escape, so the part decodes back.
    """
    return "".join(
        "".join(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        if _needs_escape(char)
        else char
        for char in part
    )


def key_protocol(adapter_type: str | None) -> str:
    """The adapter type lowercased to ``[a-z0-9]``; ``dbt`` when nothing is left."""
    kept = "".join(c for c in (adapter_type or "").lower() if c in _PROTOCOL_CHARS)
    return kept[:_MAX_PROTOCOL] or DEFAULT_PROTOCOL


def relation_key(
    adapter_type: str | None, database: str | None, schema: str, identifier: str
) -> str:
    """The asset key of a relation; a None database leaves its segment out.

    Different (database, schema, identifier) give different keys: each part
    is escaped injectively and the number of "/" tells whether a database is
    there. A key longer than 512 characters is cut and ends in ``~~`` and 16
    hex digits of its SHA-256, so it stays unique (and stable) in practice.
    """
    parts = (schema, identifier) if database is None else (database, schema, identifier)
    key = f"{key_protocol(adapter_type)}://" + "/".join(escape_key_part(p) for p in parts)
    return _clamp_key(key)


def _clamp_key(key: str) -> str:
    if len(key) <= MAX_ASSET_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]
    head = key[: MAX_ASSET_KEY_LENGTH - len(_TRUNCATED) - _HASH_LENGTH]
    if head.endswith(_ESCAPE):  # never leave half an ~XX escape behind
        head = head[:-1]
    elif head[-2:-1] == _ESCAPE:
        head = head[:-2]
    return f"{head}{_TRUNCATED}{digest}"


def asset_key(adapter_type: str | None, node: Node) -> str | None:
    """The asset key of ``node``'s relation; None when it has no relation.

    Models (not ephemeral), seeds, snapshots and sources with a
    ``relation_name`` have one. Its parts are dbt's unquoted ``database``,
    ``schema`` and identifier (a source's ``identifier``, otherwise the
    ``alias``, falling back to the name), not the quoted ``relation_name``.
    """
    if node.resource_type not in ASSET_TYPES or node.is_ephemeral or not node.relation_name:
        return None
    chosen = node.identifier if isinstance(node, Source) else node.alias
    return relation_key(adapter_type, node.database, node.schema or "", chosen or node.name)


def upstream_asset_keys(
    adapter_type: str | None, node: Node, members: Mapping[str, Node]
) -> tuple[str, ...]:
    """The assets ``node`` reads, sorted and without repeats.

    These are the relations of its ``depends_on`` parents; an ephemeral parent
    is compiled into the node as a CTE, so its own parents count instead, to
    any depth. Parents missing from ``members`` are ignored, a loop is walked
    once, and the node's own key is left out.
    """
    keys: set[str] = set()
    seen = {node.unique_id}
    pending = list(node.depends_on)
    while pending:
        uid = pending.pop()
        parent = members.get(uid)
        if uid in seen or parent is None:
            continue
        seen.add(uid)
        if parent.is_ephemeral:
            pending.extend(parent.depends_on)
        elif (key := asset_key(adapter_type, parent)) is not None:
            keys.add(key)
    keys.discard(asset_key(adapter_type, node) or "")
    return tuple(sorted(keys))


def _named_owners(value: Any) -> tuple[str, ...]:
    # dbt leaves meta free-form: an owner is a string or a list of strings.
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    kept = (n.strip() for n in names if isinstance(n, str))
    return tuple(dict.fromkeys(n for n in kept if n))


def _group_of(node: Node, groups: Mapping[str, Group]) -> Group | None:
    if not node.group:
        return None
    same_package = groups.get(f"group.{node.package_name}.{node.group}")
    if same_package is not None:
        return same_package
    named = [groups[uid] for uid in sorted(groups) if groups[uid].name == node.group]
    return named[0] if named else None


def asset_owners(node: Node, groups: Mapping[str, Group]) -> tuple[str, ...]:
    """``meta.owner`` (``config.meta`` first, then the node's ``meta``), else
    the name, or failing that the email, of the owner of the node's group."""
    for meta in (node.config.meta, node.meta):
        owners = _named_owners(meta.get("owner"))
        if owners:
            return owners
    group = _group_of(node, groups)
    if group is None:
        return ()
    return _named_owners(group.owner.get("name")) or _named_owners(group.owner.get("email"))


def clamp_description(description: str, compiled_code: str | None = None) -> str:
    """``description`` with ``compiled_code`` in a sql block after it, within
    Prefect's 2,500 characters: the code goes first, then the text is cut
    (ending in an ellipsis)."""
    if compiled_code:
        block = f"```sql\n{compiled_code.rstrip()}\n```"
        full = f"{description.rstrip()}\n\n{block}" if description.strip() else block
        if len(full) <= MAX_ASSET_DESCRIPTION_LENGTH:
            return full
    if len(description) <= MAX_ASSET_DESCRIPTION_LENGTH:
        return description
    return description[: MAX_ASSET_DESCRIPTION_LENGTH - len(_ELLIPSIS)] + _ELLIPSIS


def asset_metadata(node: Node) -> dict[str, Any]:
    """What a materialization event carries about ``node``; JSON values only."""
    return {
        "unique_id": node.unique_id,
        "resource_type": node.resource_type.value,
        "materialized": node.materialized,
        "tags": list(node.tags),
        "package_name": node.package_name,
        "database": node.database,
        "schema": node.schema,
        "relation_name": node.relation_name,
    }


@attrs.frozen
class AssetDescription:
    """A node as a Prefect asset: its key, properties, lineage and metadata.

    ``metadata`` is read-only; hand Prefect ``dict(description.metadata)``.
    """

    key: str
    name: str
    description: str
    owners: tuple[str, ...]
    upstream_keys: tuple[str, ...]
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


def describe_asset(
    adapter_type: str | None,
    node: Node,
    members: Mapping[str, Node],
    groups: Mapping[str, Group],
    *,
    compiled_code: str | None = None,
    include_compiled_code: bool = False,
) -> AssetDescription | None:
    """``node`` as an asset, or None when it has no relation (see ``asset_key``).

    Args:
        adapter_type: ``manifest.metadata.adapter_type``.
        node: the node that runs (or the source read).
        members: every graph member by unique_id, sources included.
        groups: ``manifest.groups``, for owners.
        compiled_code: the SQL dbt ran, when known.
        include_compiled_code: append ``compiled_code`` to the description.
    """
    key = asset_key(adapter_type, node)
    if key is None:
        return None
    code = compiled_code if include_compiled_code else None
    return AssetDescription(
        key=key,
        name=node.name,
        description=clamp_description(node.description, code),
        owners=asset_owners(node, groups),
        upstream_keys=upstream_asset_keys(adapter_type, node, members),
        metadata=asset_metadata(node),
    )
