"""The plan file: loading (paths, text, hostile YAML), the global plan, and the checkpoint hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from georep.plan import PlanError, desired, load_plan, plan_hash, resolve_waves

SUB = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"

YAML = f"""
registry:
  subscription_id: {SUB}
  resource_group: rg
  name: georepdemo
defaults:
  tags: {{env: prod}}
regions:
  - region: westus2
    zone_redundancy: true
  - westeurope
waves: [[westus2], ["*"]]
"""


def test_plan_hash_is_stable_across_spellings() -> None:
    respelt = YAML.replace("- westeurope", "- West Europe").replace("regions:\n", "regions:\n  # comment\n")
    reordered = YAML.replace(
        "  - region: westus2\n    zone_redundancy: true\n  - westeurope\n",
        "  - westeurope\n  - {region: westus2, zone_redundancy: true}\n",
    )
    assert reordered != YAML
    base = plan_hash(load_plan(YAML))
    assert len(base) == 16
    assert plan_hash(load_plan(respelt)) == base
    assert plan_hash(load_plan(reordered)) == base
    assert plan_hash(load_plan(YAML + "failure_budget: 0\n")) == base  # a default written out


@pytest.mark.parametrize(
    "change",
    ["failure_budget: 1\n", "prune: true\n", "allow_replace: true\n", "lro_deadline_seconds: 60\n"],
)
def test_plan_hash_changes_with_intent(change: str) -> None:
    assert plan_hash(load_plan(YAML + change)) != plan_hash(load_plan(YAML))


def test_load_plan_from_path_and_text(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(YAML)
    assert load_plan(path) == load_plan(str(path)) == load_plan(YAML)


def test_global_plan_loads() -> None:
    plan = load_plan(Path(__file__).parents[2] / "deployments" / "plans" / "global.yaml")
    assert [s.region for s in desired(plan)] == ["eastus", "southeastasia", "westeurope", "westus2"]
    assert resolve_waves(plan)[0] == ["westus2"]
    assert plan.failure_budget == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("registry: [unclosed", "[yaml]"),
        ("- just\n- a list\n", "plan [type]"),
        (YAML + "prune: true\nprune: false\n", "duplicate key 'prune'"),
        (YAML + "zone_redundant: true\n", "zone_redundant [unknown_key]"),
        (YAML.replace("  - westeurope\n", "  - {region: westeurope, tags: {v: 2}}\n"), "regions[1].tags.v"),
        (YAML + "failure_budget: -1\n", "failure_budget [greater_than_equal]"),
        ("regions: [westus2]\n", "registry [required]"),
        ("!!python/object/apply:os.system ['true']\n", "[yaml]"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
            ),
            "too_large",
        ),
    ],
)
def test_load_plan_refuses(text: str, needle: str) -> None:
    with pytest.raises(PlanError) as err:
        load_plan(text)
    assert needle in str(err.value)


def test_long_one_line_text_is_not_mistaken_for_a_path() -> None:
    flow = "{registry: {subscription_id: " + SUB + ", resource_group: rg, name: georepdemo}, regions: [westus2]"
    flow += ", defaults: {tags: {" + ", ".join(f"t{i}: v" for i in range(40)) + "}}}"
    assert len(flow) > 300 and "\n" not in flow
    assert [s.region for s in desired(load_plan(flow))] == ["westus2"]
