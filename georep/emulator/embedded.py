"""The emulator embedded in georep's own commands (the main job, ``--embedded``): a stable port and state
directory, so a rerun after a crash finds its operations (continuation tokens hold absolute URLs), and a demo
registry declared on first start."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from georep.emulator.server import DEMO_SUBSCRIPTION, EmulatorServer
from georep.emulator.settings import EmulatorSettings

log = logging.getLogger("georep.emulator")

DEFAULT_PORT = 47443
DEFAULT_IDENTITY_PORT = 47444

#: the main job's registry: Premium, homed outside the plan's four regions (deployments/plans/global.yaml)
DEMO_REGISTRIES: list[dict[str, Any]] = [
    {
        "subscription": DEMO_SUBSCRIPTION,
        "resource_group": "georep-demo",
        "name": "georepdemo",
        "location": "northeurope",
        "sku": "Premium",
        "size_gb": 2.0,
    },
    {
        "subscription": DEMO_SUBSCRIPTION,
        "resource_group": "georep-demo",
        "name": "georepstandard",
        "location": "northeurope",
        "sku": "Standard",
    },
]

#: shorter than the real service's ~11 s so a demo is quick, long enough that LROs are visibly asynchronous
DEMO_SETTINGS = EmulatorSettings(
    create_seconds=4.0,
    delete_seconds=4.0,
    update_seconds=1.0,
    sync_seconds=6.0,
    sync_seconds_per_gb=1.0,
    settle_seconds=3.0,
)


def start_embedded(
    state_dir: Path, settings: EmulatorSettings | None = None, export_env: bool = True
) -> EmulatorServer:
    """Start the emulator in this process and (by default) point this process's georep settings at it."""
    state_dir = Path(state_dir)
    chosen = settings or DEMO_SETTINGS
    fresh = not (state_dir / "endpoint.json").exists()
    port, identity_port = (DEFAULT_PORT, DEFAULT_IDENTITY_PORT) if fresh else (None, None)
    try:
        server = EmulatorServer(
            state_dir, port=port, identity_port=identity_port, settings=chosen, registries=DEMO_REGISTRIES
        ).start()
    except OSError as exc:
        log.warning("emulator ports are busy (%s); using free ports instead", exc)
        server = EmulatorServer(state_dir, port=0, identity_port=0, settings=chosen, registries=DEMO_REGISTRIES).start()
    if export_env:
        os.environ.update(server.env())
    return server
