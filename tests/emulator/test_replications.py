"""The replication lifecycle through the real SDK: create / get / list (paged) / update / delete, the HTTP cost
of each call, the home replica, Syncing vs Ready, and list vs get."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION
from tests.conftest import RegistryRef, unique_name
from tests.emulator.conftest import Recorder

REPLICA = "westeurope"
REPLICA_LOCATION = "westeurope"
PAGED_LOCATIONS = ("eastus", "westus2", "uksouth", "japaneast")
PAGE_SIZE = 2
READY_MESSAGE = "The replication is ready."
SYNC_SECONDS = 30.0
SECONDS_PER_GB = 10.0
REGISTRY_GB = 3.0
LIST_LAG_SECONDS = 60.0


def _create(client: ContainerRegistryManagementClient, registry: RegistryRef, name: str, location: str) -> None:
    result = client.replications.begin_create(registry.resource_group, registry.name, name, {"location": location})
    assert result.result().provisioning_state == "Succeeded"


def _create_all(client: ContainerRegistryManagementClient, registry: RegistryRef, locations: tuple[str, ...]) -> None:
    """Create several replicas at once (one poller each), named after their locations."""
    pollers = [
        client.replications.begin_create(registry.resource_group, registry.name, loc, {"location": loc})
        for loc in locations
    ]
    assert all(p.result().provisioning_state == "Succeeded" for p in pollers)


def _calls(control: EmulatorControl, registry: RegistryRef, since_id: int) -> list[tuple[str, str, int]]:
    return [(r["method"], r["route"], r["status"]) for r in control.requests(since_id, registry=registry.name)]


def _last_id(control: EmulatorControl, registry: RegistryRef) -> int:
    """Cursor into the request log: the id of this registry's latest request (each test has its own registry)."""
    log = control.requests(registry=registry.name)
    return int(log[-1]["id"]) if log else 0


# ------------------------------------------------------------------------------------------------ lifecycle
def test_full_cycle_create_get_list_update_delete(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    rg, reg = registry.resource_group, registry.name
    # given a registry with only its home replica
    # when a replica is created, read, listed, updated and deleted
    created = client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA_LOCATION}).result()
    got = client.replications.get(rg, reg, REPLICA)
    listed = {r.name: r for r in client.replications.list(rg, reg)}
    updated = client.replications.begin_update(
        rg, reg, REPLICA, {"tags": {"tier": "dr"}, "properties": {"regionEndpointEnabled": False}}
    ).result()
    reread = client.replications.get(rg, reg, REPLICA)
    deleted = client.replications.begin_delete(rg, reg, REPLICA).result()
    # then each step shows the state of the previous one
    assert created.provisioning_state == "Succeeded"
    assert created.id == (
        f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/"
        f"registries/{reg}/replications/{REPLICA}"
    )
    assert created.type == "Microsoft.ContainerRegistry/registries/replications"
    assert created.region_endpoint_enabled is True
    assert created.zone_redundancy == "Disabled"
    assert got.location == REPLICA_LOCATION
    assert set(listed) == {registry.home, REPLICA}
    assert updated.tags == {"tier": "dr"}
    assert updated.region_endpoint_enabled is False
    assert reread.region_endpoint_enabled is False
    assert deleted is None
    with pytest.raises(ResourceNotFoundError) as gone:
        client.replications.get(rg, reg, REPLICA)
    assert gone.value.error.code == "ResourceNotFound"


