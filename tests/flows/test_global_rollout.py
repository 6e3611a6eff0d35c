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


# ------------------------------------------------------------------------------------------------- helpers
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from azure.mgmt.containerregistry import ContainerRegistryManagementClient  # noqa: E402

from georep.model import Result  # noqa: E402

EIGHT = ["westus2", "eastus", "westeurope", "southeastasia", "japaneast", "uksouth", "francecentral", "centralus"]


def regions_plan(reg: RegistryRef, regions: list[str], extra: str = "") -> str:
    items = "\n".join(f"  - {r}" for r in regions)
    return plan_yaml(reg, f"regions:\n{items}\n{textwrap.dedent(extra)}")


def run(reg: RegistryRef, yaml_text: str, **params: object):  # type: ignore[no-untyped-def]
    return global_rollout(RolloutParams(plan_yaml=yaml_text, **params), return_state=True)  # type: ignore[arg-type]


def writes(control: EmulatorControl, reg: RegistryRef) -> dict[str, int]:
    out = {"PUT": 0, "PATCH": 0, "DELETE": 0}
    for r in control.requests(registry=reg.name):
        if r["method"] in out and r["status"] < 400:
            out[r["method"]] += 1
    return out


def outcomes_of(control: EmulatorControl, state) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {o.region: o for o in state.result()} if state.is_completed() else {}


def result_table(reg: RegistryRef) -> dict[str, dict[str, str]]:
    import json

    from prefect.artifacts import Artifact

    artifact = Artifact.get(f"georep-result-{reg.name}")
    assert artifact is not None
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["region"]: row for row in rows}


# -------------------------------------------------------------------------------------------------- tests


def test_plan_mixing_create_update_noop_and_recreate(
    registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    rg, name = registry.resource_group, registry.name
    client.replications.begin_create(rg, name, "eastus", {"location": "eastus", "tags": {"env": "dev"}}).result()
    client.replications.begin_create(
        rg, name, "westeurope", {"location": "westeurope", "tags": {"env": "prod"}}
    ).result()
    control.add_fault("lro_fail", method="PUT", path=f"{name}/replications/uksouth$")
    with pytest.raises(Exception, match="ReplicationProvisioningFailed"):
        client.replications.begin_create(rg, name, "uksouth", {"location": "uksouth", "tags": {"env": "prod"}}).result()
    before = writes(control, registry)
    body = regions_plan(registry, ["eastus", "westeurope", "uksouth", "japaneast"], "defaults: {tags: {env: prod}}")

    refused = run(registry, body)  # a recreate is destructive: it needs confirm
    assert refused.is_failed() and "confirm" in str(refused.message)
    assert writes(control, registry) == before

    state = run(registry, body, confirm=True)
    assert state.is_completed(), state.message
    got = {o.region: (o.action.value, o.result.value) for o in state.result()}
    assert got == {
        "eastus": ("update", "succeeded"),
        "westeurope": ("noop", "unchanged"),
        "uksouth": ("recreate", "succeeded"),
        "japaneast": ("create", "succeeded"),
        "northeurope": ("skip-home", "skipped"),
    }
    after = writes(control, registry)
    assert (after["PUT"] - before["PUT"], after["PATCH"] - before["PATCH"], after["DELETE"] - before["DELETE"]) == (
        2,
        1,
        1,
    )
    assert result_table(registry)["uksouth"]["result"] == "succeeded"


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "status", "method": "PUT", "status": 429, "count": 12, "retry_after": 1, "probability": 0.6},
        {
            "action": "status",
            "method": "GET",
            "path": "replications/[^/]+/operationStatuses",
            "status": 503,
            "count": 6,
        },
        {
            "action": "status",
            "method": "GET",
            "path": "replications/[^/]+/operationStatuses",
            "status": 500,
            "count": 6,
        },
        {"action": "reset", "method": "PUT", "count": 3},
        {"action": "reset", "method": "GET", "path": "replications/[^/]+/operationStatuses", "count": 4},
    ],
    ids=["429-storm", "503-polls", "500-polls", "reset-puts", "reset-polls"],
)
def test_transient_faults_lose_no_region(
    registry: RegistryRef, control: EmulatorControl, fault: dict[str, object]
) -> None:
    control.add_fault(**{**fault, "path": f"{registry.name}/" + str(fault.get("path", "replications/"))})  # type: ignore[arg-type]
    state = run(registry, regions_plan(registry, EIGHT), max_parallel=8)
    assert state.is_completed(), state.message
    assert all(rule["fired"] > 0 for rule in control.faults())  # the fault really happened
    assert sorted(o.region for o in state.result() if o.result is Result.SUCCEEDED) == sorted(EIGHT)
    accepted = [r for r in control.requests(registry=registry.name, method="PUT") if r["status"] == 201]
    assert len(accepted) == len(EIGHT)  # no region written twice


def test_failed_lro_fails_only_its_region_and_the_flow(registry: RegistryRef, control: EmulatorControl) -> None:
    control.add_fault("lro_fail", method="PUT", path=f"{registry.name}/replications/japaneast$", code="QuotaExceeded")
    state = run(registry, regions_plan(registry, EIGHT, "failure_budget: 1"))
    assert state.is_failed()
    assert "japaneast (QuotaExceeded)" in str(state.message)
    table = result_table(registry)
    assert table["japaneast"]["result"] == "failed" and "QuotaExceeded" in table["japaneast"]["error"]
    assert [r for r in EIGHT if table[r]["result"] == "succeeded"] == [r for r in EIGHT if r != "japaneast"]


