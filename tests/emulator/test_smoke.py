from __future__ import annotations

from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef


def test_create_get_list_update_delete_through_the_real_sdk(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    rg, reg = registry.resource_group, registry.name
    created = client.replications.begin_create(rg, reg, "westeurope", {"location": "West Europe"}).result()
    assert created.provisioning_state == "Succeeded"
    assert created.location == "westeurope"
    assert created.status.display_status == "Syncing"
    names = sorted(r.name for r in client.replications.list(rg, reg))
    assert names == ["northeurope", "westeurope"]
    updated = client.replications.begin_update(rg, reg, "westeurope", {"tags": {"tier": "dr"}}).result()
    assert updated.tags == {"tier": "dr"}
    assert client.replications.begin_delete(rg, reg, "westeurope").result() is None
    puts = control.requests(method="PUT", registry=reg)
    assert [r["status"] for r in puts] == [201]
