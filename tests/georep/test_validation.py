"""Every rule that refuses a plan, as a table: each bad input must name its field path and rule id, because the
message is all a person has to find the line in their YAML."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from georep.model import ObservedReplica, RegistryInfo, RegistryRef
from georep.plan import Plan, PlanError, load_plan
from georep.validation import MAX_PLAN_BYTES, Problem, check_plan, check_registry, validate_options

SUB = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registry": {"subscription_id": SUB, "resource_group": "georep-demo", "name": "georepdemo"},
        "regions": [{"region": "westus2", "zone_redundancy": True}, "westeurope"],
    }
    data.update(changes)
    return data


def with_registry(**changes: str) -> dict[str, Any]:
    data = base()
    data["registry"] = {**data["registry"], **changes}
    return data


def with_regions(*regions: Any, **changes: Any) -> dict[str, Any]:
    return base(regions=list(regions), **changes)


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, plan data, field path, rule)
    ("registry-name-short", with_registry(name="abc"), "registry.name", "pattern"),
    ("registry-name-dash", with_registry(name="geo-rep-demo"), "registry.name", "pattern"),
    ("registry-name-long", with_registry(name="a" * 51), "registry.name", "pattern"),
    ("rg-bad-char", with_registry(resource_group="rg/1"), "registry.resource_group", "pattern"),
    ("rg-trailing-dot", with_registry(resource_group="rg."), "registry.resource_group", "pattern"),
    ("rg-too-long", with_registry(resource_group="r" * 91), "registry.resource_group", "pattern"),
    ("rg-empty", with_registry(resource_group=""), "registry.resource_group", "pattern"),
    ("subscription-not-uuid", with_registry(subscription_id="my-sub"), "registry.subscription_id", "uuid"),
    ("subscription-no-dashes", with_registry(subscription_id=SUB.replace("-", "")), "registry.subscription_id", "uuid"),
    ("unknown-region", with_regions("westus9"), "regions[0].region", "known_region"),
    ("restricted-region", with_regions("westus2", "germanynorth"), "regions[1].region", "restricted_region"),
    ("duplicate-region", with_regions("westus2", "eastus", "westus2"), "regions[2].region", "duplicate"),
    ("duplicate-display-name", with_regions("westus2", "West US 2"), "regions[1].region", "duplicate"),
    ("zr-no-zones", with_regions({"region": "westus", "zone_redundancy": True}), "regions[0].zone_redundancy", "zones"),
    (
        "zr-default-no-zones",
        with_regions("westus2", "northcentralus", defaults={"zone_redundancy": True}),
        "regions[1].zone_redundancy",
        "zones",
    ),
    ("replica-name-bad", with_regions({"region": "westus2", "name": "west_us"}), "regions[0].name", "pattern"),
    (
        "replica-name-duplicate",
        with_regions({"region": "westus2", "name": "primary"}, {"region": "eastus", "name": "PRIMARY"}),
        "regions[1].name",
        "duplicate",
    ),
    ("wave-unknown-region", with_regions("westus2", waves=[["westus2"], ["eastus"]]), "waves[1][0]", "wave_region"),
    (
        "wave-duplicate",
        with_regions("westus2", "eastus", waves=[["westus2"], ["West US 2", "eastus"]]),
        "waves[1][0]",
        "wave_duplicate",
    ),
    ("wave-two-wildcards", with_regions("westus2", waves=[["*"], ["*"]]), "waves[1][0]", "wave_duplicate"),
    ("wave-empty", with_regions("westus2", waves=[[], ["*"]]), "waves[0]", "wave_empty"),
    ("wave-coverage", with_regions("westus2", "eastus", waves=[["westus2"]]), "waves", "wave_coverage"),
    (
        "too-many-tags",
        with_regions("westus2", defaults={"tags": {f"t{i}": "v" for i in range(51)}}),
        "defaults.tags",
        "tag_count",
    ),
    (
        "too-many-tags-merged",
        with_regions(
            {"region": "westus2", "tags": {f"r{i}": "v" for i in range(26)}},
            defaults={"tags": {f"d{i}": "v" for i in range(25)}},
        ),
        "regions[0].tags",
        "tag_count",
    ),
    ("tag-name-slash", with_regions({"region": "westus2", "tags": {"a/b": "v"}}), 'regions[0].tags["a/b"]', "tag_name"),
    (
        "tag-name-percent",
        with_regions("westus2", defaults={"tags": {"100%": "v"}}),
        'defaults.tags["100%"]',
        "tag_name",
    ),
    ("tag-name-empty", with_regions({"region": "westus2", "tags": {"": "v"}}), 'regions[0].tags[""]', "tag_name"),
    (
        "tag-name-long",
        with_regions({"region": "westus2", "tags": {"n" * 513: "v"}}),
        f'regions[0].tags["{"n" * 40}..."]',
        "tag_name",
    ),
    ("tag-value-long", with_regions({"region": "westus2", "tags": {"k": "v" * 257}}), "regions[0].tags.k", "tag_value"),
    ("protection-tag-bad", with_regions("westus2", protection_tag="keep?"), "protection_tag", "tag_name"),
    ("empty-plan", with_regions(), "regions", "empty"),
    ("too-many-regions", with_regions(*(["westus2"] * 201)), "regions", "too_large"),
    ("unknown-key", base(prunee=True), "prunee", "unknown_key"),
    ("unknown-region-key", with_regions({"region": "westus2", "zone": 1}), "regions[0].zone", "unknown_key"),
    (
        "wrong-type-bool",
        with_regions({"region": "westus2", "zone_redundancy": "maybe"}),
        "regions[0].zone_redundancy",
        "bool_parsing",
    ),
    ("wrong-type-regions", base(regions="westus2"), "regions", "list_type"),
    ("negative-budget", base(failure_budget=-1), "failure_budget", "greater_than_equal"),
    ("zero-deadline", base(lro_deadline_seconds=0), "lro_deadline_seconds", "greater_than"),
    ("missing-registry", {"regions": ["westus2"]}, "registry", "required"),
    ("missing-region", with_regions({"zone_redundancy": True}), "regions[0].region", "required"),
    ("tag-value-not-string", with_regions({"region": "westus2", "tags": {"v": 2}}), "regions[0].tags.v", "string_type"),
]


@pytest.mark.parametrize(("data", "field", "rule"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_plan_names_field_and_rule(data: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(PlanError) as err:
        load_plan(yaml.safe_dump(data))
    assert f"{field} [{rule}]" in str(err.value)
    assert any(p.field == field and p.rule == rule for p in err.value.problems)


def test_there_are_at_least_thirty_bad_cases() -> None:
    assert len(BAD) >= 30


def test_all_problems_are_reported_together() -> None:
    data = with_regions("westus9", {"region": "westus", "zone_redundancy": True}, "westus9")
    data["registry"]["name"] = "x"
    with pytest.raises(PlanError) as err:
        load_plan(yaml.safe_dump(data))
    rules = {(p.field, p.rule) for p in err.value.problems}
    assert rules >= {
        ("registry.name", "pattern"),
        ("regions[0].region", "known_region"),
        ("regions[1].zone_redundancy", "zones"),
        ("regions[2].region", "duplicate"),
    }
    assert f"({len(err.value.problems)} problems)" in str(err.value)
    assert all(str(p) in str(err.value) for p in err.value.problems)


def test_unknown_region_suggests_the_closest() -> None:
    with pytest.raises(PlanError, match="did you mean 'westeurope'"):
        load_plan(yaml.safe_dump(with_regions("westeurop")))


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(PlanError) as err:
        load_plan("# " + "x" * MAX_PLAN_BYTES + "\n")
    assert "plan [too_large]" in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        base(),
        with_regions("West Europe", {"region": "East US", "zone_redundancy": True, "name": "eastus01"}),
        with_regions(prune=True),  # an empty plan that prunes: "remove every replica but home"
        with_regions("westus2", "eastus", waves=[["westus2"], ["*"]], failure_budget=3),
        with_regions(
            {"region": "westus2", "tags": {"env": "prod", "cost-center": "1234"}}, defaults={"tags": {"a": "b"}}
        ),
    ],
)
def test_good_plans_pass(data: dict[str, Any]) -> None:
    plan = load_plan(yaml.safe_dump(data))
    assert check_plan(plan) == []


# ------------------------------------------------------------------------------------------ registry checks

REF = RegistryRef(subscription_id=SUB, resource_group="georep-demo", name="georepdemo")
HOME = ObservedReplica(name="northeurope", region="northeurope", provisioning_state="Succeeded", is_home=True)


def problems_for(regions: list[Any], sku: str = "Premium") -> list[Problem]:
    plan = Plan.model_validate(with_regions(*regions))
    return check_registry(plan, RegistryInfo(ref=REF, home="northeurope", sku=sku), [HOME])


def test_registry_missing() -> None:
    plan = Plan.model_validate(base())
    (problem,) = check_registry(plan, None)
    assert (problem.field, problem.rule) == ("registry.name", "exists")


def test_registry_must_be_premium() -> None:
    assert [(p.field, p.rule) for p in problems_for(["westus2"], sku="Standard")] == [("registry.name", "premium")]


def test_home_may_carry_tags_and_endpoint() -> None:
    assert problems_for([{"region": "North Europe", "tags": {"env": "prod"}, "region_endpoint_enabled": False}]) == []


@pytest.mark.parametrize(
    ("entry", "field", "rule"),
    [
        ({"region": "northeurope", "zone_redundancy": True}, "regions[0].zone_redundancy", "home_region"),
        ({"region": "northeurope", "name": "neu01"}, "regions[0].name", "home_region"),
        ({"region": "westus2", "name": "northeurope"}, "regions[0].name", "name_conflict"),
    ],
)
def test_home_rules(entry: dict[str, Any], field: str, rule: str) -> None:
    assert [(p.field, p.rule) for p in problems_for([entry])] == [(field, rule)]


def test_defaults_do_not_ask_the_home_for_zone_redundancy() -> None:
    plan = Plan.model_validate(with_regions("northeurope", "westus2", defaults={"zone_redundancy": True}))
    assert check_registry(plan, RegistryInfo(ref=REF, home="northeurope", sku="Premium"), [HOME]) == []


@pytest.mark.parametrize(
    ("prune", "confirm", "dry_run", "ok"),
    [
        (True, False, False, False),
        (True, True, False, True),
        (True, False, True, True),
        (False, False, False, True),
    ],
)
def test_validate_options(prune: bool, confirm: bool, dry_run: bool, ok: bool) -> None:
    if ok:
        validate_options(prune, confirm, dry_run)
    else:
        with pytest.raises(PlanError, match=r"prune \[confirm\]"):
            validate_options(prune, confirm, dry_run)
