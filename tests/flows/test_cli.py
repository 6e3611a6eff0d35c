"""`georep apply` as a whole process, with no Prefect server configured: the command starts Prefect's temporary
server itself (before Prefect is imported), runs the rollout against it, stops it, and leaves the run's artifacts
in $PREFECT_HOME's database, where a later `prefect server start` shows them (README)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from georep.emulator.server import EmulatorServer
from tests.conftest import RegistryRef

pytestmark = pytest.mark.slow


def _plan(registry: RegistryRef, path: Path) -> Path:
    path.write_text(
        f"registry: {{subscription_id: {registry.subscription}, resource_group: {registry.resource_group}, "
        f"name: {registry.name}}}\ndefaults: {{tags: {{env: prod}}}}\nregions: [westus2, eastus]\n"
    )
    return path


def _apply(
    emulator: EmulatorServer,
    registry: RegistryRef,
    tmp_path: Path,
    prefect: dict[str, str],
    *args: str,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """`georep apply` of a two-region plan as its own process, with no Prefect setting but ``prefect``'s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            **emulator.env(),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GEOREP_STATE_DIR": str(tmp_path / "state"),
            "GEOREP_WATCH_INTERVAL": "0.05",
            **prefect,
        }
    )
    georep = str(Path(sys.executable).parent / "georep")
    return subprocess.run(
        [georep, "apply", str(_plan(registry, tmp_path / "plan.yaml")), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_apply_on_its_own_temporary_server_keeps_artifacts(
    emulator: EmulatorServer, registry: RegistryRef, tmp_path: Path
) -> None:
    home = tmp_path / "never-used" / "prefect-home"  # Prefect never ran here: not even its parent exists
    done = _apply(emulator, registry, tmp_path, {"PREFECT_HOME": str(home)}, "--json", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"result": "succeeded"' in done.stdout
    # the server was georep's own: Prefect never started one of its own in this process
    assert "Starting temporary server" not in done.stderr

    with sqlite3.connect(home / "prefect.db") as db:
        keys = {row[0] for row in db.execute("select key from artifact where key is not null")}
        states = {row[0] for row in db.execute("select state_type from flow_run")}
    name = registry.name.lower()
    for kind in ("plan", "plan-summary", "progress", "result", "summary"):
        assert f"georep-{kind}-{name}" in keys
    assert states == {"COMPLETED"}


def test_a_temporary_server_that_cannot_start_is_reported_at_once(
    emulator: EmulatorServer, registry: RegistryRef, tmp_path: Path
) -> None:
    """uvicorn exits with code 3 on any startup failure (a port taken meanwhile, or here a database it cannot
    open): a few respawns, then the failure, never the whole startup timeout of a server that is gone."""
    unopenable = {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/prefect.db",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    }
    done = _apply(emulator, registry, tmp_path, unopenable, timeout=300)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "temporary server exited with code 3 while starting" in done.stderr
    assert "unable to open database file" in done.stderr  # the server's own reason is shown above it
