"""The fleet file and the fleet aggregate: no Prefect, no HTTP."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from georep.fleet import (
    MAX_REGISTRIES,
    FleetError,
    RegistryRun,
    deep_merge,
    fleet_hash,
    fleet_markdown,
    fleet_rows,
    fleet_totals,
    load_fleet,
    member_rows,
    outcomes_from_rows,
    plan_yaml,
    subscriptions,
)
from georep.model import ActionKind, RegionOutcome, RegistryRef, Result
from georep.planfile import load_plan, plan_hash
from georep.report import outcome_rows

S1 = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"
S2 = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"

FLEET = f"""
template:
  defaults: {{tags: {{env: prod, owner: platform}}}}
  regions:
    - {{region: westus2, zone_redundancy: true}}
    - eastus
    - {{region: westeurope, region_endpoint_enabled: false}}
  waves: [[westus2], ["*"]]
  failure_budget: 1
registries:
  - {{subscription_id: "{S1}", resource_group: rg-a, name: fleet01}}
  - subscription_id: "{S2}"
    resource_group: rg-b
    name: fleet02
    overrides:
      regions: [westus2, japaneast]
      defaults: {{tags: {{owner: team-b}}}}
  - {{subscription_id: "{S1}", resource_group: rg-a, name: fleet03}}
