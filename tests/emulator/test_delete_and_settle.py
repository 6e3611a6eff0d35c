"""The wire shape of the LROs (raw HTTP: exact status, body bytes, headers), Retry-After, and the recreate race
after a delete (azure-rest-api-specs#18934), through the SDK."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from georep.emulator.server import EmulatorServer
from georep.emulator.settings import API_VERSION
from tests.conftest import RegistryRef
from tests.emulator.conftest import RawArm, Recorder, replication_path, wait_until

REPLICA = "westeurope"
SETTLE_SECONDS = 30.0
LONG_LRO_SECONDS = 30.0
RETRY_AFTER = 1
#: a settle window waited in real time: long enough for the first retry to land inside it
REAL_SETTLE_SECONDS = 0.6
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _create(client: ContainerRegistryManagementClient, registry: RegistryRef, name: str = REPLICA) -> None:
    client.replications.begin_create(registry.resource_group, registry.name, name, {"location": name}).result()


def _no_retry_after(headers: object) -> bool:
    return "retry-after" not in {str(k).lower() for k in headers}  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ DELETE shape
def test_delete_answers_202_null_and_a_subscription_scoped_location(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, emulator: EmulatorServer
) -> None:
    # given a replica
    _create(client, registry)
    # when it is deleted over raw HTTP
    response = raw.delete(replication_path(registry, REPLICA))
    # then 202, the body is literally null, no Retry-After, and Location is absolute, subscription-scoped,
    # keyed by the replica's location (the recorded real shape, not the spec's)
    assert response.status_code == 202
    assert response.content == b"null"
    assert _no_retry_after(response.headers)
    location = response.headers["Location"]
    pattern = (
        rf"^{re.escape(emulator.base_url)}/subscriptions/{registry.subscription}/providers/"
        rf"Microsoft\.ContainerRegistry/locations/{REPLICA}/operationResults/replications-{UUID}"
        rf"\?api-version={API_VERSION}$"
    )
    assert re.match(pattern, location), location


def test_delete_location_polls_202_empty_then_200_empty(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a delete just accepted, long enough to be observed running
    _create(client, registry)
    control.settings(delete_seconds=LONG_LRO_SECONDS)
    location = raw.delete(replication_path(registry, REPLICA)).headers["Location"]
    # when its Location URL is polled while it runs, then after it ends
    running = raw.get(location)
    control.advance_clock(LONG_LRO_SECONDS)
    done = raw.get(location)
    # then 202 with no body while the operation runs, then 200 with an empty body
    assert (running.status_code, running.content) == (202, b"")
    assert _no_retry_after(running.headers)
    assert (done.status_code, done.content) == (200, b"")


def test_delete_of_an_absent_replica_is_204(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given no replica of that name
    # when deleted over raw HTTP and through the SDK
    response = raw.delete(replication_path(registry, REPLICA))
    result = client.replications.begin_delete(registry.resource_group, registry.name, REPLICA).result()
    # then 204 No Content both times, and the SDK does not poll
    assert (response.status_code, response.content) == (204, b"")
    assert result is None
    assert [(r["method"], r["status"]) for r in control.requests(registry=registry.name)] == [
        ("DELETE", 204),
        ("DELETE", 204),
    ]


def test_sdk_delete_polls_the_location_until_done(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given a replica
    _create(client, registry)
    recorder = Recorder()
    # when the SDK deletes it
    result = client.replications.begin_delete(
        registry.resource_group, registry.name, REPLICA, raw_response_hook=recorder
    ).result()
    # then DELETE 202, 202 polls, final 200 on the Location URL, no final GET, result None
    assert result is None
    assert recorder.statuses[0] == 202
    assert recorder.statuses[-1] == 200
    assert set(recorder.statuses[1:-1]) <= {202}
    assert all("/operationResults/" in s.url for s in recorder.seen[1:])
    with pytest.raises(ResourceNotFoundError):
        client.replications.get(registry.resource_group, registry.name, REPLICA)


# ------------------------------------------------------------------------------------------------ PUT shape
def test_put_answers_201_creating_with_an_absolute_async_operation_url(
    raw: RawArm, registry: RegistryRef, emulator: EmulatorServer
) -> None:
    # given a new replica name
    # when it is PUT over raw HTTP
    response = raw.put(replication_path(registry, REPLICA), {"location": REPLICA})
    # then 201, body Creating / Provisioning, and an absolute Azure-AsyncOperation URL under the resource
    assert response.status_code == 201
    body = response.json()
    assert body["properties"]["provisioningState"] == "Creating"
    assert body["properties"]["status"]["displayStatus"] == "Provisioning"
    assert body["properties"]["status"]["message"] == "The replication is provisioning."
    assert _no_retry_after(response.headers)
    status_url = response.headers["Azure-AsyncOperation"]
    pattern = (
        rf"^{re.escape(emulator.base_url + replication_path(registry, REPLICA))}/operationStatuses/"
        rf"replications-{UUID}\?api-version={API_VERSION}$"
    )
    assert re.match(pattern, status_url), status_url
    assert "Location" not in response.headers
    wait_until(lambda: raw.get(status_url).json()["status"] == "Succeeded")


def test_async_operation_url_reports_in_progress_then_succeeded(
    raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a create just accepted, long enough to be observed running
    control.settings(create_seconds=LONG_LRO_SECONDS)
    status_url = raw.put(replication_path(registry, REPLICA), {"location": REPLICA}).headers["Azure-AsyncOperation"]
    # when its status URL is read while it runs, then 200 InProgress
    running = raw.get(status_url)
    assert running.status_code == 200
    assert running.json()["status"] == "InProgress"
    assert "endTime" not in running.json()
    assert _no_retry_after(running.headers)
    # and once the operation ends, 200 Succeeded with an end time and no error
    control.advance_clock(LONG_LRO_SECONDS)
    done = raw.get(status_url)
    assert done.status_code == 200
    assert done.json()["status"] == "Succeeded"
    assert set(done.json()) == {"id", "name", "status", "startTime", "endTime"}
    assert raw.get(replication_path(registry, REPLICA)).json()["properties"]["provisioningState"] == "Succeeded"


def test_status_urls_keep_the_api_version_the_client_used(raw: RawArm, registry: RegistryRef) -> None:
    # given a PUT made with an older supported api-version
    older = "2023-07-01"
    response = raw.put(replication_path(registry, REPLICA), {"location": REPLICA}, api_version=older)
    # then its status URL carries the same api-version
    status_url = response.headers["Azure-AsyncOperation"]
    assert parse_qs(urlsplit(status_url).query)["api-version"] == [older]
    wait_until(lambda: raw.get(status_url).json()["status"] == "Succeeded")


# ------------------------------------------------------------------------------------------------ Retry-After
def test_retry_after_is_sent_on_lro_responses_only_when_enabled(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given Retry-After turned on and LROs long enough to observe their running phase
    control.settings(retry_after=RETRY_AFTER, create_seconds=LONG_LRO_SECONDS, delete_seconds=LONG_LRO_SECONDS)
    # when a create and a delete are started and their status URLs polled while running
    put = raw.put(replication_path(registry, REPLICA), {"location": REPLICA})
    put_poll = raw.get(put.headers["Azure-AsyncOperation"])
    control.advance_clock(LONG_LRO_SECONDS)
    put_done = raw.get(put.headers["Azure-AsyncOperation"])
    delete = raw.delete(replication_path(registry, REPLICA))
    delete_poll = raw.get(delete.headers["Location"])
    control.advance_clock(LONG_LRO_SECONDS)
    delete_done = raw.get(delete.headers["Location"])
    # then 201, 202 and every in-progress poll carry it; terminal polls do not
    for response in (put, put_poll, delete, delete_poll):
        assert response.headers["Retry-After"] == str(RETRY_AFTER)
    assert (put_poll.status_code, put_poll.json()["status"]) == (200, "InProgress")
    assert delete_poll.status_code == 202
    assert (put_done.json()["status"], delete_done.status_code) == ("Succeeded", 200)
    assert _no_retry_after(put_done.headers)
    assert _no_retry_after(delete_done.headers)


def test_no_retry_after_on_lro_responses_by_default(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the default settings (the real service sends none)
    recorder = Recorder()
    rg, reg = registry.resource_group, registry.name
    # when the SDK runs a create and a delete
    client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}, raw_response_hook=recorder).result()
    client.replications.begin_delete(rg, reg, REPLICA, raw_response_hook=recorder).result()
    # then no response of either carried Retry-After
    assert 201 in recorder.statuses and 202 in recorder.statuses
    assert all(_no_retry_after(s.headers) for s in recorder.seen)


# ------------------------------------------------------------------------------------------------ settle window
def test_recreate_right_after_delete_conflicts_until_settled(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a long settle window and a replica whose delete has just completed
    control.settings(settle_seconds=SETTLE_SECONDS)
    rg, reg = registry.resource_group, registry.name
    _create(client, registry)
    client.replications.begin_delete(rg, reg, REPLICA).result()
    # when it is read and re-created at once
    with pytest.raises(ResourceNotFoundError):
        client.replications.get(rg, reg, REPLICA)
    with pytest.raises(ResourceExistsError) as conflict:
        client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA})
    # then GET says 404 but PUT says 409 Conflict, without Retry-After
    assert conflict.value.status_code == 409
    assert conflict.value.error.code == "Conflict"
    assert _no_retry_after(conflict.value.response.headers)
    # and after the settle window the same PUT succeeds
    control.advance_clock(SETTLE_SECONDS + 1)
    recreated = client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}).result()
    assert recreated.provisioning_state == "Succeeded"


def test_settle_window_passes_in_real_time(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a short settle window and a replica just deleted
    control.settings(settle_seconds=REAL_SETTLE_SECONDS)
    rg, reg = registry.resource_group, registry.name
    _create(client, registry)
    client.replications.begin_delete(rg, reg, REPLICA).result()
    # when the PUT is retried until accepted
    attempts = []

    def recreate() -> bool:
        try:
            client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}).result()
            return True
        except ResourceExistsError as exc:
            attempts.append(exc.error.code)
            return False

    wait_until(recreate, timeout=3, interval=0.05)
    # then it was refused with Conflict first, then accepted
    assert attempts and set(attempts) == {"Conflict"}


def test_write_during_a_running_operation_conflicts(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a create that is still running
    control.settings(create_seconds=LONG_LRO_SECONDS)
    raw.put(replication_path(registry, REPLICA), {"location": REPLICA})
    rg, reg = registry.resource_group, registry.name
    # when the SDK PUTs, PATCHes or DELETEs it meanwhile
    refusals = []
    for call in (
        lambda: client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}),
        lambda: client.replications.begin_update(rg, reg, REPLICA, {"tags": {"a": "b"}}),
        lambda: client.replications.begin_delete(rg, reg, REPLICA),
    ):
        with pytest.raises(ResourceExistsError) as refused:
            call()
        refusals.append((refused.value.status_code, refused.value.error.code))
    # then each is 409 AnotherOperationInProgress
    assert refusals == [(409, "AnotherOperationInProgress")] * 3
    control.advance_clock(LONG_LRO_SECONDS)
    assert client.replications.get(rg, reg, REPLICA).provisioning_state == "Succeeded"
