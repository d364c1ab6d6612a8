"""Write a ``run_results.json`` document (``domain.run_results``) to disk, and read
one back for a retry (``domain.retry``); Prefect-free.

dbt's own writer opens the file in place, so a reader (``dbt retry``, a
``--state`` comparison) can see half a file; this one never leaves one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect_dbt_orchestrator.adapters.local.file_cache_store import write_atomically
from prefect_dbt_orchestrator.domain.retry import PreviousRun, PreviousRunError, read_previous_run

FILE_NAME = "run_results.json"  # dbt.constants.RUN_RESULTS_FILE_NAME


def read_run_results(path: Path) -> PreviousRun:
    """The previous run recorded in ``path`` (ours or dbt's ``run_results.json``).

    Raises:
        PreviousRunError: the file is missing, unreadable, not JSON, or not a
            run_results document.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PreviousRunError(source, "there is no such file") from None
    except OSError as exc:
        raise PreviousRunError(source, f"it cannot be read ({exc.strerror or exc})") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PreviousRunError(source, f"it is not JSON ({exc})") from exc
    return read_previous_run(document, source)


def write_run_results(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON at ``path``, atomically.

    The JSON goes to a temp file in the same directory, is fsynced and moved
    over ``path`` (``os.replace``): readers see the old file or the new one,
    and no temp file is left behind, whatever fails. Parent directories are
    created; the file's mode is 0666 less the umask (0644 usually), as for
    any new file. One line, as dbt writes it. A temp file left by a writer
    that was killed (SIGKILL) is removed first.

    Raises:
        TypeError: ``document`` holds a value JSON cannot represent (nothing
            is written).
        ValueError: ``document`` holds NaN or infinity, which JSON cannot
            represent (nothing is written).
        OSError: the directory cannot be created or the file written (the
            old file, if any, is kept).
    """
    content = json.dumps(document, allow_nan=False).encode("utf-8")
    remove_stale_temps(Path(path))
    write_atomically(Path(path), content)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files a killed writer of ``path`` left beside it (their
    process is gone); returns them. A live writer's temp file is kept."""
    removed: list[Path] = []
    for temp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        pid = temp.name[len(Path(path).name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True
