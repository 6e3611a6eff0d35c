"""From a plan file and what ARM reports to an ordered list of actions, each with the reason a person reads.

``diff`` is pure (no client, no clock): the dry-run table, the apply and the tests all go through the same
decision, which is what the ARO-HCP reconciler lacked. Replicas are matched to regions by *location*, never by
name, and the rules err towards leaving things alone: the home replica is never rebuilt, zone redundancy alone
never triggers a replace, a disabled endpoint is never re-enabled implicitly, nothing outside the plan is deleted
unless the plan prunes, and a replica tagged with the protection tag is never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from georep import regions
from georep.model import Action, ActionKind, ObservedReplica, RegistryInfo, ReplicaSpec
from georep.planfile import (
    Defaults,
    Plan,
    RegionEntry,
    RegistrySection,
    budget_exhausted,
    desired,
    group_by_wave,
    load_plan,
    plan_hash,
    resolve_waves,
)
from georep.validation import PlanError, Problem

__all__ = [
    "Defaults",
    "Plan",
    "PlanError",
    "Problem",
    "RegionEntry",
    "RegistrySection",
    "budget_exhausted",
    "desired",
    "diff",
    "group_by_wave",
    "load_plan",
    "plan_hash",
    "resolve_waves",
]

TRANSITIONAL = frozenset({"creating", "updating", "deleting"})
BROKEN = frozenset({"failed", "canceled"})


# -------------------------------------------------------------------------------------------------- diff


def diff(plan: Plan, info: RegistryInfo, observed: Sequence[ObservedReplica]) -> list[Action]:
    """One action per region in (desired + observed), sorted by region. Pure: same inputs, same plan."""
    home = regions.normalize(info.home)
    entries = {regions.normalize(e.region): e for e in plan.regions}
    wants = {s.region: s for s in desired(plan)}
    found: dict[str, list[ObservedReplica]] = {}
    for seen in sorted(observed, key=lambda o: o.name.lower()):
        found.setdefault(regions.normalize(seen.region), []).append(seen)
    by_name = {o.name.lower(): o for o in observed}

    actions: dict[str, Action] = {}
    for region in sorted(set(wants) | set(found)):
        want = wants.get(region)
        obs = _pick(found.get(region, []), want)
        if region == home:
            actions[region] = _home(region, want, obs)
        elif want is None:
            assert obs is not None
            actions[region] = _unplanned(plan, region, obs)
        elif obs is None:
            actions[region] = _absent(plan, want, by_name, wants, home)
        else:
            actions[region] = _present(plan, want, entries[region].name is not None, obs)

    # a replace that takes over another region's replica (same name, elsewhere) owns that replica's delete
    for action in list(actions.values()):
        if action.kind is ActionKind.REPLACE and action.observed and action.observed.region != action.region:
            source = regions.normalize(action.observed.region)
            actions[source] = Action(
                region=source,
                replication=action.observed.name,
                kind=ActionKind.NOOP,
                reason=f"not in plan; replica '{action.observed.name}' is moved to {action.region} by its replace",
                observed=action.observed,
            )
    return [actions[r] for r in sorted(actions)]


def _pick(candidates: list[ObservedReplica], want: ReplicaSpec | None) -> ObservedReplica | None:
    """ARM keeps one replica per location; should two ever show up, prefer the one the plan names."""
    if want is not None:
        for obs in candidates:
            if obs.name.lower() == want.name.lower():
                return obs
    return candidates[0] if candidates else None


def _protected(plan: Plan, obs: ObservedReplica) -> bool:
    return obs.tags.get(plan.protection_tag, "").strip().lower() == "true"


def _state(obs: ObservedReplica) -> str:
    return obs.provisioning_state.strip().lower()


def _flag(value: bool | None) -> str:
    return "(unset)" if value is None else str(value).lower()


def _zr(value: bool) -> str:
    return "Enabled" if value else "Disabled"


def _patch(want: ReplicaSpec, obs: ObservedReplica) -> tuple[list[str], list[str], ReplicaSpec]:
    """What a PATCH would change, notes on what it deliberately leaves, and the PATCH as a spec.

    Tags merge (the replica keeps tags the plan does not mention: other tools and people own those). The endpoint
    only moves towards disabled unless the region entry itself says ``true``. The returned spec targets the
    observed replica's name and carries ``region_endpoint_enabled=None`` when the endpoint is left alone, so the
    PATCH never rewrites a value someone may change between plan and apply.
    """
    changes = [
        f"tags.{key}: {obs.tags.get(key, '(none)')} → {value}"
        for key, value in sorted(want.tags.items())
        if obs.tags.get(key) != value
    ]
    notes: list[str] = []
    endpoint: bool | None = None
    if want.region_endpoint_enabled is False and obs.region_endpoint_enabled:
        endpoint = False
    elif want.region_endpoint_enabled is True and not obs.region_endpoint_enabled:
        if want.region_endpoint_explicit:
            endpoint = True
        else:
            notes.append(
                "regionEndpointEnabled is false on the replica and is not re-enabled implicitly "
                "(set region_endpoint_enabled: true on the region to re-enable it)"
            )
    if endpoint is not None:
        changes.append(f"regionEndpointEnabled: {_flag(obs.region_endpoint_enabled)} → {_flag(endpoint)}")
    spec = ReplicaSpec(
        region=want.region,
        name=obs.name,
        zone_redundancy=obs.zone_redundancy,
        region_endpoint_enabled=endpoint,
        region_endpoint_explicit=want.region_endpoint_explicit,
        tags={**obs.tags, **want.tags},
    )
    return changes, notes, spec


def _rebuild(want: ReplicaSpec, obs: ObservedReplica) -> ReplicaSpec:
    """The create half of a recreate or replace: the plan's spec, keeping the old replica's extra tags and a
    deliberately disabled endpoint (a rebuild must not quietly put a region back into routing)."""
    endpoint = want.region_endpoint_enabled
    if not want.region_endpoint_explicit and endpoint is not False:
        endpoint = obs.region_endpoint_enabled
    return want.model_copy(update={"tags": {**obs.tags, **want.tags}, "region_endpoint_enabled": endpoint})


def _home(region: str, want: ReplicaSpec | None, obs: ObservedReplica | None) -> Action:
    def skip(reason: str) -> Action:
        name = obs.name if obs else (want.name if want else region)
        return Action(region=region, replication=name, kind=ActionKind.SKIP_HOME, reason=reason, observed=obs)

    if want is None:
        return skip("home region: its replica comes and goes with the registry; never deleted")
    if obs is None:
        return skip("home region: replica not observed (ARM creates it with the registry)")
    changes, notes, spec = _patch(want, obs)
    if _state(obs) in BROKEN:
        return skip(f"home region: replica is {obs.provisioning_state}; georep never rebuilds the home replica")
    if not changes:
        return skip("; ".join(["home region: tags and endpoint match (only those are managed here)", *notes]))
    if _state(obs) != "succeeded":
        kind, reason = ActionKind.WAIT, f"home region: replica is {obs.provisioning_state}; update when it settles"
    else:
        kind, reason = ActionKind.UPDATE, "home region: only tags and endpoint can be updated"
    return Action(
        region=region,
        replication=obs.name,
        kind=kind,
        reason="; ".join([reason, *notes]),
        desired=spec,
        observed=obs,
        changes=tuple(changes),
    )


def _unplanned(plan: Plan, region: str, obs: ObservedReplica) -> Action:
    def act(kind: ActionKind, reason: str) -> Action:
        return Action(region=region, replication=obs.name, kind=kind, reason=reason, observed=obs)

    if _state(obs) in TRANSITIONAL:
        return act(ActionKind.WAIT, f"not in plan; replica is {obs.provisioning_state}")
    if _protected(plan, obs):
        return act(ActionKind.NOOP, f"not in plan; protected ({plan.protection_tag}=true)")
    if plan.prune:
        return act(ActionKind.DELETE, "not in plan (prune is on)")
    return act(ActionKind.NOOP, "not in plan (prune is off)")


def _absent(
    plan: Plan, want: ReplicaSpec, by_name: dict[str, ObservedReplica], wants: dict[str, ReplicaSpec], home: str
) -> Action:
    holder = by_name.get(want.name.lower())
    if holder is None:
        changes = [
            f"zoneRedundancy: {_zr(want.zone_redundancy)}",
            f"regionEndpointEnabled: {_flag(want.region_endpoint_enabled)}",
            *(f"tags.{k}: {v}" for k, v in sorted(want.tags.items())),
        ]
        return Action(
            region=want.region,
            replication=want.name,
            kind=ActionKind.CREATE,
            reason=f"no replica in {want.region}",
            desired=want,
            changes=tuple(changes),
        )
    # the name is taken by a replica elsewhere: location is create-only, so only a delete + create frees it
    where = regions.normalize(holder.region)

    def leave(kind: ActionKind, reason: str) -> Action:
        return Action(
            region=want.region,
            replication=want.name,
            kind=kind,
            reason=f"no replica in {want.region}, but the name '{holder.name}' is used by the replica in {where}; "
            + reason,
            desired=want,
            observed=holder,
        )

    if where == home:
        return leave(ActionKind.NOOP, "that is the home replica: choose another name")
    if where in wants:
        return leave(ActionKind.NOOP, f"{where} is also in the plan: give the two regions distinct names")
    if _state(holder) in TRANSITIONAL:
        return leave(ActionKind.WAIT, f"it is {holder.provisioning_state}")
    if _protected(plan, holder):
        return leave(ActionKind.NOOP, f"it is protected ({plan.protection_tag}=true)")
    if not plan.allow_replace:
        return leave(ActionKind.NOOP, "replace not allowed by the plan (location is create-only)")
    return Action(
        region=want.region,
        replication=holder.name,
        kind=ActionKind.REPLACE,
        reason=f"replica '{holder.name}' is in {where}; location is create-only: delete it and create it here",
        desired=_rebuild(want, holder),
        observed=holder,
        changes=(f"location: {where} → {want.region}",),
    )


def _present(plan: Plan, want: ReplicaSpec, name_explicit: bool, obs: ObservedReplica) -> Action:
    def act(kind: ActionKind, reason: str, changes: Sequence[str] = (), spec: ReplicaSpec | None = None) -> Action:
        return Action(
            region=want.region,
            replication=obs.name,
            kind=kind,
            reason=reason,
            desired=spec or want,
            observed=obs,
            changes=tuple(changes),
        )

    state = _state(obs)
    protected = _protected(plan, obs)
    if state in TRANSITIONAL:
        return act(ActionKind.WAIT, f"replica is {obs.provisioning_state}; leave it until it settles")
    if state in BROKEN:
        if protected:
            return act(
                ActionKind.NOOP, f"replica is {obs.provisioning_state} but protected ({plan.protection_tag}=true)"
            )
        return act(
            ActionKind.RECREATE,
            f"replica is {obs.provisioning_state}: a failed replica stays failed until deleted and created again",
            [f"provisioningState: {obs.provisioning_state} → Succeeded"],
            _rebuild(want, obs),
        )
    if state != "succeeded":
        return act(ActionKind.WAIT, f"unknown provisioning state '{obs.provisioning_state}'; leave it alone")

    rebuild: list[str] = []
    if want.zone_redundancy != obs.zone_redundancy:
        rebuild.append(f"zoneRedundancy: {_zr(obs.zone_redundancy)} → {_zr(want.zone_redundancy)}")
    if name_explicit and want.name.lower() != obs.name.lower():
        rebuild.append(f"name: {obs.name} → {want.name}")
    changes, notes, patch = _patch(want, obs)
    if rebuild:
        what = " and ".join(c.split(":")[0] for c in rebuild)
        if protected:
            notes.insert(0, f"{what} differs; protected ({plan.protection_tag}=true), never replaced")
        elif plan.allow_replace:
            return act(
                ActionKind.REPLACE,
                f"{what} differs and is create-only: delete and create",
                [*rebuild, *changes],
                _rebuild(want, obs),
            )
        else:
            notes.insert(0, f"{what} differs; replace not allowed by the plan ({what} is create-only)")
    if changes:
        return act(ActionKind.UPDATE, "; ".join(["tags or endpoint differ", *notes]), changes, patch)
    return act(ActionKind.NOOP, "; ".join(notes) or "up to date", rebuild)
