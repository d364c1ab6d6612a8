"""Domain values pickle, so they cross process boundaries (a process pool,
a Dask worker); pure.

The value objects keep their mappings read-only as ``types.MappingProxyType``,
which the standard pickler refuses. Importing this module (the ``domain``
package does) registers a reducer with ``copyreg``: a proxy pickles as a
plain copy of its dict and unpickles as a read-only proxy again. Nothing else
about pickling changes; a proxy that could not pickle before now can.
"""

from __future__ import annotations

import copyreg
from collections.abc import Callable
from types import MappingProxyType
from typing import Any


def read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """The unpickling side: ``items`` behind a read-only proxy."""
    return MappingProxyType(items)


def _reduce(
    proxy: MappingProxyType[Any, Any],
) -> tuple[Callable[[dict[Any, Any]], MappingProxyType[Any, Any]], tuple[dict[Any, Any]]]:
    return read_only, (dict(proxy),)


copyreg.pickle(MappingProxyType, _reduce)
