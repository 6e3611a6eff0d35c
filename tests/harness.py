"""The one Prefect test harness of the test session (tests/flows, tests/reliability) and of
``bench/reliability.py``: fast georep cadences, analytics off, and the heartbeat patch that saves ~1 s per flow
run, as a context manager so the bench script can use it outside pytest. A suite whose harness is already running
(another conftest started it) reuses it: two nested harnesses would cost another server start and split the
Prefect API between two databases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "GEOREP_POLLING_INTERVAL": "0.5",
    "GEOREP_WATCH_INTERVAL": "0.05",
    "GEOREP_SETTLE_PROBE_INTERVAL": "0.05",
}


def harness_running() -> bool:
    """True when a Prefect API (a harness started by another conftest) is already configured."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@contextmanager
def prefect_harness(home: Path, state: Path, *, patch_heartbeat: bool = True) -> Iterator[None]:
    """A temporary Prefect server + database, with georep's checkpoints in ``state``."""
    env = {**ENV, "PREFECT_HOME": str(home), "GEOREP_STATE_DIR": str(state)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from prefect import flow_engine
    from prefect.testing.utilities import prefect_test_harness

    if patch_heartbeat:
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
