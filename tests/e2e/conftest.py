"""One end-to-end run per session, shared by the server and UI tests: scripts/e2e starts a private PostgreSQL
cluster, a real `prefect server start` on it, the georep emulator and a process worker, deploys prefect.yaml, runs
the global-rollout deployment and (when Chromium is present) the UI check, then stops everything by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "e2e"
#: the whole run (PostgreSQL, server, deploy, worker, flow run, UI) takes 1-2 minutes on 2 busy cores
TIMEOUT = 240
SKIP = 77


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class E2eRun:
    out: Path
    returncode: int
    seconds: float
    log: str
    ui: bool

    @property
    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "result.json").read_text())
        return data


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2eRun]:
    out = tmp_path_factory.mktemp("e2e")
    ui = chromium() is not None
    cmd = [str(SCRIPT), "--out", str(out), *(["--ui"] if ui else [])]
    env = {**os.environ, "GEOREP_BIN": str(Path(sys.executable).parent)}
    started = time.monotonic()
    # its own session: on timeout the whole group gets SIGTERM and the script's trap stops what it started
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        log, _ = proc.communicate(timeout=45)
        pytest.fail(f"scripts/e2e did not finish within {TIMEOUT} s:\n{log[-6000:]}")
    run = E2eRun(out, proc.returncode, time.monotonic() - started, log, ui)
    (out / "e2e.log").write_text(log)
    sys.stderr.write(f"\nscripts/e2e: exit {run.returncode} in {run.seconds:.0f} s; output in {out}\n")
    if run.returncode == SKIP:
        pytest.skip(f"PostgreSQL server binaries not found (scripts/e2e exit 77): {log.strip().splitlines()[-1]}")
    yield run
