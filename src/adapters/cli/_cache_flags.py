"""The caching flags of ``dbt-orchestrate build`` and ``plan``, as one ``CacheConfig``."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_dbt_orchestrator.adapters.cli._flags import positive_seconds

if TYPE_CHECKING:  # Prefect is imported only by the commands that run under it
    from prefect_dbt_orchestrator.adapters.prefect import CacheConfig


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    """``--cache`` and what configures it (each of the others turns it on too)."""
    group = parser.add_argument_group("caching (skip what has not changed since its last success)")
    group.add_argument(
        "--cache", action="store_true", help="serve unchanged nodes from the cross-run cache"
    )
    storage = group.add_mutually_exclusive_group()
    storage.add_argument(
        "--cache-dir", type=Path, default=None, help="keep cache entries in this directory"
    )
    storage.add_argument(
        "--cache-storage",
        default=None,
        metavar="BLOCK_SLUG",
        help='keep cache entries in a Prefect file-system block ("s3-bucket/name")',
    )
    group.add_argument(
        "--cache-expiration",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="an entry is reusable this long (default: until its key changes)",
    )
    group.add_argument(
        "--cache-tests",
        action="store_true",
        help="cache data and unit tests too: a test whose nodes are all hits is one itself",
    )
    parser.add_argument(
        "--only-fresh-sources",
        action="store_true",
        help="skip nodes whose sources have no new data since the check in --state "
        "(runs `dbt source freshness` for the sources upstream of the selection)",
    )
    group.add_argument(
        "--cache-freshness-expiration",
        action="store_true",
        help="an entry lives as long as its sources' freshness rules allow",
    )


def cache_config(args: argparse.Namespace) -> CacheConfig | None:
    """The flags' CacheConfig; None when no caching flag was given."""
    wanted = (
        args.cache
        or args.cache_dir is not None
        or args.cache_storage is not None
        or args.cache_expiration is not None
        or args.cache_freshness_expiration
        or args.cache_tests
    )
    if not wanted:
        return None
    from prefect_dbt_orchestrator.adapters.prefect import CacheConfig

    expiration = None if args.cache_expiration is None else timedelta(seconds=args.cache_expiration)
    excluded = {"snapshot"} if args.cache_tests else {"test", "snapshot", "unit_test"}
    return CacheConfig(
        expiration=expiration,
        key_storage=args.cache_dir if args.cache_dir is not None else args.cache_storage,
        use_source_freshness_expiration=args.cache_freshness_expiration,
        exclude_resource_types=frozenset(excluded),
    )
