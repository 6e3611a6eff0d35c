"""The DR setup flow under the session harness, against the emulator through the real SDK."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from flows.dr_setup import dr_setup
from flows.params import DrSetupParams
from georep.emulator.client import EmulatorControl
from georep.model import RegionOutcome
from tests.conftest import RegistryRef
from tests.flows.test_global_rollout import plan_yaml, result_table, writes


def lists(reg: RegistryRef, primaries: list[str], dr: list[str], **kw: Any) -> DrSetupParams:
    return DrSetupParams(
        subscription_id=reg.subscription,
        resource_group=reg.resource_group,
        name=reg.name,
        primary_regions=primaries,
        dr_regions=dr,
        **kw,
    )


def outcomes(state: Any) -> list[RegionOutcome]:
    result: list[RegionOutcome] = state.result()
    return result


def layout(client: ContainerRegistryManagementClient, reg: RegistryRef) -> dict[str, tuple[str, bool, str | None]]:
    return {
        str(r.location): (
            getattr(r.zone_redundancy, "value", str(r.zone_redundancy)),
            bool(r.region_endpoint_enabled),
            (r.tags or {}).get("dr-tier"),
        )
        for r in client.replications.list(reg.resource_group, reg.name)
    }


def test_region_lists_build_the_dr_layout(
    registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    state = dr_setup(lists(registry, ["westus2", "eastus"], ["westeurope", "southeastasia"]), return_state=True)
    assert state.is_completed(), state.message
    assert {o.region: o.result.value for o in outcomes(state)} == {
        "northeurope": "skipped",
        "westus2": "succeeded",
        "eastus": "succeeded",
        "westeurope": "succeeded",
        "southeastasia": "succeeded",
    }
    assert layout(client, registry) == {
        "northeurope": ("Disabled", True, None),
        "westus2": ("Enabled", True, "primary"),
        "eastus": ("Enabled", True, "primary"),
        "westeurope": ("Disabled", False, "dr"),
        "southeastasia": ("Disabled", False, "dr"),
    }
    puts = control.requests(registry=registry.name, method="PUT")
    # primaries are the first wave: both are sent before either DR region
    order = [p["replication"] for p in puts]
    assert set(order[:2]) == {"westus2", "eastus"} and set(order[2:]) == {"westeurope", "southeastasia"}
    assert result_table(registry)["westeurope"]["result"] == "succeeded"

    again = dr_setup(lists(registry, ["westus2", "eastus"], ["westeurope", "southeastasia"]), return_state=True)
    assert again.is_completed(), again.message
    assert writes(control, registry) == {"PUT": 4, "PATCH": 0, "DELETE": 0}  # idempotent


def test_existing_replicas_are_patched_into_their_tier(
    registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    rg, name = registry.resource_group, registry.name
    # as the global rollout leaves them: every endpoint on; eastus's endpoint disabled by someone since
    client.replications.begin_create(
        rg, name, "westus2", {"location": "westus2", "properties": {"zoneRedundancy": "Enabled"}}
    ).result()
    client.replications.begin_create(
        rg,
        name,
        "eastus",
        {"location": "eastus", "properties": {"zoneRedundancy": "Enabled", "regionEndpointEnabled": False}},
    ).result()
    client.replications.begin_create(rg, name, "westeurope", {"location": "westeurope"}).result()
    before = writes(control, registry)
    body = plan_yaml(
        registry,
        """
    defaults: {zone_redundancy: true, tags: {env: prod}}
    regions:
      - {region: westus2, region_endpoint_enabled: true, tags: {dr-tier: primary}}
      - {region: eastus, region_endpoint_enabled: true, tags: {dr-tier: primary}}
      - {region: westeurope, zone_redundancy: false, region_endpoint_enabled: false, tags: {dr-tier: dr}}
    waves: [[westus2, eastus], [westeurope]]
    """,
    )
    state = dr_setup(DrSetupParams(plan_yaml=body), return_state=True)
    assert state.is_completed(), state.message
    assert {o.region: o.action.value for o in outcomes(state)} == {
        "northeurope": "skip-home",
        "westus2": "update",
        "eastus": "update",
        "westeurope": "update",
    }
    after = writes(control, registry)
    assert (after["PUT"] - before["PUT"], after["PATCH"] - before["PATCH"]) == (0, 3)
    assert layout(client, registry) == {
        "northeurope": ("Disabled", True, None),
        "westus2": ("Enabled", True, "primary"),
        "eastus": ("Enabled", True, "primary"),  # an explicit primary endpoint re-enables it
        "westeurope": ("Disabled", False, "dr"),
    }


def test_dry_run_writes_nothing(registry: RegistryRef, control: EmulatorControl) -> None:
    state = dr_setup(lists(registry, ["westus2"], ["westeurope"], dry_run=True), return_state=True)
    assert state.is_completed(), state.message
    assert {o.result.value for o in outcomes(state) if o.region != "northeurope"} == {"dry-run"}
    assert writes(control, registry) == {"PUT": 0, "PATCH": 0, "DELETE": 0}


def test_recreating_a_failed_replica_needs_confirm(
    registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    control.add_fault("lro_fail", method="PUT", path=f"{registry.name}/replications/westeurope$", count=1)
    with contextlib.suppress(HttpResponseError):  # the replica ends Failed, as in Azure/ARO-HCP#2366
        client.replications.begin_create(
            registry.resource_group, registry.name, "westeurope", {"location": "westeurope"}
        ).result()
    before = writes(control, registry)
    refused = dr_setup(lists(registry, ["westus2"], ["westeurope"]), return_state=True)
    assert refused.is_failed() and "confirm" in str(refused.message)
    assert writes(control, registry) == before

    state = dr_setup(lists(registry, ["westus2"], ["westeurope"], confirm=True), return_state=True)
    assert state.is_completed(), state.message
    assert {o.region: o.action.value for o in outcomes(state)}["westeurope"] == "recreate"


def test_bad_parameters_are_refused_before_any_request(registry: RegistryRef, control: EmulatorControl) -> None:
    no_registry = dr_setup(DrSetupParams(primary_regions=["westus2"]), return_state=True)
    assert no_registry.is_failed() and "subscription_id" in str(no_registry.result(raise_on_failure=False))
    typo = dr_setup(lists(registry, ["westus2"], ["westeurop"]), return_state=True)
    assert typo.is_failed() and "dr_regions[0]" in str(typo.result(raise_on_failure=False))
    assert control.requests(registry=registry.name) == []


def test_default_parameters_load_the_demo_dr_plan(project_dir: Path) -> None:
    plan = DrSetupParams().load(project_dir)
    assert plan.ref.name == "georepdemo" and [w for w in plan.waves or []] == [
        ["westus2", "eastus"],
        ["westeurope", "southeastasia"],
    ]
