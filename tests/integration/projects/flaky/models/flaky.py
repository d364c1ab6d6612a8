"""Fails on its first attempt, succeeds on every later one.

The first run finds no marker file, creates it and raises; any later run
finds the marker and builds the table. The marker's path comes from the
model config ``marker_path`` (set from FLAKY_MARKER_PATH in _models.yml), so
each test run passes its own: delete the file to make the model flaky again.
"""

from pathlib import Path
from typing import Any


def model(dbt: Any, session: Any) -> Any:
    numbers = dbt.ref("numbers")
    marker = Path(dbt.config.get("marker_path"))
    if not marker.exists():
        marker.write_text("the first attempt ran and failed\n", encoding="utf-8")
        raise RuntimeError("flaky: first attempt fails")
    return numbers.filter("id <= 2")
