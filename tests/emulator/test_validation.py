"""Every request the service refuses, through the real SDK where it can say it, raw HTTP where it cannot
(malformed JSON, PATCH of create-only fields, no api-version). Each error carries the ARM error body, the code
georep's classifier reads, and no Retry-After (azure-core would retry any error that has one)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Replication

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION
from tests.conftest import RegistryRef, unique_name
from tests.emulator.conftest import RawArm, replication_path

REPLICA = "westeurope"
NAMES_TOO_SHORT = "abcd"
NAME_TOO_LONG = "a" * 51
NAME_LONGEST = "a" * 50
NAME_WITH_DASH = "west-europe"
NAME_WITH_UNDERSCORE = "west_europe"
UNKNOWN_LOCATION = "atlantis"
RESTRICTED_LOCATION = "germanynorth"
NO_ZONE_LOCATION = "westus"
DISPLAY_NAME = "West US 2"
PROGRAMMATIC_NAME = "westus2"
BAD_API_VERSION = "1999-01-01"
UNKNOWN_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def _refused(exc: HttpResponseError, status: int, code: str, target: str | None = None) -> None:
    assert exc.status_code == status
    assert exc.error is not None
    assert exc.error.code == code
    assert exc.error.message
    if target is not None:
        assert exc.error.target == target
    assert "retry-after" not in {k.lower() for k in exc.response.headers}


def _create(client: ContainerRegistryManagementClient, registry: RegistryRef, name: str, body: dict[str, Any]) -> Any:
    return client.replications.begin_create(registry.resource_group, registry.name, name, body).result()


def _nothing_created(control: EmulatorControl, registry: RegistryRef) -> None:
    names = [r["name"] for r in control.state()["replications"] if f"/registries/{registry.name}/" in r["id"]]
    assert names == [registry.home]


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    "name",
    [NAMES_TOO_SHORT, NAME_TOO_LONG, NAME_WITH_DASH, NAME_WITH_UNDERSCORE],
    ids=["too-short", "too-long", "dash", "underscore"],
)
def test_invalid_replication_name_is_refused(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl, name: str
) -> None:
    # given a replication name outside 5-50 letters and digits
    # when the SDK creates it
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, name, {"location": REPLICA})
    # then 400 InvalidResourceName naming the path parameter
    _refused(refused.value, 400, "InvalidResourceName", "replicationName")
    _nothing_created(control, registry)


def test_fifty_character_name_is_accepted(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given the longest valid name; when created; then it exists
    assert _create(client, registry, NAME_LONGEST, {"location": REPLICA}).name == NAME_LONGEST


@pytest.mark.parametrize(
    "registry_name",
    [NAMES_TOO_SHORT, NAME_TOO_LONG, "my-registry", "my_registry"],
    ids=["too-short", "too-long", "dash", "underscore"],
)
def test_invalid_registry_name_is_refused(
    client: ContainerRegistryManagementClient, registry: RegistryRef, registry_name: str
) -> None:
    # given a registry name outside the rule (in an existing resource group)
    # when the SDK creates a replication under it
    with pytest.raises(HttpResponseError) as refused:
        client.replications.begin_create(registry.resource_group, registry_name, REPLICA, {"location": REPLICA})
    # then 400 InvalidResourceName naming registryName
    _refused(refused.value, 400, "InvalidResourceName", "registryName")


def test_invalid_registry_name_is_refused_by_the_control_api(control: EmulatorControl) -> None:
    # given the control API; when a registry with a dash is declared; then it is refused
    with pytest.raises(RuntimeError, match="InvalidResourceName"):
        control.declare_registry(DEMO_SUBSCRIPTION, "rg-bad", "my-registry", "northeurope")


# ------------------------------------------------------------------------------------------------ locations
def test_unknown_location_is_not_available(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a location that is no Azure region; when created
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, "atlantis1", {"location": UNKNOWN_LOCATION})
    # then 400 LocationNotAvailableForResourceType, the message lists the allowed regions
    _refused(refused.value, 400, "LocationNotAvailableForResourceType", "location")
    assert UNKNOWN_LOCATION in refused.value.error.message
    assert "West Europe" in refused.value.error.message
    _nothing_created(control, registry)


def test_access_restricted_location_needs_a_grant(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given germanynorth, access-restricted and not granted
    # when created, then refused like an unknown region and absent from the allowed list
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, RESTRICTED_LOCATION, {"location": RESTRICTED_LOCATION})
    _refused(refused.value, 400, "LocationNotAvailableForResourceType", "location")
    assert "Germany North" not in refused.value.error.message.split("is '", 1)[1]
    # and once the subscription is granted the region, the same request succeeds
    control.settings(granted_restricted_regions=[RESTRICTED_LOCATION])
    assert _create(client, registry, RESTRICTED_LOCATION, {"location": RESTRICTED_LOCATION}).location == (
        RESTRICTED_LOCATION
    )


def test_display_name_location_is_normalised(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given a display name with spaces and capitals; when created
    created = _create(client, registry, PROGRAMMATIC_NAME, {"location": DISPLAY_NAME})
    # then the replica reports the programmatic name
    assert created.location == PROGRAMMATIC_NAME
    assert client.replications.get(registry.resource_group, registry.name, PROGRAMMATIC_NAME).location == (
        PROGRAMMATIC_NAME
    )


def test_missing_location_is_required(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given a body without location; when created; then 400 LocationRequired
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, REPLICA, {"tags": {"a": "b"}})
    _refused(refused.value, 400, "LocationRequired", "location")


def test_zone_redundancy_in_a_region_without_zones_is_refused(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given westus (no availability zones); when a zone-redundant replica is created there
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, NO_ZONE_LOCATION, Replication(location=NO_ZONE_LOCATION, zone_redundancy="Enabled"))
    # then 400 ZoneRedundancyNotSupported on the property
    _refused(refused.value, 400, "ZoneRedundancyNotSupported", "properties.zoneRedundancy")
    _nothing_created(control, registry)


def test_zone_redundancy_in_a_zonal_region_is_accepted(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given westus2 (zonal); when a zone-redundant replica is created; then it keeps the setting
    created = _create(
        client, registry, PROGRAMMATIC_NAME, Replication(location=PROGRAMMATIC_NAME, zone_redundancy="Enabled")
    )
    assert created.zone_redundancy == "Enabled"


# ------------------------------------------------------------------------------------------------ bodies
def test_malformed_json_is_invalid_request_content(raw: RawArm, registry: RegistryRef) -> None:
    # given a PUT body that is not JSON (the SDK cannot send one: raw HTTP)
    response = raw.request(
        "PUT",
        replication_path(registry, REPLICA),
        data=b'{"location": "westeurope",',
        headers={"Content-Type": "application/json"},
    )
    # then 400 InvalidRequestContent in an ARM error body
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"
    assert "Retry-After" not in response.headers


def test_json_that_is_not_an_object_is_invalid_request_content(raw: RawArm, registry: RegistryRef) -> None:
    # given a JSON array as body; when PUT; then 400 InvalidRequestContent
    response = raw.put(replication_path(registry, REPLICA), ["westeurope"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"


def test_wrong_type_names_the_field(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given regionEndpointEnabled as a string (plain dict bodies reach the wire as written)
    body = {"location": REPLICA, "properties": {"regionEndpointEnabled": "yes"}}
    # when created; then 400 InvalidRequestContent with error.target naming the field
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, REPLICA, body)
    _refused(refused.value, 400, "InvalidRequestContent", "properties.regionEndpointEnabled")


def test_wrong_zone_redundancy_value_names_the_field(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given an unknown enum value; when created; then refused on that property
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, REPLICA, {"location": REPLICA, "properties": {"zoneRedundancy": "Sometimes"}})
    _refused(refused.value, 400, "InvalidRequestContent", "properties.zoneRedundancy")


def test_non_string_tags_are_refused(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given a tag whose value is a number; when created; then refused on tags
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, REPLICA, {"location": REPLICA, "tags": {"n": 1}})
    _refused(refused.value, 400, "InvalidRequestContent", "tags")


# ------------------------------------------------------------------------------------------------ SKU
def test_non_premium_registry_cannot_replicate(
    client: ContainerRegistryManagementClient, control: EmulatorControl
) -> None:
    # given a Standard registry
    rg, name = "rg-standard", unique_name("std")
    control.declare_registry(DEMO_SUBSCRIPTION, rg, name, "northeurope", sku="Standard")
    # when a replication is created; then 400 RegistrySkuNotSupported
    with pytest.raises(HttpResponseError) as refused:
        client.replications.begin_create(rg, name, REPLICA, {"location": REPLICA})
    _refused(refused.value, 400, "RegistrySkuNotSupported")


# ------------------------------------------------------------------------------------------------ immutable fields
@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"properties": {"zoneRedundancy": "Enabled"}}, "properties.zoneRedundancy"),
        ({"location": "eastus"}, "location"),
    ],
    ids=["zoneRedundancy", "location"],
)
def test_patch_of_a_create_only_field_is_refused(
    client: ContainerRegistryManagementClient,
    raw: RawArm,
    registry: RegistryRef,
    body: dict[str, Any],
    target: str,
) -> None:
    # given an existing replica
    _create(client, registry, REPLICA, {"location": REPLICA})
    # when a PATCH tries to change a create-only field (not in the SDK's update model: raw HTTP)
    response = raw.patch(replication_path(registry, REPLICA), body)
    # then 400 PropertyChangeNotAllowed naming it, and the replica is unchanged
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "PropertyChangeNotAllowed",
        "message": response.json()["error"]["message"],
        "target": target,
    }
    current = client.replications.get(registry.resource_group, registry.name, REPLICA)
    assert (current.location, current.zone_redundancy) == (REPLICA, "Disabled")


def test_put_changing_zone_redundancy_is_refused(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given a replica created without zone redundancy
    _create(client, registry, PROGRAMMATIC_NAME, {"location": PROGRAMMATIC_NAME})
    # when it is PUT again with zoneRedundancy Enabled
    with pytest.raises(HttpResponseError) as refused:
        _create(client, registry, PROGRAMMATIC_NAME, Replication(location=PROGRAMMATIC_NAME, zone_redundancy="Enabled"))
    # then 400 PropertyChangeNotAllowed
    _refused(refused.value, 400, "PropertyChangeNotAllowed", "properties.zoneRedundancy")


def test_put_of_the_same_payload_is_an_idempotent_200(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given an existing replica; when the same body is PUT again with new tags
    _create(client, registry, REPLICA, {"location": REPLICA})
    again = _create(client, registry, REPLICA, {"location": REPLICA, "tags": {"k": "v"}})
    # then a synchronous 200 applies the tags
    assert again.tags == {"k": "v"}
    assert [r["status"] for r in control.requests(method="PUT", registry=registry.name)] == [201, 200]


def test_put_same_name_other_location_conflicts(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    # given a replica named westeurope in westeurope
    _create(client, registry, REPLICA, {"location": REPLICA})
    # when the same name is PUT for eastus
    with pytest.raises(ResourceExistsError) as refused:
        _create(client, registry, REPLICA, {"location": "eastus"})
    # then 409 InvalidResourceLocation
    _refused(refused.value, 409, "InvalidResourceLocation", "location")


# ------------------------------------------------------------------------------------------------ api-version
def test_missing_api_version_is_refused(raw: RawArm, registry: RegistryRef) -> None:
    # given a GET without ?api-version (raw HTTP: the SDK always sends it)
    response = raw.get(replication_path(registry, registry.home), api_version=None)
    # then 400 MissingApiVersionParameter
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_unsupported_api_version_is_refused(settings: Settings, registry: RegistryRef) -> None:
    # given an SDK client pinned to an api-version the service does not know
    # when it reads a replica
    with build_client(settings, api_version=BAD_API_VERSION) as old, pytest.raises(HttpResponseError) as refused:
        old.replications.get(registry.resource_group, registry.name, registry.home)
    # then 400 InvalidApiVersionParameter, listing the supported ones
    _refused(refused.value, 400, "InvalidApiVersionParameter")
    assert "2025-11-01" in refused.value.error.message


# ------------------------------------------------------------------------------------------------ scope
def test_unknown_registry_is_not_found(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given a resource group that exists and a registry that does not
    # when a replication of it is read or created; then 404 ResourceNotFound
    missing = unique_name("missing")
    with pytest.raises(ResourceNotFoundError) as on_get:
        client.replications.get(registry.resource_group, missing, REPLICA)
    with pytest.raises(ResourceNotFoundError) as on_put:
        client.replications.begin_create(registry.resource_group, missing, REPLICA, {"location": REPLICA})
    for exc in (on_get.value, on_put.value):
        _refused(exc, 404, "ResourceNotFound")
        assert missing in exc.error.message


def test_unknown_replication_is_not_found(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given an existing registry; when a replica it does not have is read or patched; then 404 ResourceNotFound
    with pytest.raises(ResourceNotFoundError) as on_get:
        client.replications.get(registry.resource_group, registry.name, REPLICA)
    with pytest.raises(ResourceNotFoundError) as on_patch:
        client.replications.begin_update(registry.resource_group, registry.name, REPLICA, {"tags": {}})
    for exc in (on_get.value, on_patch.value):
        _refused(exc, 404, "ResourceNotFound")


def test_unknown_resource_group_is_not_found(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    # given a resource group nobody declared
    # when a replication under it is read; then 404 ResourceGroupNotFound
    with pytest.raises(ResourceNotFoundError) as refused:
        client.replications.get("rg-nobody-" + unique_name(), registry.name, REPLICA)
    _refused(refused.value, 404, "ResourceGroupNotFound")


def test_unknown_subscription_is_not_registration(settings: Settings, registry: RegistryRef) -> None:
    # given a subscription the emulator never saw
    # when a replication is read there
    with (
        build_client(settings, subscription_id=UNKNOWN_SUBSCRIPTION) as other,
        pytest.raises(ResourceNotFoundError) as refused,
    ):
        other.replications.get(registry.resource_group, registry.name, REPLICA)
    # then 404 SubscriptionNotFound, never MissingSubscriptionRegistration (which would make the SDK register
    # the provider and poll for minutes)
    _refused(refused.value, 404, "SubscriptionNotFound")


def test_no_error_of_the_suite_asks_to_register_the_provider(control: EmulatorControl) -> None:
    # given every request made so far in this session (RawArm and Recorder also check each body they see)
    # then none was a provider registration, which MissingSubscriptionRegistration would have triggered
    assert [r for r in control.requests() if r["path"].lower().endswith("/register")] == []
