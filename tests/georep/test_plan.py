"""The diff as a table of cases: (plan, observed) -> the one action per region, with its reason and changes.

No HTTP anywhere: the decision is pure, so every rule is pinned here and the engine only executes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from georep.model import ActionKind, ObservedReplica, RegionOutcome, RegistryInfo, RegistryRef, Result
from georep.plan import (
    Plan,
    budget_exhausted,
    desired,
    diff,
    group_by_wave,
    resolve_waves,
)

SUB = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"
REF = RegistryRef(subscription_id=SUB, resource_group="rg", name="georepdemo")
INFO = RegistryInfo(ref=REF, home="northeurope", sku="Premium")
HOME = ObservedReplica(name="northeurope", region="northeurope", provisioning_state="Succeeded", is_home=True)


def make_plan(regions: list[Any], **options: Any) -> Plan:
    data: dict[str, Any] = {"registry": {"subscription_id": SUB, "resource_group": "rg", "name": "georepdemo"}}
    data["regions"] = regions
    data.update(options)
    return Plan.model_validate(data)


def obs(region: str, state: str = "Succeeded", **kw: Any) -> ObservedReplica:
    return ObservedReplica(name=kw.pop("name", region), region=region, provisioning_state=state, **kw)


@dataclass
class Case:
    id: str
    regions: list[Any]
    observed: list[ObservedReplica]
    kind: ActionKind
    region: str = "westeurope"
    reason: str = ""
    changes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


PROTECTED = {"georep-protected": "true"}

CASES = [
    # --- create
    Case("absent-create", ["westeurope"], [], ActionKind.CREATE, reason="no replica in westeurope"),
    Case("display-name-create", ["West Europe"], [], ActionKind.CREATE),
    # --- noop
    Case("up-to-date", ["westeurope"], [obs("westeurope")], ActionKind.NOOP, reason="up to date"),
    Case("matched-by-location-not-name", ["westeurope"], [obs("westeurope", name="weu01")], ActionKind.NOOP),
    # --- home
    Case("home-not-in-plan", ["westeurope"], [HOME], ActionKind.SKIP_HOME, "northeurope", "never deleted"),
    Case(
        "home-never-pruned",
        ["westeurope"],
        [HOME],
        ActionKind.SKIP_HOME,
        "northeurope",
        options={"prune": True},
    ),
    Case("home-listed-matching", ["northeurope"], [HOME], ActionKind.SKIP_HOME, "northeurope", "match"),
    Case(
        "home-listed-tags-differ",
        [{"region": "northeurope", "tags": {"env": "prod"}}],
        [HOME],
        ActionKind.UPDATE,
        "northeurope",
        "home region",
        ("tags.env: (none) → prod",),
    ),
    Case(
        "home-failed-never-recreated",
        [{"region": "northeurope", "tags": {"env": "prod"}}],
        [obs("northeurope", "Failed", is_home=True)],
        ActionKind.SKIP_HOME,
        "northeurope",
        "never rebuilds",
    ),
    Case(
        "home-zr-ignored",
        [{"region": "northeurope", "zone_redundancy": True}],
        [HOME],
        ActionKind.SKIP_HOME,
        "northeurope",
        options={"allow_replace": True},
    ),
    # --- failed / transitional
    Case("failed-recreate", ["westeurope"], [obs("westeurope", "Failed")], ActionKind.RECREATE, reason="Failed"),
    Case("canceled-recreate", ["westeurope"], [obs("westeurope", "Canceled")], ActionKind.RECREATE),
    Case(
        "failed-protected",
        ["westeurope"],
        [obs("westeurope", "Failed", tags=PROTECTED)],
        ActionKind.NOOP,
        reason="protected",
    ),
    Case("creating-wait", ["westeurope"], [obs("westeurope", "Creating")], ActionKind.WAIT, reason="Creating"),
    Case("updating-wait", ["westeurope"], [obs("westeurope", "Updating")], ActionKind.WAIT),
    Case("deleting-wait", ["westeurope"], [obs("westeurope", "Deleting")], ActionKind.WAIT),
    Case("unknown-state-wait", ["westeurope"], [obs("westeurope", "Migrating")], ActionKind.WAIT, reason="unknown"),
    # --- zone redundancy / replace
    Case(
        "zr-differs-no-replace",
        [{"region": "westus2", "zone_redundancy": True}],
        [obs("westus2")],
        ActionKind.NOOP,
        "westus2",
        "zoneRedundancy differs; replace not allowed by the plan (zoneRedundancy is create-only)",
        ("zoneRedundancy: Disabled → Enabled",),
    ),
    Case(
        "zr-differs-replace-allowed",
        [{"region": "westus2", "zone_redundancy": True}],
        [obs("westus2")],
        ActionKind.REPLACE,
        "westus2",
        "create-only",
        ("zoneRedundancy: Disabled → Enabled",),
        options={"allow_replace": True},
    ),
    Case(
        "zr-differs-protected",
        [{"region": "westus2", "zone_redundancy": True}],
        [obs("westus2", tags=PROTECTED)],
        ActionKind.NOOP,
        "westus2",
        "never replaced",
        options={"allow_replace": True},
    ),
    Case(
        "zr-differs-but-tags-still-updated",
        [{"region": "westus2", "zone_redundancy": True, "tags": {"env": "prod"}}],
        [obs("westus2", tags={"env": "dev"})],
        ActionKind.UPDATE,
        "westus2",
        "replace not allowed",
        ("tags.env: dev → prod",),
    ),
    Case(
        "explicit-name-differs-replace",
        [{"region": "westeurope", "name": "weu01"}],
        [obs("westeurope")],
        ActionKind.REPLACE,
        changes=("name: westeurope → weu01",),
        options={"allow_replace": True},
    ),
    Case(
        "name-in-other-location-no-replace",
        [{"region": "westus2", "name": "primary01"}],
        [obs("eastus", name="primary01")],
        ActionKind.NOOP,
        "westus2",
        "location is create-only",
    ),
    Case(
        "name-in-other-location-replace",
        [{"region": "westus2", "name": "primary01"}],
        [obs("eastus", name="primary01")],
        ActionKind.REPLACE,
        "westus2",
        changes=("location: eastus → westus2",),
        options={"allow_replace": True},
    ),
    # --- tags / endpoint
    Case(
        "tags-merge",
        [{"region": "westeurope", "tags": {"env": "prod"}}],
        [obs("westeurope", tags={"env": "dev", "cost": "42"})],
        ActionKind.UPDATE,
        reason="tags or endpoint differ",
        changes=("tags.env: dev → prod",),
    ),
    Case(
        "extra-tags-kept-noop",
        [{"region": "westeurope", "tags": {"env": "prod"}}],
        [obs("westeurope", tags={"env": "prod", "cost": "42"})],
        ActionKind.NOOP,
    ),
    Case(
        "disable-endpoint",
        [{"region": "westeurope", "region_endpoint_enabled": False}],
        [obs("westeurope")],
        ActionKind.UPDATE,
        changes=("regionEndpointEnabled: true → false",),
    ),
    Case(
        "disable-endpoint-from-defaults",
        ["westeurope"],
        [obs("westeurope")],
        ActionKind.UPDATE,
        changes=("regionEndpointEnabled: true → false",),
        options={"defaults": {"region_endpoint_enabled": False}},
    ),
    Case(
        "never-reenable-implicitly",
        ["westeurope"],
        [obs("westeurope", region_endpoint_enabled=False)],
        ActionKind.NOOP,
        reason="not re-enabled implicitly",
    ),
    Case(
        "reenable-explicitly",
        [{"region": "westeurope", "region_endpoint_enabled": True}],
        [obs("westeurope", region_endpoint_enabled=False)],
        ActionKind.UPDATE,
        changes=("regionEndpointEnabled: false → true",),
    ),
    # --- not in plan
    Case("unplanned-prune-off", [], [obs("westeurope")], ActionKind.NOOP, reason="not in plan (prune is off)"),
    Case(
        "unplanned-prune-on",
        [],
        [obs("westeurope")],
        ActionKind.DELETE,
        reason="prune is on",
        options={"prune": True},
    ),
    Case(
        "unplanned-protected",
        [],
        [obs("westeurope", tags=PROTECTED)],
        ActionKind.NOOP,
        reason="protected",
        options={"prune": True},
    ),
    Case(
        "custom-protection-tag",
        [],
        [obs("westeurope", tags={"keep": "True"})],
        ActionKind.NOOP,
        reason="keep=true",
        options={"prune": True, "protection_tag": "keep"},
    ),
    Case(
        "unplanned-creating-wait",
        [],
        [obs("westeurope", "Creating")],
        ActionKind.WAIT,
        options={"prune": True},
    ),
    Case(
        "unplanned-failed-pruned",
        [],
        [obs("westeurope", "Failed")],
        ActionKind.DELETE,
        options={"prune": True},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_diff(case: Case) -> None:
    plan = make_plan(case.regions, **case.options)
    has_home = any(o.region == "northeurope" for o in case.observed)
    actions = diff(plan, INFO, case.observed if has_home else [HOME, *case.observed])
    action = next(a for a in actions if a.region == case.region)
    assert action.kind is case.kind, action.reason
    assert case.reason in action.reason
    assert action.reason  # every action explains itself
    for change in case.changes:
        assert change in action.changes


def test_every_action_kind_is_covered_by_the_table() -> None:
    assert {c.kind for c in CASES} == set(ActionKind)


def test_one_action_per_region_sorted() -> None:
    plan = make_plan(["westus2", "eastus", "westeurope"])
    observed = [obs("westeurope"), obs("southeastasia"), HOME, obs("eastus", "Failed")]
    actions = diff(plan, INFO, observed)
    assert [a.region for a in actions] == ["eastus", "northeurope", "southeastasia", "westeurope", "westus2"]
    assert [a.kind for a in actions] == [
        ActionKind.RECREATE,
        ActionKind.SKIP_HOME,
        ActionKind.NOOP,
        ActionKind.NOOP,
        ActionKind.CREATE,
    ]


def test_diff_is_pure_and_deterministic() -> None:
    plan = make_plan(["westus2", "eastus"])
    observed = [obs("eastus", tags={"a": "b"}), HOME]
    assert diff(plan, INFO, observed) == diff(plan, INFO, list(reversed(observed)))


def test_update_patch_body_merges_tags_and_leaves_endpoint_alone() -> None:
    plan = make_plan([{"region": "westeurope", "tags": {"env": "prod"}}])
    (action,) = [a for a in diff(plan, INFO, [obs("westeurope", tags={"cost": "1"})]) if a.region == "westeurope"]
    assert action.desired is not None
    assert action.desired.tags == {"cost": "1", "env": "prod"}
    assert action.desired.region_endpoint_enabled is None  # not part of this PATCH


def test_recreate_keeps_a_disabled_endpoint_and_extra_tags() -> None:
    plan = make_plan(["westeurope"], defaults={"tags": {"env": "prod"}})
    failed = obs("westeurope", "Failed", region_endpoint_enabled=False, tags={"ticket": "INC1"})
    (action,) = [a for a in diff(plan, INFO, [failed]) if a.region == "westeurope"]
    assert action.kind is ActionKind.RECREATE
    assert action.desired is not None
    assert action.desired.region_endpoint_enabled is False
    assert action.desired.tags == {"ticket": "INC1", "env": "prod"}


def test_replace_from_other_location_owns_that_replica() -> None:
    plan = make_plan([{"region": "westus2", "name": "primary01"}], prune=True, allow_replace=True)
    actions = {a.region: a for a in diff(plan, INFO, [obs("eastus", name="primary01")])}
    assert actions["westus2"].kind is ActionKind.REPLACE
    # the replace deletes it: pruning it too would be a second delete
    assert actions["eastus"].kind is ActionKind.NOOP
    assert "moved to westus2" in actions["eastus"].reason


def test_name_held_by_the_home_replica_is_left_alone() -> None:
    plan = make_plan([{"region": "westus2", "name": "northeurope"}], allow_replace=True)
    actions = {a.region: a for a in diff(plan, INFO, [HOME])}
    assert actions["westus2"].kind is ActionKind.NOOP
    assert actions["northeurope"].kind is ActionKind.SKIP_HOME


# ------------------------------------------------------------------------------------------ desired + waves


def test_desired_merges_defaults_and_tracks_explicit_endpoint() -> None:
    plan = make_plan(
        ["West US 2", {"region": "eastus", "region_endpoint_enabled": True, "tags": {"env": "dr"}, "name": "east01"}],
        defaults={"zone_redundancy": True, "tags": {"env": "prod", "owner": "me"}},
    )
    east, west = desired(plan)
    assert (west.region, west.name, west.zone_redundancy) == ("westus2", "westus2", True)
    assert west.region_endpoint_enabled is True and not west.region_endpoint_explicit
    assert east.name == "east01" and east.region_endpoint_explicit
    assert east.tags == {"env": "dr", "owner": "me"}


def test_waves_expand_wildcard_and_default_to_one() -> None:
    regions = ["westus2", "eastus", "westeurope"]
    assert resolve_waves(make_plan(regions)) == [["eastus", "westeurope", "westus2"]]
    assert resolve_waves(make_plan(regions, waves=[["West US 2"], ["*"]])) == [["westus2"], ["eastus", "westeurope"]]
    # a '*' with nothing left is simply dropped
    assert resolve_waves(make_plan(["westus2"], waves=[["westus2"], ["*"]])) == [["westus2"]]


def test_group_by_wave_puts_unplanned_regions_last() -> None:
    plan = make_plan(["westus2", "eastus"], waves=[["westus2"], ["*"]], prune=True)
    actions = diff(plan, INFO, [HOME, obs("japaneast")])
    waves = group_by_wave(plan, actions)
    assert [[a.region for a in w] for w in waves] == [["westus2"], ["eastus"], ["japaneast", "northeurope"]]


def test_failure_budget() -> None:
    plan = make_plan(["westus2"], failure_budget=1)

    def outcome(result: Result) -> RegionOutcome:
        return RegionOutcome(region="x", replication="x", action=ActionKind.CREATE, result=result)

    assert not budget_exhausted(plan, [outcome(Result.FAILED), outcome(Result.SUCCEEDED)])
    assert budget_exhausted(plan, [outcome(Result.FAILED), outcome(Result.FAILED)])
