#!/usr/bin/env python3
"""Bootstrap and run georep with nothing but python3 (3.11+).

    python3 run.py demo    install everything, then run the main job (a global rollout against the embedded emulator)
    python3 run.py test    install everything, then run the test suite (extra arguments go to pytest)
    python3 run.py lint    ruff check, ruff format --check, mypy on georep/
    python3 run.py -- ARGS run `georep ARGS` in the project environment

It installs uv into .georep/tools (pip --target: no virtualenv module, no system site-packages touched), then
`uv run --frozen` creates .venv from the committed uv.lock and runs the command in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".georep" / "tools"
UV_VERSION = "0.13.9"


def uv() -> str:
    local = TOOLS / "bin" / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv")
    if found and os.environ.get("GEOREP_USE_SYSTEM_UV") == "1":
        return found
    print(f"installing uv {UV_VERSION} into {TOOLS} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(TOOLS),
            f"uv=={UV_VERSION}",
        ],
        check=True,
    )
    return str(local)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py itself must run on older Pythons to say this
        print(f"georep needs Python 3.11 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    commands = {
        "demo": ["georep", "demo", *rest],
        "test": ["pytest", *rest],
        "lint": None,
        "--": ["georep", *rest],
    }
    if command not in commands:
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    base = [uv(), "run", "--frozen", "--python", sys.executable, "--project", str(ROOT)]
    if command == "lint":
        for step in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy", "georep"]):
            code = subprocess.run([*base, *step], cwd=ROOT, env=env).returncode
            if code:
                return code
        return 0
    return subprocess.run([*base, *commands[command]], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
