"""The package's layers hold: ``lint-imports`` keeps the contracts of ``pyproject.toml`` on the
package as it is, and breaks them on a copy given an import up the layers or a circle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter (the test extra) checks the layers")

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "shortcut_mini: a module imports only from the layers below its own"
CIRCLES = "shortcut_mini: no import circles between the modules of any folder"


def _lint(where: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` run in ``where`` (its pyproject.toml, its copy of the package first on the
    path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path, added: dict[str, str]) -> Path:
    """A copy of the package and its contracts, with the line ``added[module file]`` appended."""
    shutil.copytree(
        ROOT / "shortcut_mini", tmp_path / "shortcut_mini", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for file, line in added.items():
        with open(tmp_path / "shortcut_mini" / file, "a") as f:
            f.write(f"\n{line}  # noqa\n")
    return tmp_path


def _verdicts(out: str) -> dict[str, str]:
    return {
        name: "KEPT" if f"{name} KEPT" in out else "BROKEN" if f"{name} BROKEN" in out else "?"
        for name in (LAYERS, CIRCLES)
    }


def test_the_package_keeps_its_layers_and_has_no_circles():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _verdicts(result.stdout) == {LAYERS: "KEPT", CIRCLES: "KEPT"}


def test_an_import_up_the_layers_breaks_the_contract(tmp_path):
    # the run store lies below the config module: reading TrainConfig there runs up a layer
    where = _copy(tmp_path, {"run_store.py": "from .config import TrainConfig"})
    result = _lint(where)
    assert result.returncode != 0
    assert _verdicts(result.stdout)[LAYERS] == "BROKEN"
    assert "shortcut_mini.run_store -> shortcut_mini.config" in result.stdout


def test_a_circle_inside_a_folder_breaks_the_contract(tmp_path):
    # shortcut.py imports base.py; base.py importing shortcut.py closes a circle in objectives/
    where = _copy(tmp_path, {"objectives/base.py": "from . import shortcut"})
    result = _lint(where)
    assert result.returncode != 0
    assert _verdicts(result.stdout) == {LAYERS: "KEPT", CIRCLES: "BROKEN"}
    assert ".base -> .shortcut" in result.stdout


def test_a_module_without_a_layer_breaks_the_contract(tmp_path):
    # every module of the package must be given its place in the layers
    where = _copy(tmp_path, {})
    (where / "shortcut_mini" / "unplaced.py").write_text('"""A module with no layer."""\n')
    result = _lint(where)
    assert result.returncode != 0
    assert "shortcut_mini.unplaced" in result.stdout + result.stderr
