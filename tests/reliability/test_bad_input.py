"""Bad inputs through the real flow: every case is refused with a message that names the field (the path a person
needs to find the line in their YAML or form), and no ARM write is sent, anywhere in the emulator.

tests/georep/test_validation.py covers the rules one by one without Prefect; this table proves the flow runs
them before its first write, including the rules that need the registry (Premium, home replica, existing
replicas) and the run parameters validated by Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from georep.validation import MAX_PLAN_BYTES
from tests.conftest import RegistryRef
from tests.reliability.conftest import Recorder
from tests.reliability.matrix import WRITE_METHODS

SUB_OK = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"


@dataclass(frozen=True)
class Case:
    id: str
    #: the plan body under ``registry:`` (or a whole document when ``whole`` is set)
    body: str
    #: text the failure must contain: the field path and, where useful, the rule
    needle: str
    registry: dict[str, str] | None = None
    whole: bool = False
    #: "standard": the registry is Standard; "missing": it does not exist; "eastus": it has a replica there
    setup: str = ""
    params: dict[str, Any] | None = None
    #: refused by planning a no-op rather than by failing the run
    completes: bool = False
    #: pass the plan as a file (plan_path): Prefect itself refuses flow-run parameters over 512 KB, so an
    #: oversized plan_yaml never becomes a run; a plan file of any size does
    as_file: bool = False


CASES: list[Case] = [
    Case("registry-name-short", "regions: [westus2]", "registry.name [pattern]", registry={"name": "abc"}),
    Case("registry-name-dash", "regions: [westus2]", "registry.name [pattern]", registry={"name": "geo-rep-demo"}),
    Case("registry-name-long", "regions: [westus2]", "registry.name [pattern]", registry={"name": "a" * 51}),
    Case("rg-bad-char", "regions: [westus2]", "registry.resource_group [pattern]", registry={"resource_group": "rg/1"}),
    Case("subscription-not-uuid", "regions: [westus2]", "registry.subscription_id [uuid]",
         registry={"subscription_id": "my-sub"}),
    Case("unknown-region", "regions: [westus9]", "regions[0].region [known_region]"),
    Case("restricted-region", "regions: [germanynorth]", "regions[0].region [restricted_region]"),
    Case("display-name-duplicate", "regions: [westus2, 'West US 2']", "regions[1].region [duplicate]"),
    Case("duplicate-region", "regions: [westus2, eastus, westus2]", "regions[2].region [duplicate]"),
    Case("zone-redundancy-no-zones", "regions: [{region: westus, zone_redundancy: true}]",
         "regions[0].zone_redundancy [zones]"),
    Case("replica-name-chars", "regions: [{region: westus2, name: west_us}]", "regions[0].name [pattern]"),
    Case("home-replica-rebuild", "regions: [{region: northeurope, zone_redundancy: true}]",
         "regions[0].zone_redundancy [home_region]"),
    Case("home-replica-rename", "regions: [{region: northeurope, name: homecopy1}]", "regions[0].name [home_region]"),
    Case("home-replica-name-taken", "regions: [{region: westus2, name: northeurope}]",
         "regions[0].name [name_conflict]"),
    Case("not-premium", "regions: [westus2]", "registry.name [premium]", setup="standard"),
    Case("missing-registry", "regions: [westus2]", "registry.name [exists]", setup="missing"),
    Case("malformed-yaml", "regions: westus2: [", "plan [yaml]"),
    Case("yaml-not-a-mapping", "- westus2\n- eastus\n", "plan [type]", whole=True),
    Case("wrong-type-bool", "regions: [{region: westus2, zone_redundancy: maybe}]",
         "regions[0].zone_redundancy [bool_parsing]"),
    Case("wrong-type-regions", "regions: westus2", "regions [list_type]"),
    Case("negative-failure-budget", "regions: [westus2]\nfailure_budget: -1", "failure_budget [greater_than_equal]"),
    Case("zero-deadline", "regions: [westus2]\nlro_deadline_seconds: 0", "lro_deadline_seconds [greater_than]"),
    Case("unknown-key", "regions: [westus2]\nprunee: true", "prunee [unknown_key]"),
    Case("prune-without-confirm", "regions: [westus2]\nprune: true", "prune [confirm]"),
    Case("replace-without-confirm", "regions: [{region: eastus, zone_redundancy: true}]\nallow_replace: true",
         "confirm [required]", setup="eastus"),
    Case("replace-not-allowed", "regions: [{region: eastus, zone_redundancy: true}]",
         "replace not allowed by the plan", setup="eastus", completes=True),
    Case("empty-plan", "regions: []", "regions [empty]"),
    Case("oversized-file", "regions: [westus2]\n# " + "x" * MAX_PLAN_BYTES, "plan [too_large]", as_file=True),
    Case("too-many-regions", "regions: [" + ", ".join(["westus2"] * 201) + "]", "regions [too_large]"),
    Case("too-many-tags", "regions: [westus2]\ndefaults: {tags: {" + ", ".join(f"t{i}: v" for i in range(51)) + "}}",
         "defaults.tags [tag_count]"),
    Case("tag-value-too-long", "regions: [{region: westus2, tags: {k: " + "v" * 257 + "}}]",
         "regions[0].tags.k [tag_value]"),
    Case("wave-unknown-region", "regions: [westus2]\nwaves: [[westus2], [eastus]]", "waves[1][0] [wave_region]"),
    Case("param-waves-unknown-region", "regions: [westus2]", "waves[0][0] [wave_region]",
         params={"waves": [["eastus"]]}),
    Case("param-max-parallel-zero", "regions: [westus2]", "max_parallel", params={"max_parallel": 0}),
    Case("param-deadline-negative", "regions: [westus2]", "deadline_seconds", params={"deadline_seconds": -5}),
]  # fmt: skip


def _yaml(reg: RegistryRef, case: Case) -> str:
    if case.whole:
        return case.body
    fields = {"subscription_id": reg.subscription, "resource_group": reg.resource_group, "name": reg.name}
    fields.update(case.registry or {})
    head = "registry: {" + ", ".join(f"{k}: '{v}'" for k, v in fields.items()) + "}\n"
    return head + case.body + "\n"


def _target(case: Case, registry: RegistryRef, control: EmulatorControl) -> RegistryRef:
    if case.setup == "standard":
        std = RegistryRef(registry.subscription, registry.resource_group, registry.name + "std", registry.home)
        control.declare_registry(std.subscription, std.resource_group, std.name, std.home, sku="Standard")
        return std
    if case.setup == "missing":
        return RegistryRef(registry.subscription, registry.resource_group, registry.name + "gone", registry.home)
    return registry


def _writes_since(control: EmulatorControl, since_id: int) -> int:
    """Every ARM write the emulator saw after ``since_id``, on any registry, refused or not."""
    return sum(1 for r in control.requests(since_id=since_id) if r["method"] in WRITE_METHODS)


def _last_id(control: EmulatorControl) -> int:
    rows = control.requests(since_id=0)
    return int(rows[-1]["id"]) if rows else 0


def _plan_text(registry: str) -> str:
    from prefect.artifacts import Artifact

    artifact = Artifact.get(f"georep-plan-{registry}")
    return str(artifact.data) if artifact is not None else ""


def test_there_are_at_least_25_flow_level_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_the_field_and_writes_nothing(
    case: Case,
    registry: RegistryRef,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    record: Recorder,
    tmp_path: Path,
) -> None:
    from flows.global_rollout import global_rollout

    target = _target(case, registry, control)
    if case.setup == "eastus":
        client.replications.begin_create(
            registry.resource_group, registry.name, "eastus", {"location": "eastus"}
        ).result()
    since = _last_id(control)
    flow: Callable[..., Any] = global_rollout
    text = _yaml(target, case)
    if case.as_file:
        (tmp_path / "plan.yaml").write_text(text)
        params: dict[str, Any] = {"plan_path": str(tmp_path / "plan.yaml")}
    else:
        params = {"plan_yaml": text}
    state = flow({**params, **(case.params or {})}, return_state=True)
    writes = _writes_since(control, since)
    if case.completes:
        shown = _plan_text(target.name)
        ok = state.is_completed() and case.needle in shown
    else:
        shown = str(state.message) + " " + str(state.result(raise_on_failure=False))
        ok = state.is_failed() and case.needle in shown
    record("bad_input", case=case.id, field=case.needle, refused=ok, writes=writes)
    assert ok, shown[:2000]
    assert writes == 0
