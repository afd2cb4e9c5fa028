"""The engine stays free of Qt and of the web server stack, statically and at import time."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "shiboken6", "qasync", "fastapi", "starlette", "uvicorn")


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = len(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
    assert f"{declared} kept, 0 broken" in result.stdout  # every declared contract was checked


def test_importing_every_engine_module_loads_no_forbidden_package() -> None:
    probe = (
        "import importlib, pkgutil, sys\n"
        "import desktop_uploader.engine as engine\n"
        "for info in pkgutil.walk_packages(engine.__path__, 'desktop_uploader.engine.'):\n"
        "    importlib.import_module(info.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(len([m for m in sys.modules if m.startswith('desktop_uploader.engine')]), bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    count, bad = result.stdout.split(" ", 1)
    assert int(count) >= 5
    assert bad.strip() == "[]"
