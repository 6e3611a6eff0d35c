"""The fleet rollout for real: Prefect harness, emulator, the real SDK. Registries are declared per test (one of
them in a second subscription), so tests never see each other's replicas."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.fleet_rollout import fleet_rollout
from flows.params import FleetParams
from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION
from georep.fleet import fleet_hash, load_fleet
from tests.conftest import RegistryRef, unique_name

OTHER_SUBSCRIPTION = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
WRITES = ("PUT", "PATCH", "DELETE")


def declare(control: EmulatorControl, subscription: str = DEMO_SUBSCRIPTION) -> RegistryRef:
    ref = RegistryRef(subscription, "rg-" + uuid.uuid4().hex[:6], unique_name("fleet"), "northeurope")
    control.declare_registry(ref.subscription, ref.resource_group, ref.name, ref.home)
    return ref


@pytest.fixture
def three(control: EmulatorControl) -> list[RegistryRef]:
    return [declare(control), declare(control), declare(control, OTHER_SUBSCRIPTION)]


def fleet_yaml(regs: list[RegistryRef], overrides: dict[int, str] | None = None, template: str = "") -> str:
    body = template or textwrap.dedent(
        """
        template:
          defaults: {tags: {env: prod}}
          regions: [westus2, eastus, westeurope]
          waves: [[westus2], ["*"]]
        """
    )
    lines = ["registries:"]
    for i, reg in enumerate(regs):
        extra = f", overrides: {overrides[i]}" if overrides and i in overrides else ""
        lines.append(
            f"  - {{subscription_id: '{reg.subscription}', resource_group: {reg.resource_group}, name: {reg.name}{extra}}}"
        )
    return body + "\n".join(lines) + "\n"


def writes(control: EmulatorControl, regs: list[RegistryRef]) -> int:
    return sum(
        1 for reg in regs for r in control.requests(registry=reg.name) if r["method"] in WRITES and r["status"] < 400
    )


def table(key: str) -> list[dict[str, Any]]:
    artifact = Artifact.get(key)
    assert artifact is not None, key
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert isinstance(data, list)
    return data


def run(text: str, **params: Any):  # type: ignore[no-untyped-def]
    return fleet_rollout(FleetParams(fleet_yaml=text, mode="subflows", **params), return_state=True)


def test_subflows_roll_out_three_registries_in_two_subscriptions(
    three: list[RegistryRef], control: EmulatorControl
) -> None:
    text = fleet_yaml(three, {1: "{regions: [westus2, japaneast]}"})
    state = run(text, max_parallel_registries=2)
    assert state.is_completed(), state.message
    runs = state.result()
    assert [r.ref.name for r in runs] == [r.name for r in three]
    assert all(r.state == "COMPLETED" and r.flow_run_id and r.url for r in runs)
    expected = {
        three[0].name: {"westus2", "eastus", "westeurope"},
        three[1].name: {"westus2", "japaneast"},
        three[2].name: {"westus2", "eastus", "westeurope"},
    }
    for reg in three:
        puts = {p["replication"] for p in control.requests(registry=reg.name, method="PUT") if p["status"] == 201}
        assert puts == expected[reg.name]
    assert {p["subscription"] for p in control.requests(registry=three[2].name, method="PUT")} == {OTHER_SUBSCRIPTION}

    key = fleet_hash(load_fleet(text))[:12]
    rows = {row["registry"]: row for row in table(f"georep-fleet-{key}")}
    assert set(rows) == set(expected)
    for name, regions in expected.items():
        for region in ("westus2", "eastus", "westeurope", "japaneast"):
            assert rows[name][region] == ("succeeded" if region in regions else "")
        assert rows[name]["northeurope"] == "home"
        assert rows[name]["succeeded"] == len(regions) and rows[name]["failed"] == 0
        assert rows[name]["ARM requests"] > 0 and rows[name]["run"].startswith("[completed](http")
    plan_rows = {row["registry"]: row for row in table(f"georep-fleet-plan-{key}")}
    assert plan_rows[three[1].name]["regions"] == "westus2, japaneast"
    summary = Artifact.get(f"georep-fleet-summary-{key}")
    assert summary is not None and "**Registries:** 3; 3 ok, 0 failed." in str(summary.data)
    assert "8 succeeded" in str(summary.data)
    progress = Artifact.get(f"georep-fleet-progress-{key}")
    assert progress is not None and float(progress.data) == 100.0  # type: ignore[arg-type]

    # each child is a subflow of the fleet run, with its own result artifact
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"georep-result-{r.name}" for r in three]))
        )
    assert {a.key for a in found} == {f"georep-result-{r.name}" for r in three}


def test_one_failed_lro_fails_the_fleet_naming_its_registry_while_the_others_complete(
    three: list[RegistryRef], control: EmulatorControl
) -> None:
    bad = three[1]
    control.add_fault("lro_fail", method="PUT", path=f"{bad.name}/replications/eastus$", code="QuotaExceeded")
    text = fleet_yaml(three)
    state = run(text)
    assert state.is_failed()
    assert str(state.message) == f"1 of 3 registries failed: {bad.name} (failed)"
    rows = {row["registry"]: row for row in table(f"georep-fleet-{fleet_hash(load_fleet(text))[:12]}")}
    assert rows[bad.name]["eastus"] == "failed" and "QuotaExceeded" in rows[bad.name]["error"]
    assert rows[bad.name]["westus2"] == rows[bad.name]["westeurope"] == "succeeded"
    for reg in (three[0], three[2]):
        assert rows[reg.name]["state"] == "completed" and rows[reg.name]["succeeded"] == 3


def test_a_bad_fleet_is_refused_with_every_problem_before_any_write(
    three: list[RegistryRef], control: EmulatorControl
) -> None:
    text = fleet_yaml(three, {0: "{regions: [westus2, eastus9]}", 2: "{failure_budget: -1}"})
    state = run(text)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "registries[0].regions[1].region [known_region]" in message
    assert "registries[2].overrides.failure_budget [greater_than_equal]" in message
    assert writes(control, three) == 0
    assert all(control.requests(registry=r.name) == [] for r in three)  # not even a read


def test_preflight_refuses_a_missing_and_a_standard_registry_before_any_child(
    three: list[RegistryRef], control: EmulatorControl
) -> None:
    standard = RegistryRef(DEMO_SUBSCRIPTION, "rg-" + uuid.uuid4().hex[:6], unique_name("std"), "northeurope")
    control.declare_registry(standard.subscription, standard.resource_group, standard.name, standard.home, "Standard")
    missing = RegistryRef(DEMO_SUBSCRIPTION, "rg-none", unique_name("gone"), "northeurope")
    state = run(fleet_yaml([*three, standard, missing]))
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "registries[3].name [premium]" in message
    assert "registries[4].name [exists]" in message
    assert writes(control, [*three, standard]) == 0  # the three good registries were not touched either
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs()
    assert not [f for f in children if f.name in {f"rollout-{r.name}" for r in three}], "a child started"


def test_dry_run_writes_nothing_and_reports_every_registry(three: list[RegistryRef], control: EmulatorControl) -> None:
    text = fleet_yaml(three)
    state = run(text, dry_run=True)
    assert state.is_completed(), state.message
    assert writes(control, three) == 0
    rows = table(f"georep-fleet-{fleet_hash(load_fleet(text))[:12]}")
    assert [row["westus2"] for row in rows] == ["dry-run"] * 3


# ----------------------------------------------------------------------------------------- deployments mode


@pytest.fixture
def child_deployment() -> Iterator[tuple[str, list[UUID]]]:
    """The child deployment, and a stand-in for the worker the harness lacks: a thread that picks up the
    deployment's scheduled runs and runs each one in-process with Prefect's own flow engine (parameters arrive
    as JSON, as on a worker). The list records every child run it started."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_engine import run_flow

    from flows.global_rollout import global_rollout

    deployment_id = global_rollout.to_deployment(name="registry-rollout").apply()
    started: list[UUID] = []
    stop = threading.Event()
    children: list[threading.Thread] = []

    def poll() -> None:
        scheduled = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                for run in client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                    flow_run_filter=scheduled,
                ):
                    if run.id not in started:
                        started.append(run.id)
                        child = threading.Thread(
                            target=run_flow,
                            kwargs={
                                "flow": global_rollout,
                                "flow_run": run,
                                "parameters": run.parameters,
                                "return_type": "state",
                            },
                        )
                        child.start()
                        children.append(child)
                stop.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield "global-rollout/registry-rollout", started
    finally:
        stop.set()
        poller.join(10)
        for child in children:
            child.join(60)


