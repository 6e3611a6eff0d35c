"""Flows run for real under one Prefect test harness for the whole session, against the session emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from georep.emulator.server import EmulatorServer


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    state = tmp_path_factory.mktemp("georep-state")
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "GEOREP_STATE_DIR": str(state),
        "GEOREP_POLLING_INTERVAL": "0.5",
        "GEOREP_WATCH_INTERVAL": "0.05",
        "GEOREP_SETTLE_PROBE_INTERVAL": "0.05",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from prefect import flow_engine
    from prefect.testing.utilities import prefect_test_harness

    # Test-only: the flow heartbeat thread sleeps in 1 s steps and its join costs ~1 s per flow run; no setting
    # can turn it off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY must be >= 30). Production runs keep the heartbeat.
    flow_engine.BaseFlowRunEngine.heartbeat_seconds = property(lambda self: None)  # type: ignore[assignment,method-assign]
    try:
        with prefect_test_harness(server_startup_timeout=90):
            yield
    finally:
        from tasks.engine import reset_engines

        reset_engines()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def project_dir() -> Path:
    return Path(__file__).resolve().parents[2]
