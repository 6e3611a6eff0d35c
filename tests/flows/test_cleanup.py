"""The cleanup flow under the session harness, against the emulator through the real SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from prefect.artifacts import Artifact

from flows.cleanup import cleanup
from flows.params import CleanupParams
from georep.emulator.client import EmulatorControl
from georep.validation import PlanError
from tests.conftest import RegistryRef
from tests.flows.test_global_rollout import plan_yaml, writes

NONE = {"PUT": 0, "PATCH": 0, "DELETE": 0}


def params(reg: RegistryRef, **kw: Any) -> CleanupParams:
    base: dict[str, Any] = {
        "subscription_id": reg.subscription,
        "resource_group": reg.resource_group,
        "name": reg.name,
        "keep_plan_path": None,
    }
    return CleanupParams(**{**base, **kw})


@pytest.fixture
def fleet(registry: RegistryRef, client: ContainerRegistryManagementClient, control: EmulatorControl) -> RegistryRef:
    """northeurope (home), westus2 (prod), eastus + uksouth (staging), westeurope (staging, protected)."""
    tags = {
        "westus2": {"env": "prod"},
        "eastus": {"env": "staging"},
        "uksouth": {"env": "staging"},
        "westeurope": {"env": "staging", "georep-protected": "true"},
    }
    pollers = [
        client.replications.begin_create(registry.resource_group, registry.name, r, {"location": r, "tags": t})
        for r, t in tags.items()
    ]
    for p in pollers:
        p.result()
    assert writes(control, registry)["PUT"] == 4
    return registry


def replicas(client: ContainerRegistryManagementClient, reg: RegistryRef) -> list[str]:
    return sorted(str(r.name) for r in client.replications.list(reg.resource_group, reg.name))


def table(reg: RegistryRef) -> dict[str, dict[str, Any]]:
    artifact: Any = Artifact.get(f"georep-cleanup-{reg.name}")
    assert artifact is not None
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["region"]: row for row in rows}


def test_dry_run_is_the_default_and_writes_nothing(fleet: RegistryRef, control: EmulatorControl) -> None:
    before = writes(control, fleet)
    state = cleanup(params(fleet, match_tags=["env=staging"]), return_state=True)
    assert state.is_completed(), state.message
    assert writes(control, fleet) == before
    got = {r: (row["decision"], row["result"]) for r, row in table(fleet).items()}
    assert got == {
        "northeurope": ("skip-home", "skipped"),
        "westus2": ("skip-not-matched", "skipped"),
        "eastus": ("remove", "would-remove"),
        "uksouth": ("remove", "would-remove"),
        "westeurope": ("skip-protected", "skipped"),
    }
    assert "would-remove" in str(state.result())


def test_missing_confirm_is_refused_before_any_request(fleet: RegistryRef, control: EmulatorControl) -> None:
    seen = len(control.requests(registry=fleet.name))
    state = cleanup(params(fleet, keep_regions=[], dry_run=False), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, PlanError) and [p.field for p in error.problems] == ["confirm"]
    assert len(control.requests(registry=fleet.name)) == seen  # not even a read


def test_real_run_never_deletes_home_or_protected(
    fleet: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    # the widest selection there is: keep nothing
    state = cleanup(params(fleet, keep_regions=[], dry_run=False, confirm=True), return_state=True)
    assert state.is_completed(), state.message
    assert replicas(client, fleet) == ["northeurope", "westeurope"]
    deleted = sorted(r["replication"] for r in control.requests(registry=fleet.name, method="DELETE"))
    assert deleted == ["eastus", "uksouth", "westus2"]
    rows = table(fleet)
    assert {r: row["result"] for r, row in rows.items()} == {
        "northeurope": "skipped",
        "westeurope": "skipped",
        "eastus": "removed",
        "uksouth": "removed",
        "westus2": "removed",
    }
    assert rows["westeurope"]["reason"] == "protected (georep-protected=true)"
    assert int(rows["eastus"]["ARM requests"]) > 0
    assert Artifact.get(f"georep-cleanup-summary-{fleet.name}") is not None
    assert Artifact.get(f"georep-cleanup-progress-{fleet.name}") is not None


def test_keep_plan_names_the_registry_and_the_regions_to_keep(
    fleet: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    keep = plan_yaml(fleet, "regions: [westus2, eastus]")
    state = cleanup(CleanupParams(keep_plan_yaml=keep, dry_run=False, confirm=True), return_state=True)
    assert state.is_completed(), state.message
    assert replicas(client, fleet) == ["eastus", "northeurope", "westeurope", "westus2"]
    assert table(fleet)["eastus"]["reason"] == "kept: eastus is in the keep plan"

    other = params(fleet, name=fleet.name + "x", keep_plan_yaml=keep)
    state = cleanup(other, return_state=True)
    assert state.is_failed() and "registry_mismatch" in str(state.result(raise_on_failure=False))


def test_a_failed_delete_fails_the_run_and_the_rest_still_go(
    fleet: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    control.add_fault("lro_fail", method="DELETE", path=f"{fleet.name}/replications/uksouth$", code="DeleteBlocked")
    state = cleanup(params(fleet, match_tags=["env=staging"], dry_run=False, confirm=True), return_state=True)
    assert state.is_failed() and "uksouth (DeleteBlocked)" in str(state.message)
    rows = table(fleet)
    assert rows["uksouth"]["result"] == "failed" and "DeleteBlocked" in str(rows["uksouth"]["error"])
    assert rows["eastus"]["result"] == "removed"
    assert "eastus" not in replicas(client, fleet)
