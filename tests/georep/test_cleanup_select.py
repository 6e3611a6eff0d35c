"""georep.cleanup: which replicas a cleanup removes and why the others stay; pure, table-driven."""

from __future__ import annotations

import pytest

from georep.cleanup import Decision, Selection, rows, select, selection, summary
from georep.model import ActionKind, ObservedReplica, RegionOutcome, RegistryInfo, RegistryRef, Result
from georep.validation import PlanError

REF = RegistryRef(subscription_id="6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21", resource_group="rg", name="georepdemo")
INFO = RegistryInfo(ref=REF, home="northeurope", sku="Premium")


def obs(region: str, state: str = "Succeeded", home: bool = False, **tags: str) -> ObservedReplica:
    return ObservedReplica(
        name=region,
        region=region,
        provisioning_state=state,
        tags={k.replace("_", "-"): v for k, v in tags.items()},
        is_home=home,
    )


FLEET = [
    obs("northeurope", home=True, env="staging"),
    obs("westus2", env="prod"),
    obs("eastus", env="staging"),
    obs("westeurope", env="staging", georep_protected="true"),
    obs("uksouth", env="staging"),
    obs("japaneast"),
    obs("centralus", "Creating", env="staging"),
]


def decisions(sel: Selection, fleet: list[ObservedReplica] = FLEET) -> dict[str, str]:
    return {c.region: c.decision.value for c in select(INFO, fleet, sel)}


CASES = {
    "keep list": (
        {"keep_regions": ["westus2", "East US"]},
        {
            "northeurope": "skip-home",
            "westus2": "skip-kept",
            "eastus": "skip-kept",
            "westeurope": "skip-protected",
            "uksouth": "remove",
            "japaneast": "remove",
            "centralus": "skip-busy",
        },
    ),
    "keep plan regions join the keep list": (
        {"keep_regions": ["westus2"], "plan_regions": ["uksouth"]},
        {"uksouth": "skip-kept", "japaneast": "remove", "eastus": "remove", "westus2": "skip-kept"},
    ),
    "tag": (
        {"match_tags": ["env=staging"]},
        {
            "northeurope": "skip-home",
            "westus2": "skip-not-matched",
            "eastus": "remove",
            "westeurope": "skip-protected",
            "uksouth": "remove",
            "japaneast": "skip-not-matched",
            "centralus": "skip-busy",
        },
    ),
    "region list": (
        {"in_regions": ["uksouth", "westeurope", "northeurope"]},
        {
            "northeurope": "skip-home",
            "westeurope": "skip-protected",
            "uksouth": "remove",
            "eastus": "skip-not-matched",
        },
    ),
    "criteria narrow each other (AND)": (
        {"keep_regions": ["westus2"], "match_tags": ["env=staging"], "in_regions": ["eastus", "japaneast"]},
        {"eastus": "remove", "japaneast": "skip-not-matched", "uksouth": "skip-not-matched", "westus2": "skip-kept"},
    ),
    "empty keep list keeps nothing but home and protected": (
        {"keep_regions": []},
        {"northeurope": "skip-home", "westeurope": "skip-protected", "westus2": "remove", "japaneast": "remove"},
    ),
}


@pytest.mark.parametrize("criteria,expected", list(CASES.values()), ids=list(CASES))
def test_decisions(criteria: dict[str, object], expected: dict[str, str]) -> None:
    got = decisions(selection(**criteria))  # type: ignore[arg-type]
    assert {r: got[r] for r in expected} == expected


@pytest.mark.parametrize(
    "criteria",
    [{"keep_regions": []}, {"in_regions": ["northeurope"]}, {"match_tags": ["env=staging"]}],
    ids=["keep-nothing", "home-named", "home-matches-tag"],
)
def test_home_is_never_selected(criteria: dict[str, object]) -> None:
    home = next(c for c in select(INFO, FLEET, selection(**criteria)) if c.region == "northeurope")  # type: ignore[arg-type]
    assert home.decision is Decision.SKIP_HOME and "never deleted" in home.reason