def test_the_sdk_follows_next_link_across_pages(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given five replicas (home + four) and pages of two
    _create_all(client, registry, PAGED_LOCATIONS)
    control.settings(page_size=PAGE_SIZE)
    since = _last_id(control, registry)
    # when the SDK lists them
    names = [r.name for r in client.replications.list(registry.resource_group, registry.name)]
    # then it got all five, exactly once, in three GETs of the list route (nextLink followed)
    assert sorted(names) == sorted((registry.home, *PAGED_LOCATIONS))
    assert len(names) == len(set(names))
    assert _calls(control, registry, since) == [("GET", "replications.list", 200)] * 3
    pages = control.requests(since, registry=registry.name)
    assert "$skipToken" not in pages[0]["path"]  # the token travels in the query, the path stays the same
    assert {p["path"] for p in pages} == {pages[0]["path"]}


def test_requests_per_call_with_instant_lros(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given LROs that end at once (still 201/202 + a status URL) and async PATCH
    control.settings(create_seconds=0, delete_seconds=0, update_seconds=0, patch_async=True)
    rg, reg = registry.resource_group, registry.name
    # when each SDK call runs, then it costs a known number of requests
    since = _last_id(control, registry)
    client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA_LOCATION}).result()
    create = _calls(control, registry, since)
    since = _last_id(control, registry)
    client.replications.get(rg, reg, REPLICA)
    get = _calls(control, registry, since)
    since = _last_id(control, registry)
    client.replications.begin_update(rg, reg, REPLICA, {"tags": {"a": "b"}}).result()
    update = _calls(control, registry, since)
    since = _last_id(control, registry)
    client.replications.begin_delete(rg, reg, REPLICA).result()
    delete = _calls(control, registry, since)
    assert create == [
        ("PUT", "replications.item", 201),
        ("GET", "replications.operation_status", 200),
        ("GET", "replications.item", 200),
    ]
    assert get == [("GET", "replications.item", 200)]
    assert update == [
        ("PATCH", "replications.item", 201),
        ("GET", "replications.operation_status", 200),
        ("GET", "replications.item", 200),
    ]
    # the delete poll goes to a subscription-scoped URL that names no registry: count it by route
    assert delete == [("DELETE", "replications.item", 202)]
    polls = control.requests(since, route="locations.operation_results")
    assert [(r["method"], r["status"]) for r in polls] == [("GET", 200)]


