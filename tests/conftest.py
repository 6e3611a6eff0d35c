"""Run-wide test bed: one emulator over HTTPS (its own CA, port 0, fast LROs), reached by the real SDK through
DefaultAzureCredential and the emulator's managed-identity endpoint. Each test gets its own registry, so tests
never see each other's replicas and need no reset."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION, EmulatorServer
from georep.emulator.settings import EmulatorSettings

FAST = EmulatorSettings.fast()


@dataclass(frozen=True)
class RegistryRef:
    subscription: str
    resource_group: str
    name: str
    home: str


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    state = tmp_path_factory.mktemp("emulator")
    server = EmulatorServer(state, port=0, identity_port=0, settings=FAST).start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def control(emulator: EmulatorServer) -> Iterator[EmulatorControl]:
    ctl = EmulatorControl(emulator.base_url, emulator.secrets.admin_key, str(emulator.tls.ca))
    yield ctl
    ctl.close()


@pytest.fixture(autouse=True)
def _clean_faults_and_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults and settings are emulator-wide: put them back after every test that touched the emulator."""
    yield
    if "control" in request.fixturenames:
        ctl: EmulatorControl = request.getfixturevalue("control")
        ctl.clear_faults()
        ctl.settings(**FAST.model_dump())


@pytest.fixture(scope="session")
def settings(emulator: EmulatorServer) -> Settings:
    return Settings(polling_interval=0.05)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[ContainerRegistryManagementClient]:
    with build_client(settings) as c:
        yield c


def unique_name(prefix: str = "reg") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registry(control: EmulatorControl) -> RegistryRef:
    """A fresh Premium registry homed in northeurope (its home replica is created by the emulator)."""
    ref = RegistryRef(DEMO_SUBSCRIPTION, "rg-" + uuid.uuid4().hex[:6], unique_name(), "northeurope")
    control.declare_registry(ref.subscription, ref.resource_group, ref.name, ref.home)
    return ref


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
