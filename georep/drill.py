"""DR drills, the part without Prefect: the pre-checks, the actions a drill sends, the report and the restore.

A drill proves that a registry survives losing a region: ``failover`` takes target replicas out of global
routing (``regionEndpointEnabled=false``: data keeps syncing, clients are routed elsewhere) and puts them back;
``rebuild`` deletes a target replica and re-creates it with the configuration it had, measuring the recovery
time (Succeeded, then Ready once Syncing ends). Every refusal happens before the first write, and the restore
works from the journal (``georep.journal``), never from the degraded registry, so it can run in a hook or in a
later process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from georep import inventory, regions
from georep.journal import RESTORE_DONE, RESTORE_FAILED, DrillEntry, DrillJournal
from georep.lro import Engine
from georep.model import Action, ActionKind, ObservedReplica, RegionOutcome, RegistryInfo, ReplicaSpec, Result
from georep.validation import Problem

Mode = Literal["failover", "rebuild"]
TRANSITIONAL = frozenset({"creating", "updating", "deleting"})


# ------------------------------------------------------------------------------------------------ pre-checks


def normalize_targets(targets: Sequence[str]) -> list[str]:
    """Programmatic names, de-duplicated, in the order given ("West Europe" and "westeurope" are one target)."""
    out: list[str] = []
    for target in targets:
        name = regions.normalize(target)
        if name and name not in out:
            out.append(name)
    return out


def check_params(targets: Sequence[str], dry_run: bool, confirm: bool) -> list[Problem]:
    """The rules that need no registry read: they are checked before the registry is even observed."""
    problems: list[Problem] = []
    if not targets:
        problems.append(Problem("targets", "required", "name at least one region to drill"))
    for i, target in enumerate(targets):
        if not regions.is_known(target):
            problems.append(Problem(f"targets[{i}]", "known_region", f"'{target}' is not an Azure region"))
    if not dry_run and not confirm:
        problems.append(
            Problem(
                "confirm",
                "required",
                "a real drill (dry_run=false) takes live replicas out of service: pass confirm=true, "
                "or run with dry_run=true first",
            )
        )
    return problems


def healthy(replica: ObservedReplica, require_ready: bool) -> bool:
    """Serving clients: provisioned, in global routing, and (unless waived) done syncing."""
    return (
        replica.provisioning_state.lower() == "succeeded"
        and replica.region_endpoint_enabled
        and (not require_ready or (replica.display_status or "").lower() == "ready")
    )


def check_targets(
    targets: Sequence[str],
    mode: Mode,
    info: RegistryInfo,
    observed: Sequence[ObservedReplica],
    protection_tag: str,
    require_ready: bool,
) -> list[Problem]:
    """The rules that need what ``observe`` read. A drill must never be the outage it rehearses: the home replica
    is out of bounds (it cannot be deleted, and it is the registry's anchor), protected replicas are out of bounds,
    and at least one *other* replica must be serving while the targets are out."""
    problems: list[Problem] = []
    by_region = {o.region: o for o in observed}
    home = regions.normalize(info.home)
    for i, target in enumerate(targets):
        at = f"targets[{i}]"
        replica = by_region.get(target)
        if target == home:
            problems.append(Problem(at, "not_home", f"'{target}' is the home region: its replica cannot be drilled"))
            continue
        if replica is None:
            problems.append(Problem(at, "exists", f"the registry has no replica in '{target}'"))
            continue
        if replica.provisioning_state.lower() != "succeeded":
            problems.append(
                Problem(
                    at,
                    "succeeded",
                    f"the replica in '{target}' is {replica.provisioning_state}: only a Succeeded replica is drilled",
                )
            )
        if replica.tags.get(protection_tag, "").lower() == "true":
            problems.append(
                Problem(at, "protected", f"the replica in '{target}' carries the tag {protection_tag}=true")
            )
        if mode == "failover" and not replica.region_endpoint_enabled:
            problems.append(
                Problem(
                    at,
                    "endpoint_enabled",
                    f"the replica in '{target}' is already out of global routing (regionEndpointEnabled=false): "
                    "there is nothing to fail over",
                )
            )
    others = [o for o in observed if o.region not in targets]
    if targets and not any(healthy(o, require_ready) for o in others):
        need = "Succeeded, Ready and in routing" if require_ready else "Succeeded and in routing"
        problems.append(
            Problem(
                "targets",
                "other_healthy_replica",
                f"no replica outside the targets is {need} ({', '.join(o.region for o in others) or 'none'}): "
                "the drill would be an outage",
            )
        )
    return problems


# ------------------------------------------------------------------------------------------------- actions


def spec_of(replica: ObservedReplica, *, endpoint: bool | None = None) -> ReplicaSpec:
    """The replica as observed, as a desired spec: a rebuild re-creates exactly this, an endpoint change PATCHes
    only the flag and re-sends the tags it has."""
    return ReplicaSpec(
        region=replica.region,
        name=replica.name,
        zone_redundancy=replica.zone_redundancy,
        region_endpoint_enabled=replica.region_endpoint_enabled if endpoint is None else endpoint,
        region_endpoint_explicit=True,
        tags=dict(replica.tags),
    )


def endpoint_action(replica: ObservedReplica, enabled: bool, reason: str) -> Action:
    return Action(
        region=replica.region,
        replication=replica.name,
        kind=ActionKind.UPDATE,
        reason=reason,
        desired=spec_of(replica, endpoint=enabled),
        observed=replica,
        changes=(f"regionEndpointEnabled: {replica.region_endpoint_enabled} -> {enabled}",),
    )


def delete_action(replica: ObservedReplica, reason: str) -> Action:
    return Action(
        region=replica.region, replication=replica.name, kind=ActionKind.DELETE, reason=reason, observed=replica
    )


def create_action(original: ObservedReplica, reason: str, kind: ActionKind = ActionKind.CREATE) -> Action:
    return Action(
        region=original.region,
        replication=original.name,
        kind=kind,
        reason=reason,
        desired=spec_of(original),
    )


def planned_steps(mode: Mode, targets: Sequence[ObservedReplica], hold_seconds: float) -> list[dict[str, str]]:
    """The plan of a drill as rows for the plan artifact (a dry run publishes this and stops)."""
    rows: list[dict[str, str]] = []

    def add(step: str, region: str, what: str) -> None:
        rows.append({"step": step, "region": region, "what": what})

    if mode == "failover":
        for t in targets:
            add("disable-endpoint", t.region, f"PATCH {t.name}: regionEndpointEnabled true -> false")
        add("verify", "*", "the remaining replicas are Succeeded and Ready (GET each)")
        add("hold", "*", f"keep routing away for {hold_seconds:g} s")
        for t in targets:
            add("restore-endpoint", t.region, f"PATCH {t.name}: regionEndpointEnabled false -> true")
    else:
        for t in targets:
            config = (
                f"zoneRedundancy={'Enabled' if t.zone_redundancy else 'Disabled'}, "
                f"regionEndpointEnabled={str(t.region_endpoint_enabled).lower()}, tags={dict(sorted(t.tags.items()))}"
            )
            add("delete", t.region, f"DELETE {t.name}, then wait for consistent 404s")
            add("recreate", t.region, f"PUT {t.name} with its original configuration ({config})")
            add("wait-succeeded", t.region, "poll until provisioningState Succeeded")
            add("wait-ready", t.region, "poll until displayStatus Ready (Syncing ends)")
    return rows


# -------------------------------------------------------------------------------------------------- report


class Step(BaseModel):
    step: str
    start: float
    end: float
    detail: str = ""

    @property
    def seconds(self) -> float:
        return round(self.end - self.start, 3)


class DrillReport(BaseModel):
    """What a drill did and measured; the flow's return value and what an idempotent replay returns."""

    drill_id: str
    registry: str
    mode: Mode
    targets: list[str]
    dry_run: bool
    status: Literal["completed", "failed", "dry-run"]
    replayed: bool = False
    figures: dict[str, float | None] = Field(default_factory=dict)
    timeline: list[Step] = Field(default_factory=list)
    outcomes: list[RegionOutcome] = Field(default_factory=list)
    restore: str = "not-needed"
    restore_by: str | None = None
    restore_detail: str | None = None
    error: str | None = None
    planned: list[dict[str, str]] = Field(default_factory=list)


FIGURE_LABELS = {
    "time_to_failover_seconds": "Time to failover (first PATCH sent → last target out of routing)",
    "verify_seconds": "Verification of the remaining replicas",
    "hold_seconds": "Hold (routing away from the targets)",
    "time_to_restore_seconds": "Time to restore (first PATCH back sent → last target in routing)",
    "delete_seconds": "Delete (DELETE sent → consistent 404s)",
    "rto_succeeded_seconds": "Rebuild RTO to Succeeded (DELETE sent → provisioningState Succeeded)",
    "rto_ready_seconds": "Rebuild RTO to Ready (DELETE sent → displayStatus Ready)",
    "syncing_seconds": "Syncing (Succeeded → Ready)",
    "total_seconds": "Whole drill",
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


def timeline_rows(report: DrillReport) -> list[dict[str, Any]]:
    return [
        {"step": s.step, "start": _iso(s.start), "end": _iso(s.end), "seconds": s.seconds, "detail": s.detail}
        for s in report.timeline
    ]


def restore_sentence(report: DrillReport) -> str:
    if report.restore == "not-needed":
        return "No restore was needed (nothing was left changed)."
    if report.restore == RESTORE_DONE:
        return f"Restored by {report.restore_by}: {report.restore_detail}"
    return f"**Restore {report.restore}** ({report.restore_by or 'nobody yet'}): {report.restore_detail}"


def markdown(report: DrillReport) -> str:
    head = "dry run" if report.dry_run else report.status.upper()
    lines = [
        f"# DR drill ({report.mode}) of {', '.join(report.targets)} on {report.registry}: {head}",
        "",
        f"Drill id `{report.drill_id}`"
        + (" (replayed: an earlier run with the same key did it)" if report.replayed else ""),
        "",
    ]
    if report.error:
        lines += [f"**Drill failed:** {report.error}", ""]
    if report.figures:
        lines += ["| figure | seconds |", "|---|---|"]
        for name, value in report.figures.items():
            lines.append(f"| {FIGURE_LABELS.get(name, name)} | {'n/a' if value is None else f'{value:.2f}'} |")
        lines.append("")
    lines += ["## Restore", "", restore_sentence(report), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- restore


def restore(engine: Engine, journal: DrillJournal, entry: DrillEntry, by: str) -> DrillEntry:
    """Put every target back as the journal says it was, reading the registry first so it is safe to run twice
    and from any process. Records the result (and who did it) in the journal and returns the entry."""
    details: list[str] = []
    errors: list[str] = []
    for region in entry.targets:
        original = entry.original(region)
        if original is None or not any(w.endswith(f":{region}") for w in entry.writes):
            continue
        try:
            details.append(_restore_one(engine, entry, original, by))
        except Exception as exc:  # every target gets its chance; the error is recorded
            errors.append(f"{region}: {exc}")
    entry.restore_by = by
    if errors:
        entry.restore = RESTORE_FAILED
        entry.restore_detail = "; ".join(errors + details)
    else:
        entry.restore = RESTORE_DONE
        entry.restore_detail = "; ".join(details) or "nothing had changed"
    journal.save(entry)
    return entry


def _restore_one(engine: Engine, entry: DrillEntry, original: ObservedReplica, by: str) -> str:
    ref = entry.ref
    region = original.region
    did: list[str] = []
    for _ in range(4):  # at most: wait out a transition, recreate, fix the endpoint, confirm
        with engine.client(ref.subscription_id) as client:
            current = inventory.read_replica(client, ref, original.name, entry.home, engine.config.retry)
        state = current.provisioning_state.lower() if current else None
        if current is None and entry.mode == "failover":
            # a failover drill never deletes: a replica gone now was removed by someone else, not re-created here
            raise RuntimeError(f"{region}: the replica is gone; a failover restore does not re-create it")
        if current is None:
            action = create_action(original, f"drill {entry.drill_id} restore: re-create the missing replica")
        elif state == "failed":
            action = create_action(
                original, f"drill {entry.drill_id} restore: replace the Failed replica", ActionKind.RECREATE
            )
        elif state in TRANSITIONAL:
            action = Action(
                region=region,
                replication=original.name,
                kind=ActionKind.WAIT,
                reason="restore: wait out a transition",
                observed=current,
            )
        elif current.region_endpoint_enabled != original.region_endpoint_enabled:
            action = endpoint_action(
                current, original.region_endpoint_enabled, f"drill {entry.drill_id} restore: endpoint back"
            )
        else:
            return f"{region}: " + (", ".join(did) if did else "already as before the drill")
        # a fresh checkpoint key per attempt: a failed earlier restore must not be "resumed" into its failure
        key = f"drill-{entry.drill_id}-restore-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        outcome = engine.run(ref, key, action, run_id=entry.run_id, deadline_seconds=entry.restore_deadline)
        if outcome.result is Result.FAILED:
            raise RuntimeError(f"{action.kind.value} failed: {outcome.error_code}: {outcome.error_message}")
        if action.kind is not ActionKind.WAIT:
            what = {
                ActionKind.CREATE: "re-created with its original configuration",
                ActionKind.RECREATE: "Failed replica replaced with its original configuration",
                ActionKind.UPDATE: f"regionEndpointEnabled set back to {str(original.region_endpoint_enabled).lower()}",
            }[action.kind]
            did.append(f"{what} by {by} in {time.monotonic() - started:.1f} s")
    raise RuntimeError(f"{region}: still not as before the drill after several restore steps ({', '.join(did)})")
