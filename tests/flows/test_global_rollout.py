from __future__ import annotations

import textwrap

from prefect.client.orchestration import get_client

from flows.global_rollout import global_rollout
from flows.params import RolloutParams
from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef


def plan_yaml(reg: RegistryRef, body: str) -> str:
    head = f"""
    registry:
      subscription_id: {reg.subscription}
      resource_group: {reg.resource_group}
      name: {reg.name}
    """
    return textwrap.dedent(head) + textwrap.dedent(body)


SEED = """
defaults:
  tags: {env: prod, owner: platform-team}
regions:
  - {region: westus2, zone_redundancy: true}
  - {region: eastus, zone_redundancy: true}
  - westeurope
  - southeastasia
waves: [[westus2], ["*"]]
"""


def test_seed_rollout_creates_four_regions_and_reports(registry: RegistryRef, control: EmulatorControl) -> None:
    state = global_rollout(RolloutParams(plan_yaml=plan_yaml(registry, SEED)), return_state=True)
    assert state.is_completed(), state.message
    outcomes = state.result()
    by_region = {o.region: o for o in outcomes}
    assert sorted(by_region) == ["eastus", "northeurope", "southeastasia", "westeurope", "westus2"]
    assert by_region["northeurope"].action == "skip-home"
    assert all(by_region[r].result == "succeeded" for r in ("eastus", "southeastasia", "westeurope", "westus2"))
    puts = control.requests(method="PUT", registry=registry.name)
    assert len(puts) == 4
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {
        f"georep-result-{registry.name}",
        f"georep-progress-{registry.name}",
        f"georep-plan-{registry.name}",
    } <= keys