def test_create_polls_until_the_operation_ends_then_reads_the_resource(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the session's 0.2 s create LRO and a 0.05 s SDK polling interval
    since = _last_id(control, registry)
    recorder = Recorder()
    # when the SDK creates a replica
    client.replications.begin_create(
        registry.resource_group, registry.name, REPLICA, {"location": REPLICA_LOCATION}, raw_response_hook=recorder
    ).result()
    calls = _calls(control, registry, since)
    # then: one PUT 201, status polls (InProgress ... Succeeded), one final GET of the resource
    assert calls[0] == ("PUT", "replications.item", 201)
    assert calls[-1] == ("GET", "replications.item", 200)
    polls = calls[1:-1]
    assert len(polls) >= 1
    assert set(polls) == {("GET", "replications.operation_status", 200)}
    statuses = [s.json()["status"] for s in recorder.seen if "/operationStatuses/" in s.url]
    assert statuses == ["InProgress"] * (len(polls) - 1) + ["Succeeded"]
    assert recorder.statuses[0] == 201


def test_patch_of_tags_is_synchronous_by_default(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a replica and the default (recorded) synchronous PATCH
    _create(client, registry, REPLICA, REPLICA_LOCATION)
    since = _last_id(control, registry)
    # when its tags are updated
    result = client.replications.begin_update(registry.resource_group, registry.name, REPLICA, {"tags": {"k": "v"}})
    # then a single 200 PATCH answers, no polling
    assert result.result().tags == {"k": "v"}
    assert _calls(control, registry, since) == [("PATCH", "replications.item", 200)]


# ------------------------------------------------------------------------------------------------ home replica
def test_home_replica_is_created_with_the_registry_and_listed(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given a freshly declared registry
    # when its replications are listed
    listed = list(client.replications.list(registry.resource_group, registry.name))
    # then the home replica is there, named after the region, ready
    assert [(r.name, r.location) for r in listed] == [(registry.home, registry.home)]
    home = listed[0]
    assert home.provisioning_state == "Succeeded"
    assert home.status.display_status == "Ready"
    assert home.region_endpoint_enabled is True


def test_home_replica_cannot_be_deleted(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the home replica
    recorder = Recorder()
    # when the SDK deletes it
    with pytest.raises(HttpResponseError) as refused:
        client.replications.begin_delete(
            registry.resource_group, registry.name, registry.home, raw_response_hook=recorder
        )
    # then 400 HomeReplicationCannotBeDeleted, without Retry-After (azure-core would retry it)
    assert refused.value.status_code == 400
    assert refused.value.error.code == "HomeReplicationCannotBeDeleted"
    assert "retry-after" not in {k.lower() for k in refused.value.response.headers}
    assert len(control.requests(method="DELETE", registry=registry.name)) == 1
    assert client.replications.get(registry.resource_group, registry.name, registry.home).name == registry.home


def test_home_replica_endpoint_can_be_disabled(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given the home replica, endpoint enabled
    # when its regional endpoint is disabled by PATCH
    poller = client.replications.begin_update(
        registry.resource_group, registry.name, registry.home, {"properties": {"regionEndpointEnabled": False}}
    )
    # then the change is accepted and kept
    assert poller.result().region_endpoint_enabled is False
    assert (
        client.replications.get(registry.resource_group, registry.name, registry.home).region_endpoint_enabled is False
    )


def test_put_for_the_home_location_under_another_name_is_ignored(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    alias = unique_name("alias")
    recorder = Recorder()
    # given a registry homed in northeurope
    # when a replica named otherwise is PUT for northeurope
    result = client.replications.begin_create(
        registry.resource_group, registry.name, alias, {"location": registry.home}, raw_response_hook=recorder
    ).result()
    # then 200 Succeeded comes back at once (no LRO) ...
    assert recorder.statuses == [200]
    assert result.provisioning_state == "Succeeded"
    assert control.requests(method="PUT", registry=registry.name)[0]["status"] == 200
    # ... and nothing was created
    with pytest.raises(ResourceNotFoundError):
        client.replications.get(registry.resource_group, registry.name, alias)
    assert [r.name for r in client.replications.list(registry.resource_group, registry.name)] == [registry.home]


# ------------------------------------------------------------------------------------------------ Syncing vs Ready
def test_new_replica_is_succeeded_but_syncing_then_ready(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a sync phase far longer than the test
    control.settings(sync_seconds=SYNC_SECONDS)
    rg, reg = registry.resource_group, registry.name
    # when a replica is created
    created = client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA_LOCATION}).result()
    # then provisioning has succeeded but data is still copying (no message)
    assert (created.provisioning_state, created.status.display_status) == ("Succeeded", "Syncing")
    assert created.status.message is None
    # and once the sync time has passed it is Ready
    control.advance_clock(SYNC_SECONDS + 1)
    ready = client.replications.get(rg, reg, REPLICA)
    assert (ready.provisioning_state, ready.status.display_status) == ("Succeeded", "Ready")
    assert ready.status.message == READY_MESSAGE


def test_sync_time_grows_with_registry_size(
    client: ContainerRegistryManagementClient, control: EmulatorControl
) -> None:
    # given sync = SYNC_SECONDS + size * SECONDS_PER_GB, an empty and a 3 GB registry
    control.settings(sync_seconds=SYNC_SECONDS, sync_seconds_per_gb=SECONDS_PER_GB)
    rg = "rg-size"
    small, big = unique_name("small"), unique_name("big")
    control.declare_registry(DEMO_SUBSCRIPTION, rg, small, "northeurope")
    control.declare_registry(DEMO_SUBSCRIPTION, rg, big, "northeurope", size_gb=REGISTRY_GB)
    for reg in (small, big):
        client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA_LOCATION}).result()
    # when more than the empty registry's sync time passes, but less than the big one's
    control.advance_clock(SYNC_SECONDS + 1)
    # then the empty registry's replica is Ready, the big one's still Syncing
    assert client.replications.get(rg, small, REPLICA).status.display_status == "Ready"
    assert client.replications.get(rg, big, REPLICA).status.display_status == "Syncing"
    # and after its size-dependent time, Ready too
    control.advance_clock(REGISTRY_GB * SECONDS_PER_GB)
    assert client.replications.get(rg, big, REPLICA).status.display_status == "Ready"


# ------------------------------------------------------------------------------------------------ list vs get
def test_list_lags_behind_get_for_a_new_replica(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given list lagging behind writes
    control.settings(list_lag_seconds=LIST_LAG_SECONDS)
    rg, reg = registry.resource_group, registry.name
    # when a replica has just been created
    _create(client, registry, REPLICA, REPLICA_LOCATION)
    # then get sees it, list does not yet
    assert client.replications.get(rg, reg, REPLICA).name == REPLICA
    assert [r.name for r in client.replications.list(rg, reg)] == [registry.home]
    # and after the lag it is listed
    control.advance_clock(LIST_LAG_SECONDS + 1)
    assert sorted(r.name for r in client.replications.list(rg, reg)) == sorted([registry.home, REPLICA])


def test_arbitrary_list_order_is_stable_across_pages_and_listings(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given five replicas, arbitrary order (the default) and pages of two
    _create_all(client, registry, PAGED_LOCATIONS)
    control.settings(page_size=PAGE_SIZE, list_order="arbitrary")
    # when the SDK lists twice
    first = [r.name for r in client.replications.list(registry.resource_group, registry.name)]
    second = [r.name for r in client.replications.list(registry.resource_group, registry.name)]
    # then both listings agree, item for item, with no duplicate or gap between pages
    assert first == second
    assert sorted(first) == sorted((registry.home, *PAGED_LOCATIONS))
    # and the order is not simply sorted (these names, seed 0), while "sorted" sorts
    assert first != sorted(first)
    control.settings(list_order="sorted")
    assert [r.name for r in client.replications.list(registry.resource_group, registry.name)] == sorted(first)
