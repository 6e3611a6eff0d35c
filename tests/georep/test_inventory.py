"""observe() against the emulator through the real SDK: discovery by list, state by get, home flagged."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION
from georep.inventory import RegistryNotFound, observe
from georep.model import RegistryRef
from georep.plan import Plan
from georep.retry import RetryPolicy
from georep.validation import check_registry
from tests.conftest import RegistryRef as EmulatedRegistry
from tests.conftest import unique_name

FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.1)


def ref_of(registry: EmulatedRegistry) -> RegistryRef:
    return RegistryRef(
        subscription_id=registry.subscription, resource_group=registry.resource_group, name=registry.name
    )


def create(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry, location: str, **body: object
) -> None:
    name = location.replace(" ", "").lower()
    client.replications.begin_create(
        registry.resource_group, registry.name, name, {"location": location, **body}
    ).result()


def test_discovers_home_and_created_replicas_sorted(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry
) -> None:
    create(client, registry, "West US 2", properties={"zoneRedundancy": "Enabled"}, tags={"env": "prod"})
    create(client, registry, "eastus", properties={"regionEndpointEnabled": False})

    info, observed = observe(client, ref_of(registry), FAST_RETRY)

    assert (info.home, info.sku) == ("northeurope", "Premium")
    assert [(o.region, o.name, o.is_home) for o in observed] == [
        ("eastus", "eastus", False),
        ("northeurope", "northeurope", True),
        ("westus2", "westus2", False),
    ]
    east, _, west = observed
    assert all(o.provisioning_state == "Succeeded" for o in observed)
    assert type(west.provisioning_state) is str  # enum values normalized to plain str
    assert west.zone_redundancy and west.tags == {"env": "prod"}
    assert not east.region_endpoint_enabled and not east.zone_redundancy
    assert west.display_status in ("Syncing", "Ready")


def test_failed_and_transitional_states_are_reported(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry, control: EmulatorControl
) -> None:
    control.add_fault("lro_fail", method="PUT", path="replications/westeurope$")
    with pytest.raises(HttpResponseError, match="ReplicationProvisioningFailed"):
        create(client, registry, "westeurope")
    control.add_fault("lro_never", method="PUT", path="replications/japaneast$")
    # polling=False: the request is sent, nobody waits for an operation that never ends
    client.replications.begin_create(
        registry.resource_group, registry.name, "japaneast", {"location": "japaneast"}, polling=False
    )

    _, observed = observe(client, ref_of(registry), FAST_RETRY)

    states = {o.region: o.provisioning_state for o in observed}
    assert states == {"japaneast": "Creating", "northeurope": "Succeeded", "westeurope": "Failed"}


def test_404_between_list_and_get_means_missing(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry, control: EmulatorControl
) -> None:
    create(client, registry, "westeurope")
    control.add_fault("status", method="GET", path="replications/westeurope$", status=404, code="ResourceNotFound")

    _, observed = observe(client, ref_of(registry), FAST_RETRY)

    assert [o.region for o in observed] == ["northeurope"]
    listed = control.requests(method="GET", registry=registry.name)
    assert any(r["path"].endswith("/replications") for r in listed)  # it was listed, then the get said 404


def test_throttled_list_is_retried(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry, control: EmulatorControl
) -> None:
    control.add_fault("status", method="GET", path="/replications$", status=429, count=1, retry_after=0)

    _, observed = observe(client, ref_of(registry), FAST_RETRY)

    assert [o.region for o in observed] == ["northeurope"]


def test_missing_registry_becomes_an_exists_problem(
    client: ContainerRegistryManagementClient, registry: EmulatedRegistry
) -> None:
    ref = ref_of(registry).model_copy(update={"name": unique_name("missing")})
    with pytest.raises(RegistryNotFound):
        observe(client, ref, FAST_RETRY)
    plan = Plan.model_validate({"registry": ref.model_dump(), "regions": ["westus2"]})
    (problem,) = check_registry(plan, None)
    assert (problem.field, problem.rule) == ("registry.name", "exists")


def test_sku_is_reported(client: ContainerRegistryManagementClient, control: EmulatorControl) -> None:
    ref = RegistryRef(subscription_id=DEMO_SUBSCRIPTION, resource_group="rg-std", name=unique_name("std"))
    control.declare_registry(ref.subscription_id, ref.resource_group, ref.name, "westeurope", sku="Standard")

    info, observed = observe(client, ref, FAST_RETRY)

    assert (info.home, info.sku) == ("westeurope", "Standard")
    assert [o.region for o in observed if o.is_home] == ["westeurope"]
