"""The DR drill flow against the emulator through the real SDK, under the session Prefect harness.

Each test seeds its own registry (home northeurope + westeurope + eastus, all Ready) and counts ARM writes in
the emulator's request log: a refusal must leave it at zero.
"""

from __future__ import annotations

import threading
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.states import Cancelled
from pydantic import ValidationError

from flows.dr_drill import dr_drill, restore_hook
from flows.params import DrillParams
from georep.arm import build_client
from georep.config import Settings
from georep.drill import DrillReport
from georep.emulator.client import EmulatorControl
from georep.journal import DrillEntry
from tasks import artifacts
from tasks.drill import get_journal
from tests.conftest import RegistryRef
from tests.flows.test_global_rollout import plan_yaml

TAGS = {"env": "prod", "owner": "platform-team"}


def seed(
    client: ContainerRegistryManagementClient,
    reg: RegistryRef,
    replicas: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Create the replicas, wait until every one is Ready, return the plan naming them."""
    replicas = replicas or {"westeurope": {}, "eastus": {}}
    pollers = [
        client.replications.begin_create(
            reg.resource_group,
            reg.name,
            region,
            {"location": region, "tags": extra.get("tags", TAGS), "properties": extra.get("properties", {})},
        )
        for region, extra in replicas.items()
    ]
    for p in pollers:
        p.result()
    for _ in range(100):
        states = [r.status.display_status for r in client.replications.list(reg.resource_group, reg.name)]
        if all(s == "Ready" for s in states):
            break
        time.sleep(0.1)
    items = "\n".join(f"  - {r}" for r in replicas)
    return plan_yaml(reg, f"defaults: {{tags: {{env: prod, owner: platform-team}}}}\nregions:\n{items}\n")


def writes(control: EmulatorControl, reg: RegistryRef, since: int = 0) -> dict[str, int]:
    """Accepted ARM writes (status < 400) on the registry's replications since a request-log id."""
    out = {"PUT": 0, "PATCH": 0, "DELETE": 0}
    for r in control.requests(since_id=since, registry=reg.name):
        if r["method"] in out and r["status"] < 400 and r["replication"]:
            out[r["method"]] += 1
    return out


def cursor(control: EmulatorControl) -> int:
    last = control.requests(since_id=0)
    return int(last[-1]["id"]) if last else 0


def drill(text: str, **params: Any) -> Any:
    return dr_drill(DrillParams(plan_yaml=text, **params), return_state=True)


def real(**params: Any) -> dict[str, Any]:
    return {"dry_run": False, "confirm": True, **params}


def endpoint(client: ContainerRegistryManagementClient, reg: RegistryRef, name: str) -> bool:
    return bool(client.replications.get(reg.resource_group, reg.name, name).region_endpoint_enabled)


def set_endpoint(client: ContainerRegistryManagementClient, reg: RegistryRef, name: str, enabled: bool) -> None:
    client.replications.begin_update(
        reg.resource_group, reg.name, name, {"properties": {"regionEndpointEnabled": enabled}}
    ).result()


def artifact_text(key: str) -> str:
    artifact = Artifact.get(key)
    assert artifact is not None, key
    return str(getattr(artifact, "data", ""))  # a sync call returns the artifact, not a coroutine


class Watcher:
    """Reads a replica's endpoint flag from another thread while a drill runs (what a client would be routed to)."""

    def __init__(self, reg: RegistryRef, name: str) -> None:
        self.reg, self.name = reg, name
        self.seen: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with build_client(Settings(polling_interval=0.05)) as c:
            while not self._stop.is_set():
                self.seen.append(endpoint(c, self.reg, self.name))
                time.sleep(0.05)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def seeded(client: ContainerRegistryManagementClient, registry: RegistryRef) -> Iterator[str]:
    yield seed(client, registry)


# ------------------------------------------------------------------------------------------------ happy paths


def test_failover_disables_during_hold_and_restores(
    seeded: str, registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    since = cursor(control)
    with Watcher(registry, "westeurope") as watcher:
        state = drill(seeded, targets=["West Europe"], hold_seconds=0.6, **real())
    assert state.is_completed(), state.message
    report: DrillReport = state.result()
    assert report.status == "completed" and report.targets == ["westeurope"]
    assert False in watcher.seen, "the endpoint was never seen disabled during the hold"
    assert watcher.seen[-1] is True and endpoint(client, registry, "westeurope")
    assert writes(control, registry, since) == {"PUT": 0, "PATCH": 2, "DELETE": 0}
    patches = [r for r in control.requests(since_id=since, registry=registry.name, method="PATCH")]
    assert {r["replication"] for r in patches} == {"westeurope"}
    for figure in ("time_to_failover_seconds", "time_to_restore_seconds", "hold_seconds", "verify_seconds"):
        assert report.figures[figure] is not None and report.figures[figure] >= 0  # type: ignore[operator]
    assert report.figures["hold_seconds"] >= 0.6  # type: ignore[operator]
    assert [s.step for s in report.timeline] == ["disable-endpoint", "verify", "hold", "restore-endpoint"]
    assert report.restore == "restored" and report.restore_by == "drill"
    # tags untouched by the PATCHes
    assert client.replications.get(registry.resource_group, registry.name, "westeurope").tags == TAGS
    md = artifact_text(f"georep-drill-report-{registry.name}")
    assert "Time to failover" in md and "Time to restore" in md and "Restored by drill" in md
    assert "disable-endpoint" in artifact_text(f"georep-drill-timeline-{registry.name}")
    assert Artifact.get(f"georep-drill-progress-{registry.name}") is not None


def test_rebuild_recreates_with_original_config_and_measures_rto(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    tags = {"env": "prod", "team": "payments", "cost-center": "42"}
    text = seed(
        client,
        registry,
        {"westeurope": {"tags": tags, "properties": {"zoneRedundancy": "Enabled"}}, "eastus": {}},
    )
    control.settings(sync_seconds=3.0)  # long enough that a loaded machine still sees Syncing for a while
    since = cursor(control)
    state = drill(text, targets=["westeurope"], mode="rebuild", **real())
    assert state.is_completed(), state.message
    report: DrillReport = state.result()
    w = writes(control, registry, since)
    assert w["DELETE"] == 1 and w["PUT"] == 1 and w["PATCH"] == 0
    back = client.replications.get(registry.resource_group, registry.name, "westeurope")
    assert back.tags == tags
    assert str(back.zone_redundancy) in ("Enabled", "ZoneRedundancy.ENABLED")
    assert back.region_endpoint_enabled is True
    assert back.provisioning_state == "Succeeded" and back.status.display_status == "Ready"
    f = report.figures
    assert f["rto_succeeded_seconds"] is not None and f["rto_ready_seconds"] is not None
    assert f["rto_ready_seconds"] > f["rto_succeeded_seconds"]
    assert f["syncing_seconds"] >= 1.0  # type: ignore[operator]  # sync_seconds=3, minus detection delays
    assert [s.step for s in report.timeline] == ["delete", "recreate", "wait-succeeded", "wait-ready"]
    assert "Rebuild RTO to Ready" in artifact_text(f"georep-drill-report-{registry.name}")


# ------------------------------------------------------------------------------------------------- refusals


def _protect(client: ContainerRegistryManagementClient, reg: RegistryRef) -> None:
    client.replications.begin_update(
        reg.resource_group, reg.name, "westeurope", {"tags": {**TAGS, "georep-protected": "true"}}
    ).result()


def _no_other_healthy(client: ContainerRegistryManagementClient, reg: RegistryRef) -> None:
    set_endpoint(client, reg, "eastus", False)
    set_endpoint(client, reg, "northeurope", False)


@pytest.mark.parametrize(
    ("case", "params", "prepare", "field", "rule"),
    [
        ("home", {"targets": ["northeurope"]}, None, "targets[0]", "not_home"),
        ("missing", {"targets": ["japaneast"]}, None, "targets[0]", "exists"),
        ("protected", {"targets": ["westeurope"]}, _protect, "targets[0]", "protected"),
        ("no-other-healthy", {"targets": ["westeurope"]}, _no_other_healthy, "targets", "other_healthy_replica"),
        (
            "endpoint-disabled",
            {"targets": ["westeurope"]},
            lambda c, r: set_endpoint(c, r, "westeurope", False),
            "targets[0]",
            "endpoint_enabled",
        ),
        ("no-confirm", {"targets": ["westeurope"], "confirm": False}, None, "confirm", "required"),
        ("unknown-region", {"targets": ["Mars Central"]}, None, "targets[0]", "known_region"),
        ("no-targets", {"targets": []}, None, "targets", "required"),
    ],
)
def test_refusals_write_nothing(
    seeded: str,
    registry: RegistryRef,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    case: str,
    params: dict[str, Any],
    prepare: Any,
    field: str,
    rule: str,
) -> None:
    if prepare is not None:
        prepare(client, registry)
    since = cursor(control)
    state = drill(seeded, **{**real(), **params})
    assert state.is_failed(), case
    assert f"{field} [{rule}]" in str(state.message), state.message
    assert writes(control, registry, since) == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    assert get_journal().latest_for_run(str(state.state_details.flow_run_id)) is None


def test_dry_run_writes_nothing_and_publishes_the_steps(
    seeded: str, registry: RegistryRef, control: EmulatorControl
) -> None:
    since = cursor(control)
    state = dr_drill(DrillParams(plan_yaml=seeded, targets=["westeurope"], mode="rebuild"), return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, DrillReport)
    assert report.status == "dry-run" and report.dry_run
    assert [p["step"] for p in report.planned] == ["delete", "recreate", "wait-succeeded", "wait-ready"]
    assert writes(control, registry, since) == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    assert "wait-ready" in artifact_text(f"georep-drill-plan-{registry.name}")


# -------------------------------------------------------------------------------------------------- restores


def test_failover_verification_failure_is_restored_by_the_flow(
    seeded: str, registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    # eastus answers its pre-check GET, then vanishes (404) when the drill verifies the remaining replicas
    control.add_fault(
        "status", method="GET", path=f"{registry.name}/replications/eastus$", status=404, skip=1, count=None
    )
    state = drill(seeded, targets=["westeurope"], hold_seconds=0.2, **real())
    control.clear_faults()
    assert state.is_failed()
    assert "verification failed" in str(state.message) and "eastus (gone)" in str(state.message)
    assert "restore: restored by the flow (finally)" in str(state.message)
    assert endpoint(client, registry, "westeurope")
    entry = get_journal().latest_for_run(str(state.state_details.flow_run_id))
    assert entry is not None and entry.restore == "restored" and entry.restore_by == "the flow (finally)"
    assert "regionEndpointEnabled set back to true" in (entry.restore_detail or "")
    md = artifact_text(f"georep-drill-report-{registry.name}")
    assert "Drill failed" in md and "Restored by the flow (finally)" in md


def test_failover_restore_fault_is_finished_by_the_on_failure_hook(
    seeded: str, registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    # the disable PATCH passes; the drill's own PATCH back and the finally restore are refused; the hook's works
    control.add_fault(
        "status", method="PATCH", path=f"{registry.name}/replications/westeurope$", status=403,
        code="AuthorizationFailed", skip=1, count=2,
    )  # fmt: skip
    state = drill(seeded, targets=["westeurope"], hold_seconds=0.1, **real())
    assert state.is_failed()
    assert endpoint(client, registry, "westeurope")
    entry = get_journal().latest_for_run(str(state.state_details.flow_run_id))
    assert entry is not None and entry.restore == "restored" and entry.restore_by == "on_failure hook"
    report = DrillReport.model_validate_json(entry.report or "")
    assert report.status == "failed" and report.restore_by == "on_failure hook"
    assert "Restored by on_failure hook" in artifact_text(f"georep-drill-report-{registry.name}")


def test_rebuild_failed_recreate_is_replaced_by_the_restore(
    seeded: str, registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    control.add_fault("lro_fail", method="PUT", path=f"{registry.name}/replications/westeurope$", count=1)
    since = cursor(control)
    state = drill(seeded, targets=["westeurope"], mode="rebuild", **real())
    assert state.is_failed()
    assert "ReplicationProvisioningFailed" in str(state.message)
    back = client.replications.get(registry.resource_group, registry.name, "westeurope")
    assert back.provisioning_state == "Succeeded" and back.tags == TAGS
    entry = get_journal().latest_for_run(str(state.state_details.flow_run_id))
    assert entry is not None and entry.restore == "restored" and entry.restore_by == "the flow (finally)"
    assert "Failed replica replaced" in (entry.restore_detail or "")
    w = writes(control, registry, since)
    assert w["DELETE"] == 2 and w["PUT"] == 2  # drill delete + failed PUT, then the restore's delete + PUT
    assert "Restored by the flow (finally)" in artifact_text(f"georep-drill-report-{registry.name}")


def test_deadline_stops_the_hold_and_restores(
    seeded: str, registry: RegistryRef, client: ContainerRegistryManagementClient
) -> None:
    started = time.monotonic()
    state = drill(seeded, targets=["westeurope"], hold_seconds=30, max_duration_seconds=1.5, **real())
    assert time.monotonic() - started < 15
    assert state.is_failed() and "max_duration_seconds" in str(state.message)
    assert endpoint(client, registry, "westeurope")


def test_cancellation_hook_restores_from_the_journal(
    seeded: str, registry: RegistryRef, client: ContainerRegistryManagementClient
) -> None:
    """A cancelled run's process is killed before any finally; the runner then calls on_cancellation hooks with
    the flow run only. Simulate exactly that: a journal written before a disable PATCH, and no restore."""
    from georep.inventory import observe
    from georep.model import RegistryRef as Ref
    from georep.retry import RetryPolicy

    ref = Ref(subscription_id=registry.subscription, resource_group=registry.resource_group, name=registry.name)
    info, observed = observe(client, ref, RetryPolicy())
    run_id = str(uuid.uuid4())
    journal = get_journal()
    entry = DrillEntry(
        drill_id="c" + registry.name[-10:], registry=str(ref), ref=ref, home=info.home, targets=["westeurope"],
        mode="failover", originals=observed, run_id=run_id, writes=["disable:westeurope"], restore="pending",
    )  # fmt: skip
    journal.save(entry)
    set_endpoint(client, registry, "westeurope", False)
    restore_hook(dr_drill, types.SimpleNamespace(id=run_id), Cancelled())  # type: ignore[arg-type]
    assert endpoint(client, registry, "westeurope")
    after = journal.latest_for_run(run_id)
    assert after is not None and after.restore == "restored" and after.restore_by == "on_cancellation hook"
    # the hook runs outside the run (in the worker), yet its report is on the cancelled run's page
    with get_client(sync_client=True) as prefect:
        reports = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifacts.key("drill-report", ref)]))
        )
    assert [str(a.flow_run_id) for a in reports] == [run_id]
    assert "on_cancellation hook" in str(reports[0].data)
    restore_hook(dr_drill, types.SimpleNamespace(id=run_id), Cancelled())  # type: ignore[arg-type]  # idempotent


# --------------------------------------------------------------------------------------- one drill at a time


def test_second_concurrent_drill_on_the_registry_is_refused(
    seeded: str, registry: RegistryRef, control: EmulatorControl, client: ContainerRegistryManagementClient
) -> None:
    first: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: first.update(state=drill(seeded, targets=["westeurope"], hold_seconds=6, **real()))
    )
    runner.start()
    try:
        for _ in range(200):
            if not endpoint(client, registry, "westeurope"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first drill never disabled westeurope")
        since = cursor(control)
        started = time.monotonic()
        second = drill(seeded, targets=["eastus"], hold_seconds=0.1, **real())
        assert time.monotonic() - started < 10
        assert second.is_failed() and "another georep run is changing registry" in str(second.message)
        assert not any(r["replication"] == "eastus" for r in control.requests(since_id=since, method="PATCH"))
    finally:
        runner.join(60)
    assert first["state"].is_completed(), first["state"].message
    assert endpoint(client, registry, "westeurope") and endpoint(client, registry, "eastus")


def test_same_drill_id_replays_the_finished_drill(seeded: str, registry: RegistryRef, control: EmulatorControl) -> None:
    first = drill(seeded, targets=["westeurope"], hold_seconds=0.1, drill_id="week-12", **real())
    assert first.is_completed(), first.message
    since = cursor(control)
    again = drill(seeded, targets=["West Europe"], hold_seconds=0.1, drill_id="week-12", **real())
    assert again.is_completed(), again.message
    replay: DrillReport = again.result()
    assert replay.replayed and replay.drill_id == first.result().drill_id
    assert writes(control, registry, since) == {"PUT": 0, "PATCH": 0, "DELETE": 0}


# ------------------------------------------------------------------------------------------------- params


def test_presets_fill_fields_not_given() -> None:
    weekly = DrillParams(preset="weekly-failover")
    assert weekly.targets == ["westeurope"] and weekly.mode == "failover" and weekly.hold_seconds == 120
    assert weekly.dry_run is False and weekly.confirm is True
    assert DrillParams(preset="weekly-failover", hold_seconds=1, dry_run=True).hold_seconds == 1
    rebuild = DrillParams(preset="rebuild-southeastasia")
    assert rebuild.mode == "rebuild" and rebuild.targets == ["southeastasia"] and rebuild.dry_run is True
    assert DrillParams().dry_run is True and DrillParams().confirm is False
    assert DrillParams(targets=["West Europe", "westeurope", "East US"]).targets == ["westeurope", "eastus"]
    with pytest.raises(ValidationError, match=r"no nope\.yaml"):
        DrillParams(preset="nope")
    with pytest.raises(ValidationError, match="not a path"):
        DrillParams(preset="../plans/global")