def test_home_is_recognised_by_region_even_if_not_flagged() -> None:
    assert decisions(selection(keep_regions=[]), [obs("northeurope")]) == {"northeurope": "skip-home"}


@pytest.mark.parametrize("value", ["true", "True", " TRUE "])
def test_protection_tag_values(value: str) -> None:
    fleet = [obs("uksouth", georep_protected=value)]
    assert decisions(selection(in_regions=["uksouth"]), fleet) == {"uksouth": "skip-protected"}


def test_protection_false_does_not_protect() -> None:
    fleet = [obs("uksouth", georep_protected="false")]
    assert decisions(selection(in_regions=["uksouth"]), fleet) == {"uksouth": "remove"}


def test_a_keep_plans_own_protection_tag_is_honoured_too() -> None:
    fleet = [obs("uksouth", do_not_touch="true"), obs("japaneast", georep_protected="true")]
    sel = selection(keep_regions=[], extra_protection_tag="do-not-touch")
    assert decisions(sel, fleet) == {"uksouth": "skip-protected", "japaneast": "skip-protected"}


def test_reasons_say_why() -> None:
    sel = selection(keep_regions=["westus2"], match_tags=["env=staging"])
    reasons = {c.region: c.reason for c in select(INFO, FLEET, sel)}
    assert reasons["westus2"] == "kept: westus2 is in the keep list"
    assert reasons["japaneast"] == "tags do not match: env=staging (no such tag)"
    assert reasons["uksouth"] == "selected: not in the keep list; tags env=staging"
    assert reasons["westeurope"] == "protected (georep-protected=true)"


@pytest.mark.parametrize(
    ("criteria", "field", "rule"),
    [
        ({}, "selection", "required"),
        ({"match_tags": ["env"]}, "match_tags[0]", "key_value"),
        ({"match_tags": ["=x"]}, "match_tags[0]", "key_value"),
        ({"match_tags": ["a=1", "a=2"]}, "match_tags[1]", "duplicate"),
        ({"keep_regions": ["westeurop"]}, "keep_regions[0]", "known_region"),  # a typo would select westeurope
        ({"in_regions": ["mars"]}, "regions[0]", "known_region"),
    ],
)
def test_bad_criteria_are_refused(criteria: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(PlanError) as err:
        selection(**criteria)  # type: ignore[arg-type]
    assert (field, rule) in {(p.field, p.rule) for p in err.value.problems}, err.value


def test_rows_and_summary_report_every_replica() -> None:
    choices = select(INFO, FLEET, selection(match_tags=["env=staging"]))
    outcomes = [
        RegionOutcome(
            region="eastus",
            replication="eastus",
            action=ActionKind.DELETE,
            result=Result.SUCCEEDED,
            seconds=1.24,
            arm_requests=7,
        ),
        RegionOutcome(
            region="uksouth",
            replication="uksouth",
            action=ActionKind.DELETE,
            result=Result.FAILED,
            error_code="Conflict",
            error_message="busy",
        ),
    ]
    table = {r["region"]: r for r in rows(choices, outcomes)}
    assert len(table) == len(FLEET)
    assert (table["eastus"]["result"], table["eastus"]["seconds"], table["eastus"]["ARM requests"]) == (
        "removed",
        1.2,
        7,
    )
    assert (table["uksouth"]["result"], table["uksouth"]["error"]) == ("failed", "Conflict: busy")
    assert table["westus2"]["result"] == "skipped" and table["westus2"]["decision"] == "skip-not-matched"
    text = summary(list(table.values()), dry_run=False)
    assert "1 removed" in text and "1 failed" in text and "`uksouth`" in text


def test_dry_run_rows_say_would_remove() -> None:
    choices = select(INFO, FLEET, selection(in_regions=["uksouth"]))
    dry = [RegionOutcome(region="uksouth", replication="uksouth", action=ActionKind.DELETE, result=Result.DRY_RUN)]
    table = {r["region"]: r["result"] for r in rows(choices, dry)}
    assert table["uksouth"] == "would-remove"
    assert "(dry run)" in summary(rows(choices, dry), dry_run=True)
