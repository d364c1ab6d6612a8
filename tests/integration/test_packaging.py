"""The wheel holds one top-level package, and each import contract still fails
on a planted violation now that the root package is ``prefect_dbt_orchestrator``.

The violations are planted in a copy of ``src/`` put first on PYTHONPATH, so
the checkout is never touched; ``lint-imports`` runs as CI runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# contract name -> (file under src/, the import line that breaks only it)
PLANTED = {
    "Dependencies point inward: adapters -> ports -> domain": (
        "domain/waves.py",
        "import prefect_dbt_orchestrator.ports.clock",
    ),
    "Domain and ports import no framework, client or I/O library": (
        "ports/clock.py",
        "import socket",
    ),
    "The CLI drives Prefect; Prefect wires the backends; backends never import each other": (
        "adapters/dbt_core/project.py",
        "import prefect_dbt_orchestrator.adapters.local.clock",
    ),
    "dbt backends and the local driver run without Prefect": (
        "adapters/local/clock.py",
        "import prefect",
    ),
}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(REPO / "importlinter.ini")],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=False,
    )


def _copy_of_src(tmp_path: Path) -> Path:
    root = tmp_path / "planted"
    shutil.copytree(
        REPO / "src",
        root / "prefect_dbt_orchestrator",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary (names may wrap)."""
    text = " ".join(output.split())
    return {name: ("BROKEN" if f"{name} BROKEN" in text else "KEPT") for name in PLANTED}


def test_the_unplanted_copy_keeps_every_contract(tmp_path: Path) -> None:
    done = _lint(_copy_of_src(tmp_path))

    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_verdicts(done.stdout).values()) == {"KEPT"}


@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_a_planted_violation_breaks_exactly_its_contract(tmp_path: Path, contract: str) -> None:
    root = _copy_of_src(tmp_path)
    module, line = PLANTED[contract]
    target = root / "prefect_dbt_orchestrator" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # planted\n")

    done = _lint(root)

    assert done.returncode == 1, done.stdout + done.stderr
    broken = {name for name, verdict in _verdicts(done.stdout).items() if verdict == "BROKEN"}
    assert broken == {contract}, done.stdout


def test_the_wheel_has_one_top_level_package_with_its_type_markers(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("prefect_dbt_orchestrator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"prefect_dbt_orchestrator"}
    for folder in ("", "domain/", "ports/", "adapters/"):
        assert f"prefect_dbt_orchestrator/{folder}py.typed" in names
    assert "prefect_dbt_orchestrator/domain/selection/api.py" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"dbt-orchestrate = prefect_dbt_orchestrator.adapters.cli.main:main" in entry_points