def test_deployments_mode_runs_one_child_per_registry_and_a_rerun_reattaches(
    three: list[RegistryRef],
    control: EmulatorControl,
    child_deployment: tuple[str, list[UUID]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flows.fleet_rollout as module

    monkeypatch.setattr(module, "POLL_SECONDS", 0.2)
    name, started = child_deployment
    regs = [three[0], three[2]]  # two subscriptions
    text = fleet_yaml(regs)
    params = FleetParams(fleet_yaml=text, child_deployment=name, max_parallel_registries=1)
    state = fleet_rollout(params, return_state=True)
    assert state.is_completed(), state.message
    runs = state.result()
    assert [r.ref.name for r in runs] == [r.name for r in regs]
    assert sorted(UUID(str(r.flow_run_id)) for r in runs) == sorted(started) and len(started) == 2
    for r in runs:  # the regions came back from each child's result table, read by its flow run id
        assert r.state == "COMPLETED" and r.url and r.url.endswith(f"/runs/flow-run/{r.flow_run_id}")
        assert sorted(o.region for o in r.outcomes if o.result.value == "succeeded") == [
            "eastus",
            "westeurope",
            "westus2",
        ]
        assert sum(o.arm_requests for o in r.outcomes) > 0
    rows = {row["registry"]: row for row in table(f"georep-fleet-{fleet_hash(load_fleet(text))[:12]}")}
    assert all(rows[r.name]["succeeded"] == 3 and rows[r.name]["state"] == "completed" for r in regs)

    # children are subflows of the fleet run, and max_parallel_registries=1 let one run at a time
    with get_client(sync_client=True) as client:
        children = [client.read_flow_run(UUID(str(r.flow_run_id))) for r in runs]
    assert all(c.parent_task_run_id is not None for c in children)
    first, second = sorted(children, key=lambda c: c.start_time)  # type: ignore[arg-type,return-value]
    assert first.end_time is not None and second.start_time is not None and first.end_time <= second.start_time

    # a retried parent (same flow run id) dispatches again: the server hands back the same children
    parent = str(state.state_details.flow_run_id)
    fleet = load_fleet(text)
    again = [module._dispatch(m, params, parent, fleet_hash(fleet)) for m in fleet.members]
    assert [str(c.id) for c in again] == [r.flow_run_id for r in runs]
    time.sleep(1)
    assert len(started) == 2  # nothing new was scheduled
    assert writes(control, regs) == 6