def test_never_ending_lro_is_stopped_by_the_deadline(registry: RegistryRef, control: EmulatorControl) -> None:
    control.add_fault("lro_never", method="PUT", path=f"{registry.name}/replications/eastus$")
    started = time.monotonic()
    state = run(registry, regions_plan(registry, ["eastus", "westeurope"]), deadline_seconds=2)
    assert state.is_failed() and "DeadlineExceeded" in str(state.message)
    assert time.monotonic() - started < 20
    assert result_table(registry)["westeurope"]["result"] == "succeeded"


def test_failure_budget_holds_back_later_waves(registry: RegistryRef, control: EmulatorControl) -> None:
    control.add_fault("lro_fail", method="PUT", path=f"{registry.name}/replications/westus2$")
    body = regions_plan(registry, ["westus2", "eastus", "westeurope"], "waves: [[westus2], ['*']]\nfailure_budget: 0")
    state = run(registry, body)
    assert state.is_failed()
    table = result_table(registry)
    assert table["westus2"]["result"] == "failed"
    assert table["eastus"]["result"] == table["westeurope"]["result"] == "skipped"
    assert [r["replication"] for r in control.requests(registry=registry.name, method="PUT")] == ["westus2"]


def test_rollback_deletes_only_what_this_run_created(
    registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    rg, name = registry.resource_group, registry.name
    client.replications.begin_create(rg, name, "eastus", {"location": "eastus"}).result()  # existed before the run
    control.add_fault("lro_fail", method="PUT", path=f"{name}/replications/uksouth$")
    state = run(
        registry, regions_plan(registry, ["eastus", "westeurope", "japaneast", "uksouth"]), rollback_on_failure=True
    )
    assert state.is_failed()
    left = sorted(r.name for r in client.replications.list(rg, name))
    assert left == ["eastus", "northeurope"]
    deleted = sorted(r["replication"] for r in control.requests(registry=name, method="DELETE") if r["status"] == 202)
    assert deleted == ["japaneast", "uksouth", "westeurope"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("regions: [westus9]", "regions[0].region"),
        ("regions: [germanynorth]", "restricted"),
        ("regions: [westus2, 'West US 2']", "duplicate"),
        ("regions: [northeurope]\nprune: true", "confirm"),
        ("regions: [{region: westus, zone_redundancy: true}]", "zone"),
        ("regions: []", "regions"),
        ("regions: [westus2]\nwaves: [[eastus]]", "waves"),
        ("regions: westus2: [", "yaml"),
    ],
)
def test_bad_plans_fail_before_any_write(
    registry: RegistryRef, control: EmulatorControl, body: str, needle: str
) -> None:
    state = run(registry, plan_yaml(registry, body))
    assert state.is_failed()
    assert needle.lower() in str(state.message).lower() + str(state.result(raise_on_failure=False)).lower()
    assert writes(control, registry) == {"PUT": 0, "PATCH": 0, "DELETE": 0}


def test_missing_or_standard_registry_is_refused_before_any_write(
    registry: RegistryRef, control: EmulatorControl
) -> None:
    missing = RegistryRef(registry.subscription, registry.resource_group, "nosuchregistry", registry.home)
    state = run(missing, regions_plan(missing, ["westus2"]))
    assert state.is_failed() and "registry.name" in str(state.result(raise_on_failure=False))
    control.declare_registry(
        registry.subscription, registry.resource_group, registry.name + "std", "northeurope", sku="Standard"
    )
    std = RegistryRef(registry.subscription, registry.resource_group, registry.name + "std", registry.home)
    state = run(std, regions_plan(std, ["westus2"]))
    assert state.is_failed() and "premium" in str(state.result(raise_on_failure=False)).lower()
    assert control.requests(method="PUT", registry=std.name) == []


CHILD = textwrap.dedent(
    """
    import sys
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams
    global_rollout(RolloutParams(plan_yaml=open(sys.argv[1]).read()))
    """
)


def test_kill_9_mid_rollout_then_rerun_converges_without_duplicate_writes(
    registry: RegistryRef, control: EmulatorControl, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from prefect.settings import PREFECT_API_URL

    from tasks.engine import get_engine

    control.settings(create_seconds=4.0)
    regions = ["westus2", "eastus", "westeurope", "southeastasia"]
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(regions_plan(registry, regions))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(plan_file)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            accepted = [r for r in control.requests(registry=registry.name, method="PUT") if r["status"] == 201]
            if len(accepted) == len(regions):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the child never sent its PUTs")
        time.sleep(0.5)  # let it checkpoint the last token
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    control.settings(create_seconds=0.2)
    get_engine().store.close()
    from tasks.engine import reset_engines

    reset_engines()
    state = run(registry, plan_file.read_text())
    assert state.is_completed(), state.message
    assert {o.region: o.result.value for o in state.result() if o.region in regions} == dict.fromkeys(
        regions, "succeeded"
    )
    puts = [r for r in control.requests(registry=registry.name, method="PUT")]
    assert len(puts) == len(regions), [(p["replication"], p["status"]) for p in puts]


def test_a_second_run_on_the_same_registry_is_refused_while_the_first_writes(
    registry: RegistryRef, control: EmulatorControl
) -> None:
    import threading

    control.settings(create_seconds=9.0)  # longer than the lock's 5 s patience
    first: dict[str, object] = {}
    thread = threading.Thread(target=lambda: first.update(state=run(registry, regions_plan(registry, ["eastus"]))))
    thread.start()
    deadline = time.monotonic() + 30
    while not control.requests(registry=registry.name, method="PUT") and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run(registry, regions_plan(registry, ["eastus", "westeurope"]))
    thread.join(60)
    assert second.is_failed()
    assert "another georep run is changing registry" in str(second.result(raise_on_failure=False))
    assert first["state"].is_completed()  # type: ignore[attr-defined]
    puts = control.requests(registry=registry.name, method="PUT")
    assert [p["replication"] for p in puts] == ["eastus"]  # the second run wrote nothing
