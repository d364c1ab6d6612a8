"""Cache keys for dbt nodes, keeping the fingerprint of every component; pure.

A key is the sha256 of canonical JSON (sorted keys, no spaces), so it is the same
in every process and on every machine; Python's ``hash()`` is never used. The
components are kept so that ``first_change`` can say why a key moved.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

import attrs

from prefect_dbt_orchestrator.domain.errors import CycleError, UnknownNodeError, closest
from prefect_dbt_orchestrator.domain.manifest import Manifest, Node, Source, frozen_mapping

_UNSET = "<unset>"
_UPSTREAM = "upstream "
_SECRET_PREFIX = "DBT_ENV_SECRET"  # dbt refuses these outside profiles.yml and packages.yml
# One pass finds what three would: var('name'), var(<computed name>) and env_var('NAME').
# Only "var(" is consumed (the rest is a lookahead), so var(var('x')) still finds 'x'.
_CALL = re.compile(r"""\b(env_var|var)\s*\(\s*(?=['"]([^'"]+)['"]|[^'"\s)])""")
# Each component's reason is "<name> changed", but for the versions component.
_VERSIONS_REASON = "dbt or adapter version changed"


def _plain(value: Any) -> Any:
    """What JSON cannot encode: a mapping (config is a MappingProxyType) becomes an
    object, anything else ``str`` (as with ``json.dumps(default=str)``)."""
    return dict(value) if isinstance(value, Mapping) else str(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_plain)


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(_ENCODER.encode(value).encode()).hexdigest()


@attrs.frozen
class KeyEnvironment:
    """Everything outside a node that its key depends on.

    ``vars`` are dbt's vars (``dbt_project.yml`` merged with ``--vars``, the CLI
    winning); a dict under a package name of the manifest holds that package's
    own vars. ``env`` is the environment: a node uses only the names it reads with
    ``env_var('NAME')``, and never a ``DBT_ENV_SECRET`` one. ``packages`` maps each
    installed package to its version.
    """

    target_name: str
    adapter_type: str
    dbt_version: str
    adapter_version: str
    full_refresh: bool = False
    vars: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    packages: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen
class NodeKey:
    """A node's key and the fingerprint of each component, in the order hashed."""

    unique_id: str
    key: str
    components: Mapping[str, str] = attrs.field(converter=frozen_mapping)


def _node_key(unique_id: str, components: Mapping[str, str]) -> NodeKey:
    # The canonical JSON of [[name, fingerprint], ...] written directly: the same text
    # as json.dumps, a third faster (a tuva node has about 11 pairs).
    pairs = ",".join([f"[{_quoted(n)},{_quoted(p)}]" for n, p in components.items()])
    return NodeKey(unique_id, hashlib.sha256(f"[{pairs}]".encode()).hexdigest(), components)


@attrs.frozen
class _Reads:
    """The var and env var names some Jinja reads; ``any_var`` when a name is computed."""

    vars: frozenset[str] = frozenset()
    any_var: bool = False
    env: frozenset[str] = frozenset()

    def merged(self, other: _Reads) -> _Reads:
        return _Reads(self.vars | other.vars, self.any_var or other.any_var, self.env | other.env)


_NO_READS = _Reads()


def _scan(code: str) -> _Reads:
    if "var" not in code:  # most code reads neither (``env_var`` contains "var" too)
        return _NO_READS
    names: set[str] = set()
    env: set[str] = set()
    any_var = False
    for function, name in _CALL.findall(code):
        if function == "env_var":
            if name and not name.startswith(_SECRET_PREFIX):
                env.add(name)
        elif name:
            names.add(name)
        else:
            any_var = True
    return _Reads(frozenset(names), any_var, frozenset(env))


@attrs.frozen
class _Context:
    """One ``derive_cache_keys`` call: the manifest, the environment and its memos."""

    manifest: Manifest
    environment: KeyEnvironment
    source_state: Mapping[str, str] | None
    resources: Mapping[str, Node] = attrs.field(init=False)
    package_vars: Mapping[str, Mapping[str, Any]] = attrs.field(init=False)
    shared: Mapping[str, str] = attrs.field(init=False)
    closures: dict[str, frozenset[str]] = attrs.field(init=False, factory=dict)
    macro_facts: dict[str, tuple[list[str], _Reads]] = attrs.field(init=False, factory=dict)
    macro_sets: dict[tuple[str, ...], tuple[str, _Reads]] = attrs.field(init=False, factory=dict)
    prints: dict[Any, str] = attrs.field(init=False, factory=dict)
    sources_read: dict[str, frozenset[str]] = attrs.field(init=False, factory=dict)

    @resources.default
    def _all_resources(self) -> Mapping[str, Node]:
        return self.manifest.all_resources()

    @package_vars.default
    def _vars_by_package(self) -> Mapping[str, Mapping[str, Any]]:
        """dbt's vars as a node of each package sees them: the globals, then its package's
        (a dict under a package's name); "" holds the globals alone."""
        packages = {n.package_name for n in self.resources.values()}
        values = self.environment.vars
        scoped = {k: v for k, v in values.items() if k in packages and isinstance(v, Mapping)}
        shared = {k: v for k, v in values.items() if k not in scoped}
        return {"": shared} | {p: {**shared, **scoped.get(p, {})} for p in packages}

    @shared.default
    def _environment_components(self) -> Mapping[str, str]:
        """The components every node shares, but ``full_refresh`` (which comes earlier)."""
        env = self.environment
        return {
            "target": _fingerprint([env.target_name, env.adapter_type]),
            "versions": _fingerprint([env.dbt_version, env.adapter_version]),
            "packages": _fingerprint(dict(env.packages)),
        }

    def once(self, memo_key: Any, value: Any) -> str:
        """The fingerprint of ``value``, computed once per ``memo_key``."""
        known = self.prints.get(memo_key)
        if known is None:
            known = self.prints[memo_key] = _fingerprint(value)
        return known


def _closure(macro_id: str, ctx: _Context) -> frozenset[str]:
    """``macro_id`` and every macro it calls, transitively (absent macros included)."""
    known = ctx.closures.get(macro_id)
    if known is not None:
        return known
    seen = {macro_id}
    stack = [macro_id]
    while stack:  # macros may call each other in a loop: walk, never recurse
        macro = ctx.manifest.macros.get(stack.pop())
        callees = set(macro.depends_on_macros) - seen if macro is not None else set()
        seen |= callees
        stack.extend(callees)
    closure = ctx.closures[macro_id] = frozenset(seen)
    return closure


def _macro_facts(macro_id: str, ctx: _Context) -> tuple[list[str], _Reads]:
    """What a macro adds to a fingerprint (its id only when absent) and what it reads."""
    if macro_id not in ctx.macro_facts:
        macro = ctx.manifest.macros.get(macro_id)
        ctx.macro_facts[macro_id] = (
            ([macro_id], _NO_READS)
            if macro is None
            else ([macro_id, _fingerprint(macro.macro_sql)], _scan(macro.macro_sql))
        )
    return ctx.macro_facts[macro_id]


def _macros_of(node: Node, ctx: _Context) -> tuple[str, _Reads]:
    """The fingerprint of every macro ``node`` calls, transitively, and what they read."""
    called = tuple(sorted(set(node.depends_on_macros)))
    known = ctx.macro_sets.get(called)
    if known is None:
        closure = sorted(frozenset[str]().union(*(_closure(m, ctx) for m in called)))
        facts = [_macro_facts(uid, ctx) for uid in closure]
        reads = _NO_READS
        for _, read in facts:
            reads = reads.merged(read)
        known = ctx.macro_sets[called] = (_fingerprint([entry for entry, _ in facts]), reads)
    return known


def _vars_print(package: str, reads: _Reads, ctx: _Context) -> str:
    """The vars ``reads`` names (every var when a name is computed), as ``package`` sees them."""
    effective = ctx.package_vars.get(package, ctx.package_vars[""])
    names = reads.vars | effective.keys() if reads.any_var else reads.vars
    values = {name: effective.get(name, _UNSET) for name in names}
    return ctx.once(("vars", package, reads.vars, reads.any_var), values)


def _env_print(reads: _Reads, ctx: _Context) -> str:
    env = ctx.environment.env
    return ctx.once(("env", reads.env), {name: env.get(name, _UNSET) for name in reads.env})


def _source_code(node: Node) -> Any:
    if node.checksum or node.raw_code:
        return {"checksum": node.checksum, "raw_code": node.raw_code}
    return {"unique_id": node.unique_id, "path": node.path}


def _sources_read(node: Node, ctx: _Context) -> frozenset[str]:
    """The sources ``node`` reads directly or through ephemeral models (inlined as CTEs);
    parents are keyed first, so their own sets are known."""
    found: set[str] = set()
    for parent in node.depends_on:
        if parent in ctx.manifest.sources:
            found.add(parent)
        elif parent in ctx.resources and ctx.resources[parent].is_ephemeral:
            found |= ctx.sources_read[parent]
    read = ctx.sources_read[node.unique_id] = frozenset(found)
    return read


def _node_components(node: Node, ctx: _Context, keys: Mapping[str, NodeKey]) -> dict[str, str]:
    macros, macro_reads = _macros_of(node, ctx)
    own_reads = _scan(node.raw_code)
    reads = macro_reads if own_reads is _NO_READS else own_reads.merged(macro_reads)
    components = {
        "sql": _fingerprint(_source_code(node)),
        "config": _fingerprint(dict(node.config.raw)),
        "relation": _fingerprint([node.relation_name, node.database, node.schema, node.alias]),
        "macros": macros,
        "full_refresh": ctx.once("full_refresh", ctx.environment.full_refresh),
        "vars": _vars_print(node.package_name, reads, ctx),
        "env vars": _env_print(reads, ctx),
        **ctx.shared,
    }
    if ctx.source_state is not None:
        state = ctx.source_state
        read = sorted(_sources_read(node, ctx))
        components["source data"] = _fingerprint({s: state.get(s, _UNSET) for s in read})
    for parent in sorted(set(node.depends_on)):
        upstream = keys.get(parent)
        components[_UPSTREAM + parent] = upstream.key if upstream else _fingerprint(parent)
    return components


def _source_components(source: Source, ctx: _Context) -> dict[str, str]:
    where = [source.relation_name, source.database, source.schema, source.identifier]
    components = {
        "relation": _fingerprint(where),
        "config": _fingerprint(
            {"config": dict(source.config.raw), "loaded_at": source.loaded_at_field}
        ),
    }
    if ctx.source_state is not None:
        components["source data"] = _fingerprint(ctx.source_state.get(source.unique_id, _UNSET))
    return components


def _upstream_order(wanted: Iterable[str], ctx: _Context) -> list[str]:
    """``wanted`` and everything they read from, parents first (a depth-first post-order
    with an explicit stack: tuva's chains are deeper than Python's recursion limit).

    Raises:
        CycleError: some of them read from each other in a loop.
    """
    order: list[str] = []
    done: set[str] = set()
    for root in wanted:
        stack = [] if root in done else [(root, iter(ctx.resources[root].depends_on))]
        on_path = {root}  # the ids on the stack
        while stack:
            uid, parents = stack[-1]
            parent = next((p for p in parents if p in ctx.resources and p not in done), None)
            if parent is None:
                stack.pop()
                on_path.discard(uid)
                done.add(uid)
                order.append(uid)
            elif parent in on_path:
                path = [u for u, _ in stack]
                raise CycleError(tuple(sorted(path[path.index(parent) :])))
            else:
                on_path.add(parent)
                stack.append((parent, iter(ctx.resources[parent].depends_on)))
    return order


def derive_cache_keys(
    manifest: Manifest,
    unique_ids: Iterable[str],
    environment: KeyEnvironment,
    *,
    source_state: Mapping[str, str] | None = None,
) -> dict[str, NodeKey]:
    """Keys of ``unique_ids`` (and, internally, of everything upstream they need).

    A node's key hashes its own code, config, relation and macros, the vars and
    env vars it reads, the environment, the state of the sources it reads (only
    when ``source_state``, source unique_id to e.g. ``max_loaded_at``, is given),
    and the key of each upstream, so a change reaches every descendant.

    Raises:
        UnknownNodeError: an id is not a member of the manifest.
        CycleError: the nodes upstream of ``unique_ids`` read from each other in a loop.
    """
    ctx = _Context(manifest, environment, source_state)
    wanted = tuple(dict.fromkeys(unique_ids))
    for uid in wanted:
        if uid not in ctx.resources:
            hint = closest(uid, ctx.resources)
            fix = f"did you mean {', '.join(hint)}?" if hint else "check the id with `dbt ls`"
            raise UnknownNodeError(uid, "manifest", fix)
    keys: dict[str, NodeKey] = {}
    for uid in _upstream_order(wanted, ctx):
        node = ctx.resources[uid]
        if isinstance(node, Source):
            keys[uid] = _node_key(uid, _source_components(node, ctx))
        else:
            keys[uid] = _node_key(uid, _node_components(node, ctx, keys))
    return {uid: keys[uid] for uid in wanted}


def _reason(name: str, how: str) -> str:
    if name.startswith(_UPSTREAM):
        return f"{name} {how}"
    return _VERSIONS_REASON if name == "versions" else f"{name} changed"


def first_change(previous: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """Why a key changed: the first component (in ``current``'s order) whose fingerprint
    differs or is new, else the first of ``previous`` that is gone; None when equal.

    Upstream components read "upstream <unique_id> changed" (or "added", "removed").
    """
    for name, fingerprint in current.items():
        if name not in previous:
            return _reason(name, "added")
        if previous[name] != fingerprint:
            return _reason(name, "changed")
    for name in previous:
        if name not in current:
            return _reason(name, "removed")
    return None
