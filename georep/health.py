"""Is a replica healthy, and does the registry still match its plan? Pure rules for the status report.

Health keeps "provisioned" apart from "synced", as ACR does: provisioningState says whether ARM finished the
replica, displayStatus whether it serves. The rule:

* **healthy** = provisioningState ``Succeeded`` and displayStatus ``Ready`` or ``Syncing``;
  ``Syncing`` is healthy but *not ready*: a new replica copies the registry's data for minutes to days
  (Azure/acr#716), which is expected, not an incident;
* **unhealthy** = anything else: ``Failed``/``Canceled`` (stays so until deleted and re-created),
  ``Creating``/``Updating``/``Deleting`` (not serving right now; a report taken during a rollout says so), or a
  ``Succeeded`` replica whose displayStatus is missing or something other than Ready/Syncing (it cannot be
  confirmed as serving).

Drift is what ``georep.plan.diff`` would *write*: every create, update, recreate, replace or delete is drift.
Differences the diff deliberately leaves alone (a create-only zone redundancy without ``allow_replace``, an
endpoint disabled on purpose, replicas outside the plan while prune is off) are not, so a status report and a
rollout never disagree about what "in sync with the plan" means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from georep.model import Action, ObservedReplica, RegistryRef

HEALTHY_DISPLAY = frozenset({"ready", "syncing"})
TRANSITIONAL = frozenset({"creating", "updating", "deleting"})
BROKEN = frozenset({"failed", "canceled"})


class Level(StrEnum):
    READY = "ready"
    SYNCING = "syncing"
    TRANSITIONING = "transitioning"
    FAILED = "failed"
    DEGRADED = "degraded"

    @property
    def healthy(self) -> bool:
        return self in (Level.READY, Level.SYNCING)


class Health(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    replication: str
    level: Level
    reason: str
    observed: ObservedReplica

    @property
    def healthy(self) -> bool:
        return self.level.healthy


class Drift(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    replication: str
    action: str
    reason: str
    changes: tuple[str, ...]
    #: provisioningState of the replica, or "absent" when the plan wants one that does not exist
    state: str


def classify(obs: ObservedReplica) -> Health:
    """One replica's health (see the module docstring for the rule)."""
    state = (obs.provisioning_state or "").strip()
    display = (obs.display_status or "").strip()

    def health(level: Level, reason: str) -> Health:
        return Health(region=obs.region, replication=obs.name, level=level, reason=reason, observed=obs)

    if state.lower() in BROKEN:
        return health(Level.FAILED, f"provisioningState is {state}: it stays so until deleted and re-created")
    if state.lower() in TRANSITIONAL:
        return health(Level.TRANSITIONING, f"provisioningState is {state}: not serving until it settles")
    if state.lower() != "succeeded":
        return health(Level.DEGRADED, f"unknown provisioningState '{state or '(none)'}'")
    if display.lower() == "ready":
        return health(Level.READY, "provisioned and ready")
    if display.lower() == "syncing":
        return health(Level.SYNCING, "provisioned, data still syncing (healthy, not ready yet)")
    return health(Level.DEGRADED, f"provisioned but displayStatus is '{display or '(none)'}', not Ready or Syncing")


def classify_all(observed: Sequence[ObservedReplica]) -> list[Health]:
    return [classify(o) for o in sorted(observed, key=lambda o: (o.region, o.name))]


def drift(actions: Sequence[Action]) -> list[Drift]:
    """The plan's actions that would write, as drift entries (region order kept)."""
    return [
        Drift(
            region=a.region,
            replication=a.replication,
            action=a.kind.value,
            reason=a.reason,
            changes=a.changes,
            state=a.observed.provisioning_state
            if a.observed is not None and a.observed.region == a.region
            else "absent",
        )
        for a in actions
        if a.kind.writes
    ]


# ------------------------------------------------------------------------------------------------ events

UNHEALTHY_EVENT = "georep.replica.unhealthy"
DRIFT_EVENT = "georep.replica.drift"


class EventSpec(BaseModel):
    """An event to emit, built here so its shape is unit-tested and the flow only sends it. The resource id is
    stable per replica location (``azure.acr.<registry>.replication.<region>``) so an automation can match one
    region or, with a ``*``, a whole registry."""

    model_config = ConfigDict(frozen=True)

    event: str
    resource: dict[str, str]
    payload: dict[str, Any]