"""


def problems_of(text: str, base: Path | None = None) -> list[str]:
    with pytest.raises(FleetError) as info:
        load_fleet(text, base=base)
    assert str(info.value).startswith("the fleet is invalid")
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------------------------------------------- loading


def test_members_are_template_plans_with_overrides_deep_merged() -> None:
    fleet = load_fleet(FLEET)
    assert [str(m.ref) for m in fleet.members] == [f"{S1}/rg-a/fleet01", f"{S2}/rg-b/fleet02", f"{S1}/rg-a/fleet03"]
    first, second, _ = fleet.members
    assert [e.region for e in first.plan.regions] == ["westus2", "eastus", "westeurope"]
    assert first.plan.failure_budget == 1 and first.plan.waves == [["westus2"], ["*"]]
    assert first.plan.regions[2].region_endpoint_enabled is False
    assert first.plan.ref == first.ref and first.source == "template"
    # lists replace, mappings merge: the member's regions only, the template's env tag kept, owner overridden
    assert [e.region for e in second.plan.regions] == ["westus2", "japaneast"]
    assert second.plan.defaults.tags == {"env": "prod", "owner": "team-b"}
    assert second.source == "overrides"


def test_deep_merge_merges_mappings_and_replaces_lists_without_touching_its_inputs() -> None:
    base = {"defaults": {"tags": {"a": "1"}, "zone_redundancy": False}, "regions": ["x", "y"]}
    merged = deep_merge(base, {"defaults": {"tags": {"b": "2"}}, "regions": ["z"]})
    assert merged == {"defaults": {"tags": {"a": "1", "b": "2"}, "zone_redundancy": False}, "regions": ["z"]}
    assert base == {"defaults": {"tags": {"a": "1"}, "zone_redundancy": False}, "regions": ["x", "y"]}


def test_a_member_plan_survives_the_trip_to_its_child_as_yaml() -> None:
    for member in load_fleet(FLEET).members:
        again = load_plan(plan_yaml(member.plan))
        assert again == member.plan
        assert plan_hash(again) == plan_hash(member.plan)
        # "not said" stays not said: an implicit endpoint must never become an explicit true
        assert "null" not in plan_yaml(member.plan)


def test_loads_from_a_file_with_plan_path_relative_to_the_fleet_file(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "own.yaml").write_text(
        f"registry: {{subscription_id: '{S2}', resource_group: rg-own, name: ownplan01}}\nregions: [uksouth]\n"
    )
    fleets = tmp_path / "fleets"
    fleets.mkdir()
    text = (
        FLEET
        + f"  - {{subscription_id: '{S2}', resource_group: rg-own, name: ownplan01, plan_path: ../plans/own.yaml}}\n"
    )
    (fleets / "f.yaml").write_text(text)
    for source in (fleets / "f.yaml", str(fleets / "f.yaml")):
        fleet = load_fleet(source)
        own = fleet.members[-1]
        assert [e.region for e in own.plan.regions] == ["uksouth"] and own.source == "../plans/own.yaml"
    # inline text: relative to the base directory given (the project directory in the flow)
    assert load_fleet(text, base=fleets).members[-1].ref.name == "ownplan01"


def test_fleet_hash_is_stable_across_order_and_spelling_and_changes_with_intent() -> None:
    fleet = load_fleet(FLEET)
    reordered = FLEET.replace("name: fleet01}", "name: FLEET01}").replace("- eastus", "- East US")
    assert fleet_hash(load_fleet(reordered)) == fleet_hash(fleet)
    assert fleet_hash(load_fleet(FLEET.replace("failure_budget: 1", "failure_budget: 2"))) != fleet_hash(fleet)
    assert len(fleet_hash(fleet)) == 16


def test_subscriptions_each_once_in_file_order() -> None:
    fleet = load_fleet(
        FLEET.replace(
            f'"{S1}", resource_group: rg-a, name: fleet03', f'"{S1.upper()}", resource_group: rg-a, name: fleet03'
        )
    )
    assert subscriptions(fleet) == [S1, S2]


def test_member_rows_describe_the_fleet_plan() -> None:
    rows = member_rows(load_fleet(FLEET))
    assert (
        rows[1]["registry"] == "fleet02"
        and rows[1]["regions"] == "westus2, japaneast"  # wave order: the canary first
        and rows[1]["from"] == "overrides"
    )
    assert rows[0]["regions"] == "westus2, eastus, westeurope" and rows[0]["waves"] == 2


# ----------------------------------------------------------------------------------------------- refusals


def test_all_problems_of_all_members_are_reported_with_field_paths_and_rules() -> None:
    text = FLEET.replace("regions: [westus2, japaneast]", "regions: [westus2, japaneast9]").replace(
        "name: fleet03}", "name: fleet03, overrides: {failure_budget: -1}}"
    )
    got = problems_of(text)
    assert any(p.startswith("registries[1].regions[1].region [known_region]") for p in got), got
    assert any(p.startswith("registries[2].overrides.failure_budget [greater_than_equal]") for p in got), got
    assert len(got) == 2


def test_a_template_problem_is_reported_once_not_per_member() -> None:
    got = problems_of(FLEET.replace("- eastus\n", "- eastus9\n"))
    # fleet02 replaces the regions, so only fleet01 and fleet03 inherit it: one problem, named at the template
    assert got == [
        "template.regions[1].region [known_region]: 'eastus9' is not an Azure region; did you mean 'eastus'?"
    ]


def test_a_template_problem_every_member_overrides_is_no_problem() -> None:
    text = f"""
    template: {{defaults: {{tags: {{env: prod}}}}}}
    registries:
      - {{subscription_id: "{S1}", resource_group: rg, name: fleet01, overrides: {{regions: [eastus]}}}}
    """
    assert [e.region for e in load_fleet(textwrap.dedent(text)).members[0].plan.regions] == ["eastus"]
    got = problems_of(textwrap.dedent(text).replace(", overrides: {regions: [eastus]}", ""))
    assert got == ["template.regions [empty]: no regions and prune is off: the plan would do nothing; list regions"]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            ("name: fleet03}", "name: fleet01}"),
            "registries[2].name [duplicate]: 'fleet01' is the same registry as registries[0]",
        ),
        (("name: fleet03}", "name: FLEET01}"), "registries[2].name [duplicate]"),
        (("rg-a, name: fleet03}", "rg-z, name: fleet01}"), "registry names are global"),
        (("name: fleet03}", "name: fleet03, colour: red}"), "registries[2].colour [unknown_key]"),
        (("  failure_budget: 1\n", "  failure_budget: 1\n  registry: {name: x}\n"), "template.registry [unknown_key]"),
        (("  failure_budget: 1\n", "  failure_budget: 1\n  prunes: true\n"), "template.prunes [unknown_key]"),
        (("name: fleet03}", "name: f3}"), "registries[2].name [pattern]"),
        ((f'"{S2}"', '"not-a-guid"'), "registries[1].subscription_id [uuid]"),
        (("resource_group: rg-a, name: fleet03}", "name: fleet03}"), "registries[2].resource_group [required]"),
        (
            ("name: fleet03}", "name: fleet03, overrides: {regions: [eastus]}, plan_path: x.yaml}"),
            "registries[2].plan_path [conflict]",
        ),
        (("name: fleet03}", "name: fleet03, plan_path: nosuch.yaml}"), "registries[2].plan_path [exists]"),
        (("registries:", "registries: []\nextra:"), "registries [empty]"),
        (("template:", "tempalte:"), "tempalte [unknown_key]"),
    ],
)
def test_refusals_name_the_field_and_the_rule(edit: tuple[str, str], needle: str) -> None:
    text = FLEET.replace(*edit)
    assert text != FLEET
    got = problems_of(text)
    assert any(needle in p for p in got), got


def test_a_plan_file_must_name_its_registry(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        f"registry: {{subscription_id: '{S1}', resource_group: rg, name: other01}}\nregions: [eastus]\n"
    )
    text = FLEET.replace("name: fleet03}", "name: fleet03, plan_path: x.yaml}")
    assert any("registries[2].plan_path [registry_mismatch]" in p for p in problems_of(text, base=tmp_path))
    (tmp_path / "x.yaml").write_text(
        f"registry: {{subscription_id: '{S1}', resource_group: rg-a, name: fleet03}}\nregions: [eastus7]\n"
    )
    got = problems_of(text, base=tmp_path)
    assert any(p.startswith("registries[2].regions[0].region [known_region]: x.yaml:") for p in got), got


def test_empty_not_a_mapping_bad_yaml_duplicate_keys_and_size_caps() -> None:
    assert problems_of("registries: []") == ["registries [empty]: the fleet lists no registries"]
    assert problems_of("template: {regions: [eastus]}")[0].startswith("registries [empty]")
    assert problems_of("- a\n- b")[0].startswith("fleet [type]")
    assert problems_of("template: {\n")[0].startswith("fleet [yaml]")
    assert "duplicate key" in problems_of(FLEET + "template: {}\n")[0]
    many = "\n".join(
        f"  - {{subscription_id: '{S1}', resource_group: rg, name: fleet{i:05d}}}" for i in range(MAX_REGISTRIES + 1)
    )
    assert problems_of("template: {regions: [eastus]}\nregistries:\n" + many) == [
        f"registries [too_large]: {MAX_REGISTRIES + 1} registries; the limit is {MAX_REGISTRIES}"
    ]
    assert problems_of("x: " + "a" * (1024 * 1024 + 1))[0].startswith("fleet [too_large]")


def test_a_full_size_fleet_loads() -> None:
    many = "\n".join(
        f"  - {{subscription_id: '{S1}', resource_group: rg, name: fleet{i:05d}}}" for i in range(MAX_REGISTRIES)
    )
    fleet = load_fleet("template: {regions: [eastus, westus2]}\nregistries:\n" + many)
    assert len(fleet.members) == MAX_REGISTRIES


# ---------------------------------------------------------------------------------------------- aggregate


def outcome(region: str, result: Result, action: ActionKind = ActionKind.CREATE, **kw: object) -> RegionOutcome:
    return RegionOutcome(region=region, replication=region, action=action, result=result, **kw)  # type: ignore[arg-type]


def ref(name: str, sub: str = S1) -> RegistryRef:
    return RegistryRef(subscription_id=sub, resource_group="rg", name=name)


RUNS = [
    RegistryRun(
        ref=ref("fleet01"),
        state="COMPLETED",
        outcomes=(
            outcome("eastus", Result.SUCCEEDED, arm_requests=5),
            outcome("westus2", Result.UNCHANGED, ActionKind.NOOP),
            outcome("northeurope", Result.SKIPPED, ActionKind.SKIP_HOME),
        ),
        url="http://ui/runs/flow-run/1",
    ),
    RegistryRun(
        ref=ref("fleet02", S2),
        state="FAILED",
        message="1 of 2 region(s) failed: eastus (QuotaExceeded)",
        outcomes=(
            outcome("eastus", Result.FAILED, error_code="QuotaExceeded", error_message="no quota", arm_requests=3),
            outcome("japaneast", Result.SUCCEEDED, arm_requests=4),
        ),
    ),
    RegistryRun(ref=ref("fleet03"), state="CRASHED", message="worker lost\nno outcome"),
]


def test_matrix_has_a_column_per_region_and_a_row_per_registry() -> None:
    rows = {r["registry"]: r for r in fleet_rows(RUNS)}
    assert rows["fleet01"]["eastus"] == "succeeded" and rows["fleet01"]["westus2"] == "unchanged"
    assert rows["fleet01"]["northeurope"] == "home" and rows["fleet01"]["japaneast"] == ""
    assert (rows["fleet01"]["succeeded"], rows["fleet01"]["unchanged"], rows["fleet01"]["ARM requests"]) == (1, 1, 5)
    assert rows["fleet01"]["run"] == "[completed](http://ui/runs/flow-run/1)" and rows["fleet01"]["error"] == ""
    assert rows["fleet02"]["eastus"] == "failed" and rows["fleet02"]["error"] == "eastus (QuotaExceeded)"
    assert rows["fleet03"]["state"] == "crashed" and rows["fleet03"]["error"] == "worker lost no outcome"
    assert all(rows["fleet03"][r] == "" for r in ("eastus", "japaneast", "northeurope", "westus2"))


def test_totals_count_registries_regions_and_requests() -> None:
    totals = fleet_totals(RUNS)
    assert (totals.registries, totals.registries_ok, totals.registries_failed) == (3, 1, 2)
    assert dict(totals.regions) == {"failed": 1, "succeeded": 2, "unchanged": 1}  # the home replica is no work
    assert totals.arm_requests == 12
    assert [r.failed for r in RUNS] == [False, True, True]
    assert RegistryRun(ref=ref("x"), state="COMPLETED", outcomes=(outcome("a", Result.FAILED),)).failed


def test_markdown_puts_totals_and_failures_before_the_matrix() -> None:
    md = fleet_markdown(RUNS, "Fleet rollout")
    assert md.index("**Registries:** 3; 1 ok, 2 failed.") < md.index(
        "| registry | eastus | japaneast | northeurope | westus2 | succeeded |"
    )
    assert "**Regions:** 1 failed, 2 succeeded, 1 unchanged." in md and "**ARM requests:** 12." in md
    assert "- `fleet02` (failed): eastus (QuotaExceeded)" in md
    assert "- `fleet03` (crashed): worker lost no outcome" in md
    assert (
        "| fleet01 | succeeded |  | home | unchanged | 1 | 0 | 1 | 5 | [completed](http://ui/runs/flow-run/1) |" in md
    )
    assert "| fleet03 |  |  |  |  | 0 | 0 | 0 | 0 | crashed |" in md


def test_outcomes_round_trip_through_the_childs_result_table() -> None:
    originals = [
        outcome(
            "eastus", Result.FAILED, error_code="QuotaExceeded", error_message="no: quota", arm_requests=3, seconds=1.25
        ),
        outcome("westus2", Result.SUCCEEDED, resumed=True, provisioning_state="Succeeded", display_status="Syncing"),
        outcome("uksouth", Result.SKIPPED, error_message="not started: 1 region(s) failed"),
        outcome("japaneast", Result.FAILED, error_code="DeadlineExceeded"),
        outcome("northeurope", Result.SKIPPED, ActionKind.SKIP_HOME),
    ]
    back = outcomes_from_rows(outcome_rows(originals))
    for got, want in zip(back, originals, strict=True):
        assert got.model_copy(update={"seconds": want.seconds}) == want
    assert back[0].seconds == 1.2  # the table rounds to a tenth
