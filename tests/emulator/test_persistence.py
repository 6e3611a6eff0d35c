"""Crash-resume: an emulator of its own, stopped mid-LRO and started again on the same state directory (same
ports, from endpoint.json). A continuation token taken before the stop resumes against the new process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION, EmulatorBusy, EmulatorServer
from georep.emulator.settings import EmulatorSettings

RG = "rg-persist"
REGISTRY = "regpersist"
HOME = "northeurope"
REPLICA = "westeurope"
#: long enough that the create is certainly still running across the restart; the clock then skips ahead
LRO_SECONDS = 30.0
#: the first client must not poll again before the test is over: its poller thread outlives the first server
IDLE_POLLING = 60.0
FAST_POLLING = 0.05
SETTINGS = EmulatorSettings.fast(create_seconds=LRO_SECONDS, delete_seconds=LRO_SECONDS)


def _client(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, polling: float
) -> ContainerRegistryManagementClient:
    """A fresh SDK client for this server: its own Settings and managed-identity environment."""
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    settings = Settings(
        endpoint=server.base_url,
        ca_bundle=server.tls.ca,
        subscription_id=DEMO_SUBSCRIPTION,
        polling_interval=polling,
    )
    return build_client(settings)


def _control(server: EmulatorServer) -> EmulatorControl:
    return EmulatorControl(server.base_url, server.secrets.admin_key, str(server.tls.ca))


@pytest.fixture
def first(tmp_path: Path) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path / "state", port=0, identity_port=0, settings=SETTINGS).start()
    try:
        yield server
    finally:
        server.stop()


def _restart(server: EmulatorServer) -> EmulatorServer:
    server.stop()
    return EmulatorServer(server.state_dir, settings=SETTINGS).start()


def test_continuation_token_resumes_a_create_after_a_restart(
    first: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a registry and a create whose token was taken right after begin_create
    ctl = _control(first)
    ctl.declare_registry(DEMO_SUBSCRIPTION, RG, REGISTRY, HOME)
    before = _client(first, monkeypatch, IDLE_POLLING)
    poller = before.replications.begin_create(RG, REGISTRY, REPLICA, {"location": REPLICA})
    token = poller.continuation_token()
    before.close()
    ctl.close()
    # when the emulator stops mid-operation and a new one starts on the same state directory
    second = _restart(first)
    try:
        assert (second.port, second.identity_endpoint) == (first.port, first.identity_endpoint)
        ctl = _control(second)
        in_flight = [o["status"] for o in ctl.state()["operations"]]
        ctl.advance_clock(LRO_SECONDS)
        with _client(second, monkeypatch, FAST_POLLING) as after:
            resumed = after.replications.begin_create(None, None, None, None, continuation_token=token).result()
        puts = ctl.requests(method="PUT")
        ctl.close()
    finally:
        second.stop()
    # then the operation outlived the first process, and the resumed poller ends Succeeded on the new one,
    # with the single original PUT
    assert in_flight == ["InProgress"]
    assert resumed.provisioning_state == "Succeeded"
    assert resumed.name == REPLICA
    assert [(p["status"], p["replication"]) for p in puts] == [(201, REPLICA)]


def test_resources_and_registries_survive_a_restart(first: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a registry with a finished replica, a tagged home replica and an advanced clock
    ctl = _control(first)
    ctl.declare_registry(DEMO_SUBSCRIPTION, RG, REGISTRY, HOME, size_gb=2.0)
    ctl.settings(create_seconds=0)
    with _client(first, monkeypatch, FAST_POLLING) as c:
        c.replications.begin_create(RG, REGISTRY, REPLICA, {"location": REPLICA, "tags": {"k": "v"}}).result()
        c.replications.begin_update(RG, REGISTRY, HOME, {"properties": {"regionEndpointEnabled": False}}).result()
    offset = ctl.advance_clock(120)
    ctl.close()
    # when the emulator restarts on the same state directory
    second = _restart(first)
    try:
        ctl = _control(second)
        state = ctl.state()
        ctl.close()
        with _client(second, monkeypatch, FAST_POLLING) as c:
            replicas = {r.name: r for r in c.replications.list(RG, REGISTRY)}
            registry = c.registries.get(RG, REGISTRY)
    finally:
        second.stop()
    # then registry, replicas, their properties and the clock are all back
    assert registry.location == HOME and registry.sku.name == "Premium"
    assert set(replicas) == {HOME, REPLICA}
    assert replicas[REPLICA].tags == {"k": "v"}
    assert replicas[REPLICA].status.display_status == "Ready"
    assert replicas[HOME].region_endpoint_enabled is False
    assert state["clock_offset"] == offset


def test_a_second_emulator_on_the_same_state_directory_is_refused(first: EmulatorServer) -> None:
    # given a running emulator; when another one starts on its state directory; then it is refused
    with pytest.raises(EmulatorBusy):
        EmulatorServer(first.state_dir, port=0, identity_port=0, settings=SETTINGS).start()
