"""georep.dr: a DR layout as a plan, without Prefect or ARM."""

from __future__ import annotations

from pathlib import Path

import pytest

from georep.dr import DR_TIER_TAG, dr_plan
from georep.model import ActionKind, ObservedReplica, RegistryInfo, RegistryRef
from georep.plan import desired, diff, load_plan, plan_hash, resolve_waves
from georep.planfile import RegistrySection
from georep.validation import PlanError, check_registry

ROOT = Path(__file__).parents[2]
REG = RegistrySection(subscription_id="6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21", resource_group="rg", name="georepdemo")
TAGS = {"env": "prod", "owner": "platform-team", "managed-by": "georep"}


def specs(primaries: list[str], dr: list[str], **kw: object) -> dict[str, object]:
    return {s.region: s for s in desired(dr_plan(REG, primaries, dr, **kw))}  # type: ignore[arg-type]


def test_tiers_differ_in_zone_redundancy_endpoint_and_tag() -> None:
    got = specs(["westus2", "East US"], ["westeurope"], tags=TAGS)
    assert {
        r: (s.zone_redundancy, s.region_endpoint_enabled, s.region_endpoint_explicit, s.tags[DR_TIER_TAG])  # type: ignore[attr-defined]
        for r, s in got.items()
    } == {
        "westus2": (True, True, True, "primary"),
        "eastus": (True, True, True, "primary"),
        "westeurope": (False, False, True, "dr"),
    }
    assert all(s.tags["owner"] == "platform-team" for s in got.values())  # type: ignore[attr-defined]


def test_primaries_are_the_first_wave_and_nothing_is_pruned() -> None:
    plan = dr_plan(REG, ["eastus", "westus2"], ["southeastasia", "westeurope"])
    assert resolve_waves(plan) == [["eastus", "westus2"], ["southeastasia", "westeurope"]]
    assert plan.prune is False and plan.allow_replace is False and plan.failure_budget == 0


def test_the_tier_tag_wins_over_a_default_tag_of_the_same_name() -> None:
    got = specs(["westus2"], ["westeurope"], tags={DR_TIER_TAG: "oops", "env": "prod"})
    assert got["westeurope"].tags == {DR_TIER_TAG: "dr", "env": "prod"}  # type: ignore[attr-defined]


def test_the_demo_dr_file_is_the_plan_the_lists_build() -> None:
    from_file = load_plan(ROOT / "deployments/plans/dr.yaml")
    built = dr_plan(from_file.registry, ["westus2", "eastus"], ["westeurope", "southeastasia"], tags=TAGS)
    assert plan_hash(from_file) == plan_hash(built)
    assert from_file.ref == load_plan(ROOT / "deployments/plans/global.yaml").ref


@pytest.mark.parametrize(
    ("primaries", "dr", "field", "rule"),
    [
        ([], ["westeurope"], "primary_regions", "empty"),
        (["westus9"], [], "primary_regions[0]", "known_region"),
        (["westus2"], ["westeurop"], "dr_regions[0]", "known_region"),
        (["westus2"], ["West US 2"], "dr_regions[0]", "duplicate"),
        (["westus2", "westus2"], [], "primary_regions[1]", "duplicate"),
        (["westus"], [], "primary_regions[0]", "zones"),  # no availability zones: cannot be zone-redundant
        (["westus2"], ["germanynorth"], "regions[1].region", "restricted_region"),
    ],
)
def test_bad_lists_are_refused_naming_the_parameter(primaries: list[str], dr: list[str], field: str, rule: str) -> None:
    with pytest.raises(PlanError) as err:
        dr_plan(REG, primaries, dr)
    assert (field, rule) in {(p.field, p.rule) for p in err.value.problems}, err.value


def test_a_dr_region_without_zones_is_fine() -> None:
    assert specs(["westus2"], ["westus"])["westus"].zone_redundancy is False  # type: ignore[attr-defined]


def _obs(
    region: str, *, zr: bool = False, endpoint: bool = True, tags: dict[str, str] | None = None, home: bool = False
) -> ObservedReplica:
    return ObservedReplica(
        name=region,
        region=region,
        provisioning_state="Succeeded",
        display_status="Ready",
        zone_redundancy=zr,
        region_endpoint_enabled=endpoint,
        tags=tags or {},
        is_home=home,
    )


def test_diff_after_the_global_rollout_only_patches_tags_and_dr_endpoints() -> None:
    plan = dr_plan(REG, ["westus2", "eastus"], ["westeurope", "southeastasia"], tags=TAGS)
    info = RegistryInfo(ref=RegistryRef(**REG.model_dump()), home="northeurope", sku="Premium")
    observed = [
        _obs("northeurope", home=True),
        _obs("westus2", zr=True, tags=TAGS),
        _obs("eastus", zr=True, tags=TAGS, endpoint=False),  # someone disabled it: the primary tier re-enables it
        _obs("westeurope", tags=TAGS),
        _obs("southeastasia", tags={**TAGS, DR_TIER_TAG: "dr"}, endpoint=False),  # already DR
    ]
    assert check_registry(plan, info, observed) == []
    actions = {a.region: a for a in diff(plan, info, observed)}
    assert {r: a.kind for r, a in actions.items()} == {
        "northeurope": ActionKind.SKIP_HOME,
        "westus2": ActionKind.UPDATE,
        "eastus": ActionKind.UPDATE,
        "westeurope": ActionKind.UPDATE,
        "southeastasia": ActionKind.NOOP,
    }
    assert "regionEndpointEnabled: false → true" in actions["eastus"].changes
    assert "regionEndpointEnabled: true → false" in actions["westeurope"].changes
    assert actions["westus2"].changes == ("tags.dr-tier: (none) → primary",)


def test_home_region_as_primary_passes_the_registry_checks() -> None:
    """Zone redundancy comes from the defaults, which never apply to the home replica: listing the home region
    as a primary manages its endpoint and tag without asking for a zone-redundancy change ARM cannot make."""
    plan = dr_plan(REG, ["northeurope", "westus2"], ["westeurope"])
    info = RegistryInfo(ref=RegistryRef(**REG.model_dump()), home="northeurope", sku="Premium")
    observed = [_obs("northeurope", home=True)]
    assert check_registry(plan, info, observed) == []
    home = next(a for a in diff(plan, info, observed) if a.region == "northeurope")
    assert home.kind is ActionKind.UPDATE and home.changes == ("tags.dr-tier: (none) → primary",)
