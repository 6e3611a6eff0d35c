"""Injected faults, as the real SDK (retries off, the way georep builds it) experiences them: error statuses,
connection resets, latency, failed and endless LROs, the in-flight limit, and the count/skip plan."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef
from tests.emulator.conftest import RawArm, Recorder

REPLICA = "westeurope"
REPLICA_PATH = "replications/"
LATENCY_SECONDS = 0.3
LRO_SECONDS = 0.2  # the session emulator's create_seconds
LONG_LRO_SECONDS = 30.0
CUSTOM_CODE = "RegionCapacityExhausted"
CUSTOM_MESSAGE = "No capacity left in the region."


def _get_home(client: ContainerRegistryManagementClient, registry: RegistryRef) -> object:
    return client.replications.get(registry.resource_group, registry.name, registry.home)


def _faulted(control: EmulatorControl, registry: RegistryRef) -> list[tuple[str, int, str | None]]:
    return [(r["method"], r["status"], r["fault"]) for r in control.requests(registry=registry.name)]


# ------------------------------------------------------------------------------------------------ status faults
@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [(500, "InternalServerError", None), (503, "ServiceUnavailable", "1"), (409, "AnotherOperationInProgress", None)],
    ids=["500", "503", "409"],
)
def test_status_fault_reaches_the_sdk_with_its_default_code(
    client: ContainerRegistryManagementClient,
    registry: RegistryRef,
    control: EmulatorControl,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    # given one injected status fault on replication GETs
    control.add_fault("status", method="GET", path=REPLICA_PATH, status=status)
    # when the SDK (retries off) reads a replica
    with pytest.raises(HttpResponseError) as failed:
        _get_home(client, registry)
    # then it sees that status and code; only 503 carries Retry-After (a 409 with it would be retried)
    assert failed.value.status_code == status
    assert failed.value.error.code == code
    assert failed.value.response.headers.get("Retry-After") == retry_after
    if status == 409:
        assert isinstance(failed.value, ResourceExistsError)
    # and the fault fired once: the next read goes through
    assert _get_home(client, registry) is not None
    assert _faulted(control, registry) == [("GET", status, "status"), ("GET", 200, None)]


def test_status_fault_with_custom_code_and_message(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a 400 fault with its own code and message on PUT
    control.add_fault("status", method="PUT", path=REPLICA_PATH, status=400, code=CUSTOM_CODE, message=CUSTOM_MESSAGE)
    # when the SDK creates a replica; then that error comes back and nothing was created
    with pytest.raises(HttpResponseError) as failed:
        client.replications.begin_create(registry.resource_group, registry.name, REPLICA, {"location": REPLICA})
    assert (failed.value.status_code, failed.value.error.code, failed.value.error.message) == (
        400,
        CUSTOM_CODE,
        CUSTOM_MESSAGE,
    )
    assert [r.name for r in client.replications.list(registry.resource_group, registry.name)] == [registry.home]


def test_fault_count_and_skip(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a fault that lets one GET through, then fails the next two
    control.add_fault("status", method="GET", path=REPLICA_PATH, status=500, skip=1, count=2)
    # when the SDK reads five times
    outcomes = []
    for _ in range(5):
        try:
            _get_home(client, registry)
            outcomes.append(200)
        except HttpResponseError as exc:
            outcomes.append(exc.status_code)
    # then: pass, fail, fail, pass, pass; and the rule reports what it did
    assert outcomes == [200, 500, 500, 200, 200]
    (rule,) = control.faults()
    assert (rule["matched"], rule["fired"]) == (3, 2)


def test_fault_filters_on_method(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a DELETE-only fault
    control.add_fault("status", method="DELETE", path=REPLICA_PATH, status=500, count=None)
    # when the SDK reads; then the GET is untouched and the rule has not matched
    assert _get_home(client, registry) is not None
    assert control.faults()[0]["matched"] == 0


# ------------------------------------------------------------------------------------------------ reset, latency
def test_connection_reset_surfaces_as_a_transport_error(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a reset fault on the next replication GET, and SDK retries off (georep's default)
    control.add_fault("reset", method="GET", path=REPLICA_PATH)
    # when the SDK reads a replica
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        _get_home(client, registry)
    # then the connection was dropped without a response (logged as status 0), and the client recovers
    assert _get_home(client, registry) is not None
    assert _faulted(control, registry) == [("GET", 0, "reset"), ("GET", 200, None)]


def test_latency_fault_delays_the_response(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a latency fault
    control.add_fault("latency", method="GET", path=REPLICA_PATH, latency_seconds=LATENCY_SECONDS)
    # when the SDK reads a replica
    started = time.perf_counter()
    _get_home(client, registry)
    elapsed = time.perf_counter() - started
    # then the call took at least that long and still succeeded
    assert elapsed >= LATENCY_SECONDS
    (entry,) = control.requests(registry=registry.name)
    assert (entry["status"], entry["fault"]) == (200, "latency")
    assert entry["latency_ms"] >= LATENCY_SECONDS * 1000


# ------------------------------------------------------------------------------------------------ LRO faults
def test_lro_fail_raises_from_result_and_leaves_the_replica_failed(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the next create is planned to fail
    control.add_fault("lro_fail", method="PUT", path=REPLICA_PATH)
    rg, reg = registry.resource_group, registry.name
    # when the SDK creates a replica and waits
    poller = client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA})
    with pytest.raises(HttpResponseError) as failed:
        poller.result()
    # then result() raises with the operation's error (status 200: the poll's), the poller says Failed,
    # and the replica stays Failed
    assert failed.value.error.code == "ReplicationProvisioningFailed"
    assert failed.value.status_code == 200
    assert poller.status() == "Failed"
    replica = client.replications.get(rg, reg, REPLICA)
    assert (replica.provisioning_state, replica.status.display_status) == ("Failed", "Failed")
    # and delete + recreate repairs it
    client.replications.begin_delete(rg, reg, REPLICA).result()
    control.advance_clock(1)  # past the settle window
    assert client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}).result().provisioning_state == (
        "Succeeded"
    )


def test_lro_fail_uses_the_fault_code(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a failing create with a chosen code and message
    control.add_fault("lro_fail", method="PUT", path=REPLICA_PATH, code=CUSTOM_CODE, message=CUSTOM_MESSAGE)
    # when it runs; then the error of result() and the replica's status message are those
    with pytest.raises(HttpResponseError) as failed:
        client.replications.begin_create(
            registry.resource_group, registry.name, REPLICA, {"location": REPLICA}
        ).result()
    assert (failed.value.error.code, failed.value.error.message) == (CUSTOM_CODE, CUSTOM_MESSAGE)
    assert client.replications.get(registry.resource_group, registry.name, REPLICA).status.message == CUSTOM_MESSAGE


def test_lro_fail_on_delete_keeps_the_replica_failed(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a replica and a delete planned to fail
    rg, reg = registry.resource_group, registry.name
    client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}).result()
    control.add_fault("lro_fail", method="DELETE", path=REPLICA_PATH)
    # when the SDK deletes it
    with pytest.raises(HttpResponseError) as failed:
        client.replications.begin_delete(rg, reg, REPLICA).result()
    # then the Location poll reports the failure (a 4xx with the error body) and the replica is Failed
    assert failed.value.status_code == 400
    assert failed.value.error.code == "ReplicationProvisioningFailed"
    assert client.replications.get(rg, reg, REPLICA).provisioning_state == "Failed"


def test_lro_never_keeps_the_poller_running(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the next create never ends
    control.add_fault("lro_never", method="PUT", path=REPLICA_PATH)
    recorder = Recorder()
    rg, reg = registry.resource_group, registry.name
    # when the SDK creates a replica and waits several LRO durations
    poller = client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}, raw_response_hook=recorder)
    control.advance_clock(10 * LRO_SECONDS)
    poller.wait(3 * LRO_SECONDS)
    # then the poller is still running, its operation InProgress, the replica Creating
    assert not poller.done()
    status_url = recorder.seen[0].headers["Azure-AsyncOperation"]
    assert raw.get(status_url).json()["status"] == "InProgress"
    assert client.replications.get(rg, reg, REPLICA).provisioning_state == "Creating"
    # (end the poller thread: its status URL now fails for good, so it stops polling the shared emulator)
    control.add_fault("status", method="GET", path=status_url.split("/")[-1].split("?")[0], status=400, count=None)
    with pytest.raises(HttpResponseError):
        poller.result(timeout=5)
    assert poller.done()


def test_in_flight_limit_refuses_the_third_create(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given at most two running operations per registry, and creates that outlast the test's steps
    control.settings(max_inflight_per_registry=2, create_seconds=LONG_LRO_SECONDS)
    rg, reg = registry.resource_group, registry.name
    # when three creates start at once
    running = [client.replications.begin_create(rg, reg, loc, {"location": loc}) for loc in ("eastus", "westus2")]
    with pytest.raises(ResourceExistsError) as refused:
        client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA})
    # then the third is 409 TooManyInFlightOperations, without Retry-After
    assert refused.value.error.code == "TooManyInFlightOperations"
    assert "Retry-After" not in refused.value.response.headers
    # and once the first two are done, it goes through
    control.advance_clock(LONG_LRO_SECONDS)
    assert all(p.result().provisioning_state == "Succeeded" for p in running)
    control.settings(create_seconds=LRO_SECONDS)
    assert client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}).result().provisioning_state == (
        "Succeeded"
    )


def test_unknown_fault_action_is_refused_by_the_control_api(control: EmulatorControl) -> None:
    # given the control API; when an unknown action is planned; then it is refused and nothing is added
    with pytest.raises(RuntimeError, match="400"):
        control.add_fault("explode")
    assert control.faults() == []


def test_invalid_fault_path_regex_is_a_400_of_the_control_api(control: EmulatorControl) -> None:
    # given a path that is not a regular expression; when planned; then 400 (not a server error), nothing added
    with pytest.raises(RuntimeError, match="400"):
        control.add_fault("status", path="(")
    assert control.faults() == []
