"""The status report flow under the session harness, against the emulator through the real SDK. Events are
captured with Prefect's own AssertingEventsClient (prefect.testing.fixtures.asserting_events_worker)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from prefect.artifacts import Artifact
from prefect.events import Event
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401  (fixture)

from flows.params import StatusParams
from flows.status_report import status_report
from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef
from tests.flows.test_global_rollout import plan_yaml, writes

NONE = {"PUT": 0, "PATCH": 0, "DELETE": 0}


def ours(worker: EventsWorker) -> list[Event]:
    """The georep events the flow sent (the worker also carries Prefect's own task-run events)."""
    worker.wait_until_empty()
    client = worker._client
    assert isinstance(client, AssertingEventsClient)
    return [e for e in client.events if e.event.startswith("georep.")]


def by_region(events: list[Event], name: str) -> dict[str, Event]:
    return {e.resource["region"]: e for e in events if e.event == name}


def rows(key: str) -> dict[str, dict[str, Any]]:
    artifact: Any = Artifact.get(key)
    assert artifact is not None
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["region"]: row for row in data}


def only_registry(reg: RegistryRef, **kw: Any) -> StatusParams:
    return StatusParams(
        plan_path=None, subscription_id=reg.subscription, resource_group=reg.resource_group, name=reg.name, **kw
    )


def test_drift_against_a_plan_is_listed_and_emitted(
    registry: RegistryRef,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    rg, name = registry.resource_group, registry.name
    client.replications.begin_create(rg, name, "westus2", {"location": "westus2", "tags": {"env": "dev"}}).result()
    client.replications.begin_create(
        rg, name, "westeurope", {"location": "westeurope", "tags": {"env": "prod"}}
    ).result()
    before = writes(control, registry)
    plan = plan_yaml(registry, "defaults: {tags: {env: prod}}\nregions: [westus2, westeurope, eastus]\n")

    state = status_report(StatusParams(plan_yaml=plan), return_state=True)
    assert state.is_completed(), state.message
    report: Any = state.result()
    assert report["unhealthy"] == [] and report["drift"] == ["eastus", "westus2"]
    assert writes(control, registry) == before  # a report never writes

    drift = rows(f"georep-drift-{name}")
    assert drift["westus2"]["action"] == "update" and drift["westus2"]["changes"] == "tags.env: dev → prod"
    assert drift["eastus"]["action"] == "create"
    health = rows(f"georep-health-{name}")
    assert sorted(health) == ["northeurope", "westeurope", "westus2"]
    assert health["northeurope"]["home"] == "yes" and health["westus2"]["tags"] == "env=dev"
    assert health["westus2"]["health"] in ("ready", "syncing")
    assert Artifact.get(f"georep-status-{name}") is not None
    assert Artifact.get(f"georep-status-progress-{name}") is not None

    events = by_region(ours(asserting_events_worker), "georep.replica.drift")
    assert sorted(events) == ["eastus", "westus2"]
    west = events["westus2"]
    assert west.resource.id == f"azure.acr.{name}.replication.westus2"
    assert (west.resource["registry"], west.resource["state"]) == (name, "Succeeded")
    assert west.payload["changes"] == ["tags.env: dev → prod"]
    assert events["eastus"].resource["state"] == "absent"
    assert not by_region(ours(asserting_events_worker), "georep.replica.unhealthy")


def test_a_failed_replica_is_unhealthy_and_can_fail_the_run(
    registry: RegistryRef,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    rg, name = registry.resource_group, registry.name
    client.replications.begin_create(rg, name, "westus2", {"location": "westus2"}).result()
    control.add_fault("lro_fail", method="PUT", path=f"{name}/replications/uksouth$")
    with contextlib.suppress(HttpResponseError):
        client.replications.begin_create(rg, name, "uksouth", {"location": "uksouth"}).result()

    state = status_report(only_registry(registry), return_state=True)
    assert state.is_completed(), state.message  # unhealthy is reported, not fatal, by default
    report: Any = state.result()
    assert report["unhealthy"] == ["uksouth"] and report["drift"] is None
    health = rows(f"georep-health-{name}")
    assert (health["uksouth"]["health"], health["uksouth"]["provisioningState"]) == ("failed", "Failed")
    assert Artifact.get(f"georep-drift-{name}") is None  # no plan, no drift table

    events = by_region(ours(asserting_events_worker), "georep.replica.unhealthy")
    assert sorted(events) == ["uksouth"]
    event = events["uksouth"]
    assert event.resource.id == f"azure.acr.{name}.replication.uksouth"
    assert (event.resource["registry"], event.resource["region"], event.resource["state"]) == (
        name,
        "uksouth",
        "Failed",
    )
    assert event.payload["health"] == "failed"
    assert any(r.role == "flow-run" for r in event.related)

    failing = status_report(only_registry(registry, fail_on_unhealthy=True), return_state=True)
    assert failing.is_failed() and "uksouth (failed)" in str(failing.message)


def test_unknown_registry_is_a_clear_error(registry: RegistryRef) -> None:
    missing = RegistryRef(registry.subscription, registry.resource_group, "nosuchregistry", registry.home)
    state = status_report(only_registry(missing), return_state=True)
    assert state.is_failed() and "not found" in str(state.result(raise_on_failure=False))


def test_default_parameters_report_on_the_demo_plan(project_dir: Any) -> None:
    ref, plan = StatusParams().resolve(project_dir)
    assert plan is not None and ref.name == "georepdemo"
