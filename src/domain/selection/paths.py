"""``path:`` resolution against a listing of the root project's files; pure, no I/O.

dbt globs the selector under the root project directory (``pathlib``'s
``Path.glob`` on Python 3.11) and keeps a node when its package-relative
``original_file_path``, its patch file or one of its parent directories is
among the matches. This module replays that glob on a list of relative paths.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import PurePosixPath
from types import MappingProxyType

import attrs

from prefect_dbt_orchestrator.domain.manifest import Node
from prefect_dbt_orchestrator.domain.selection.errors import InvalidMethodValueError

ROOT = "."
_WILDCARD = ("*", "?", "[")


@attrs.frozen
class FileTree:
    """The root project's files and directories, as relative POSIX paths.

    Attributes:
        entries: every file and directory (the root is ``.``).
        directories: the directories among them.
        children: each directory's entry names.
    """

    entries: frozenset[str]
    directories: frozenset[str]
    children: Mapping[str, tuple[str, ...]]


def _normal(path: str) -> str:
    return str(PurePosixPath(path))


def file_tree(paths: Iterable[str]) -> FileTree:
    """A FileTree from relative paths; a trailing ``/`` or an entry below
    a path makes that path a directory."""
    entries: set[str] = {ROOT}
    directories: set[str] = {ROOT}
    for raw in paths:
        if not raw.strip():
            continue
        path = _normal(raw.strip())
        entries.add(path)
        if raw.strip().endswith("/"):
            directories.add(path)
        parents = [str(p) for p in PurePosixPath(path).parents]
        entries.update(parents)
        directories.update(parents)
    children: dict[str, list[str]] = {d: [] for d in directories}
    for path in sorted(entries - {ROOT}):
        pure = PurePosixPath(path)
        children[str(pure.parent)].append(pure.name)
    frozen = {d: tuple(names) for d, names in children.items()}
    return FileTree(frozenset(entries), frozenset(directories), MappingProxyType(frozen))


def _join(base: str, name: str) -> str:
    return name if base == ROOT else f"{base}/{name}"


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _pattern_parts(term: str, pattern: str) -> tuple[str, ...]:
    """The glob's components, as ``pathlib`` splits them ("." and empty parts dropped,
    a trailing slash kept as a final empty part)."""
    if not pattern:
        raise InvalidMethodValueError(term, "the path is empty", "a path relative to the project")
    if pattern.startswith("/"):
        raise InvalidMethodValueError(
            term, "absolute paths are not supported", "a path relative to the project root"
        )
    parts = [p for p in pattern.split("/") if p and p != "."]
    if not parts:  # dbt itself crashes on `path:.` and `path:./`
        raise InvalidMethodValueError(
            term, "the path names no file or directory", "e.g. `path:models` or `path:*`"
        )
    if ".." in parts:  # dbt would silently select nothing
        raise InvalidMethodValueError(
            term, "'..' leaves the root project", "a path inside the root project"
        )
    if pattern.endswith("/"):
        parts.append("")
    for part in parts:
        if "**" in part and part != "**":
            raise InvalidMethodValueError(
                term, "'**' must be a whole path component", "e.g. `models/**/*.sql`"
            )
    return tuple(parts)


def _directories_below(tree: FileTree, base: str) -> Iterator[str]:
    yield base
    for name in tree.children.get(base, ()):
        child = _join(base, name)
        if child in tree.directories:
            yield from _directories_below(tree, child)


def _select(tree: FileTree, base: str, parts: tuple[str, ...]) -> Iterator[str]:
    """The paths below ``base`` that ``parts`` match (pathlib's selector chain)."""
    if not parts or not parts[0]:
        yield base
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        for directory in _directories_below(tree, base):
            yield from _select(tree, directory, rest)
        return
    wanted = tree.directories if rest else tree.entries
    if any(w in head for w in _WILDCARD):
        matcher = _compiled(head).fullmatch
        for name in tree.children.get(base, ()):
            child = _join(base, name)
            if child in wanted and matcher(name):
                yield from _select(tree, child, rest)
    elif _join(base, head) in wanted:
        yield from _select(tree, _join(base, head), rest)


def glob(tree: FileTree, term: str, pattern: str) -> frozenset[str]:
    """The root project paths that ``pattern`` matches, as dbt's glob finds them.

    Raises:
        InvalidMethodValueError: a pattern ``pathlib`` rejects, or one leaving the project.
    """
    return frozenset(_select(tree, ROOT, _pattern_parts(term, pattern)))


@lru_cache(maxsize=65536)
def _candidates(original_file_path: str, patch_path: str | None) -> tuple[str, ...]:
    """The paths that select a node: its file, its patch file, its parent directories."""
    own = PurePosixPath(original_file_path)
    found = [str(own), *(str(parent) for parent in own.parents)]
    if patch_path and "://" in patch_path:
        found.append(_normal(patch_path.split("://", 1)[1]))
    return tuple(found)


def node_in_paths(node: Node, paths: frozenset[str]) -> bool:
    """dbt's test: the node's file, its patch (yml) file or a parent directory matched."""
    return any(path in paths for path in _candidates(node.original_file_path, node.patch_path))
