"""Write a ``run_results.json`` document (``domain.run_results``) to disk; Prefect-free.

dbt's own writer opens the file in place, so a reader (``dbt retry``, a
``--state`` comparison) can see half a file; this one never leaves one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.local.file_cache_store import write_atomically

FILE_NAME = "run_results.json"  # dbt.constants.RUN_RESULTS_FILE_NAME


def write_run_results(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON at ``path``, atomically.

    The JSON goes to a temp file in the same directory, is fsynced and moved
    over ``path`` (``os.replace``): readers see the old file or the new one,
    and no temp file is left behind, whatever fails. Parent directories are
    created; the file's mode is 0666 less the umask (0644 usually), as for
    any new file. One line, as dbt writes it.

    Raises:
        TypeError: ``document`` holds a value JSON cannot represent (nothing
            is written).
        ValueError: ``document`` holds NaN or infinity, which JSON cannot
            represent (nothing is written).
        OSError: the directory cannot be created or the file written (the
            old file, if any, is kept).
    """
    content = json.dumps(document, allow_nan=False).encode("utf-8")
    write_atomically(Path(path), content)
