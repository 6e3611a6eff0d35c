"""The direction of imports is deployments -> flows -> tasks -> georep, never backwards: georep (emulator
included) must import with Prefect absent, so the CLI's plan/status/emulator commands and the emulator itself
never pay for, or depend on, Prefect. A fresh interpreter is the only honest check: in this process pytest
plugins may already have imported prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

CHECK = """
import importlib, importlib.abc, pkgutil, sys

class BlockPrefect(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith("prefect.") or name.startswith("prefect_"):
            raise ImportError(f"georep must not import {name}")
        return None

sys.meta_path.insert(0, BlockPrefect())
import georep
names = sorted(
    m.name for m in pkgutil.walk_packages(georep.__path__, "georep.") if not m.name.endswith("__main__")
)
for name in names:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m == "prefect" or m.startswith(("prefect.", "flows", "tasks")))
assert not leaked, leaked
print(len(names))
"""


def test_georep_imports_without_prefect() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # every module was imported, the emulator's among them
    assert int(done.stdout.strip()) >= 20, done.stdout
