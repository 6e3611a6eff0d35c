"""georep.health: replica health, drift against a plan and the events they become; pure, table-driven."""

from __future__ import annotations

import pytest

from georep import health
from georep.health import Level
from georep.model import ObservedReplica, RegistryInfo, RegistryRef
from georep.plan import diff, load_plan

REF = RegistryRef(subscription_id="6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21", resource_group="rg", name="GeoRepDemo")


def obs(region: str, state: str = "Succeeded", display: str | None = "Ready", **kw: object) -> ObservedReplica:
    return ObservedReplica(name=region, region=region, provisioning_state=state, display_status=display, **kw)


@pytest.mark.parametrize(
    ("state", "display", "level", "healthy"),
    [
        ("Succeeded", "Ready", Level.READY, True),
        ("succeeded", "ready", Level.READY, True),
        ("Succeeded", "Syncing", Level.SYNCING, True),  # healthy, not ready: data still copying
        ("Succeeded", None, Level.DEGRADED, False),
        ("Succeeded", "Provisioning", Level.DEGRADED, False),
        ("Succeeded", "not online", Level.DEGRADED, False),
        ("Failed", "not online", Level.FAILED, False),
        ("Canceled", None, Level.FAILED, False),
        ("Creating", "Provisioning", Level.TRANSITIONING, False),
        ("Updating", "Ready", Level.TRANSITIONING, False),
        ("Deleting", None, Level.TRANSITIONING, False),
        ("Migrating", "Ready", Level.DEGRADED, False),
    ],
)
def test_classify(state: str, display: str | None, level: Level, healthy: bool) -> None:
    got = health.classify(obs("westus2", state, display))
    assert (got.level, got.healthy) == (level, healthy)
    assert got.reason


def test_summary_lists_unhealthy_and_drift() -> None:
    checked = health.classify_all(
        [obs("westus2"), obs("eastus", "Failed", "not online"), obs("uksouth", "Succeeded", "Syncing")]
    )
    assert [h.region for h in checked] == ["eastus", "uksouth", "westus2"]
    text = health.summary(checked, None)
    assert "1 unhealthy" in text and "`eastus`" in text and "Drift" not in text
    assert "(in sync)" in health.summary(checked, [])


PLAN = """
registry: {subscription_id: 6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21, resource_group: rg, name: GeoRepDemo}
defaults: {tags: {env: prod}}
regions:
  - westus2
  - {region: eastus, zone_redundancy: true}
  - westeurope
  - japaneast
"""


def test_drift_is_what_the_diff_would_write() -> None:
    plan = load_plan(PLAN)
    info = RegistryInfo(ref=REF, home="northeurope", sku="Premium")
    observed = [
        obs("northeurope", is_home=True),
        obs("westus2", tags={"env": "prod"}),  # in sync
        obs("eastus", tags={"env": "prod"}),  # zone redundancy differs: create-only, left alone, not drift
        obs("westeurope", tags={"env": "dev"}),  # tag drift
        obs("uksouth"),  # outside the plan, prune off: not drift
        # japaneast missing: drift (create)
    ]
    drifted = {d.region: d for d in health.drift(diff(plan, info, observed))}
    assert sorted(drifted) == ["japaneast", "westeurope"]
    assert drifted["westeurope"].action == "update" and drifted["westeurope"].changes == ("tags.env: dev → prod",)
    assert drifted["westeurope"].state == "Succeeded"
    assert drifted["japaneast"].action == "create" and drifted["japaneast"].state == "absent"


def test_failed_replica_in_the_plan_is_drift_too() -> None:
    plan = load_plan(PLAN)
    info = RegistryInfo(ref=REF, home="northeurope", sku="Premium")
    observed = [obs(r, tags={"env": "prod"}) for r in ("westus2", "westeurope", "japaneast")]
    observed.append(obs("eastus", "Failed", "not online", tags={"env": "prod"}, zone_redundancy=True))
    drifted = health.drift(diff(plan, info, observed))
    assert [(d.region, d.action, d.state) for d in drifted] == [("eastus", "recreate", "Failed")]


def test_events_shape() -> None:
    checked = health.classify_all(
        [obs("westus2"), obs("eastus", "Failed", "not online"), obs("uksouth", "Succeeded", "Syncing")]
    )
    events = health.unhealthy_events(REF, checked)
    assert len(events) == 1
    event = events[0]
    assert event.event == "georep.replica.unhealthy"
    assert event.resource == {
        "prefect.resource.id": "azure.acr.georepdemo.replication.eastus",
        "prefect.resource.name": "GeoRepDemo/eastus",
        "registry": "GeoRepDemo",
        "region": "eastus",
        "state": "Failed",
    }
    assert event.payload["health"] == "failed" and event.payload["displayStatus"] == "not online"

    drifted = [
        health.Drift(
            region="japaneast",
            replication="japaneast",
            action="create",
            reason="no replica",
            changes=("tags.env: prod",),
            state="absent",
        )
    ]
    (d,) = health.drift_events(REF, drifted, "abc123")
    assert d.event == "georep.replica.drift"
    assert d.resource["prefect.resource.id"] == "azure.acr.georepdemo.replication.japaneast"
    assert d.resource["state"] == "absent"
    assert d.payload["changes"] == ["tags.env: prod"] and d.payload["plan_hash"] == "abc123"


def test_rows_have_the_report_columns() -> None:
    (row,) = health.health_rows(
        [health.classify(obs("northeurope", is_home=True, tags={"b": "2", "a": "1"}, region_endpoint_enabled=False))]
    )
    assert tuple(row) == health.HEALTH_COLUMNS
    assert (row["endpoint"], row["zoneRedundancy"], row["tags"], row["home"]) == (
        "disabled",
        "Disabled",
        "a=1, b=2",
        "yes",
    )