def resource_id(registry: str, region: str) -> str:
    # ARM names are case-insensitive: one spelling, or an automation's match misses half the events
    return f"azure.acr.{registry.lower()}.replication.{region.lower()}"


def _resource(ref: RegistryRef, region: str, replication: str, state: str) -> dict[str, str]:
    return {
        "prefect.resource.id": resource_id(ref.name, region),
        "prefect.resource.name": f"{ref.name}/{replication}",
        "registry": ref.name,
        "region": region,
        "state": state,
    }


def unhealthy_events(ref: RegistryRef, items: Sequence[Health]) -> list[EventSpec]:
    return [
        EventSpec(
            event=UNHEALTHY_EVENT,
            resource=_resource(ref, h.region, h.replication, h.observed.provisioning_state),
            payload={
                "subscription_id": ref.subscription_id,
                "resource_group": ref.resource_group,
                "replication": h.replication,
                "health": h.level.value,
                "reason": h.reason,
                "provisioningState": h.observed.provisioning_state,
                "displayStatus": h.observed.display_status,
                "message": h.observed.status_message,
                "home": h.observed.is_home,
            },
        )
        for h in items
        if not h.healthy
    ]


def drift_events(ref: RegistryRef, drifted: Sequence[Drift], plan_hash: str) -> list[EventSpec]:
    return [
        EventSpec(
            event=DRIFT_EVENT,
            resource=_resource(ref, d.region, d.replication, d.state),
            payload={
                "subscription_id": ref.subscription_id,
                "resource_group": ref.resource_group,
                "replication": d.replication,
                "action": d.action,
                "changes": list(d.changes),
                "reason": d.reason,
                "plan_hash": plan_hash,
            },
        )
        for d in drifted
    ]


# ------------------------------------------------------------------------------------------------ report

HEALTH_COLUMNS = (
    "region",
    "replication",
    "health",
    "provisioningState",
    "displayStatus",
    "message",
    "endpoint",
    "zoneRedundancy",
    "tags",
    "home",
)
DRIFT_COLUMNS = ("region", "replication", "action", "changes", "reason")


def health_rows(items: Sequence[Health]) -> list[dict[str, Any]]:
    return [
        {
            "region": h.region,
            "replication": h.replication,
            "health": h.level.value,
            "provisioningState": h.observed.provisioning_state,
            "displayStatus": h.observed.display_status or "",
            "message": h.observed.status_message or "",
            "endpoint": "enabled" if h.observed.region_endpoint_enabled else "disabled",
            "zoneRedundancy": "Enabled" if h.observed.zone_redundancy else "Disabled",
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(h.observed.tags.items())),
            "home": "yes" if h.observed.is_home else "",
        }
        for h in items
    ]


def drift_rows(items: Sequence[Drift]) -> list[dict[str, Any]]:
    return [
        {
            "region": d.region,
            "replication": d.replication,
            "action": d.action,
            "changes": "; ".join(d.changes),
            "reason": d.reason,
        }
        for d in items
    ]


def summary(items: Sequence[Health], drifted: Sequence[Drift] | None) -> str:
    """A short markdown paragraph: health counts, each unhealthy replica, and the drift if a plan was given."""
    counts = Counter(h.level.value for h in items)
    unhealthy = [h for h in items if not h.healthy]
    lines = [
        f"**Health:** {len(items)} replicas; "
        + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none")
        + f"; {len(unhealthy)} unhealthy."
    ]
    if unhealthy:
        lines += ["", "**Unhealthy:**", ""]
        lines += [f"- `{h.region}` (`{h.replication}`): {h.reason}" for h in unhealthy]
    if drifted is not None:
        lines += ["", f"**Drift against the plan:** {len(drifted)} region(s)" + ("." if drifted else " (in sync).")]
        if drifted:
            lines.append("")
            for d in drifted:
                what = "; ".join(d.changes) or d.reason
                lines.append(f"- `{d.region}` ({d.action} `{d.replication}`): {what}")
    return "\n".join(lines) + "\n"
