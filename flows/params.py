"""Flow parameters as pydantic models: the Prefect UI renders them as forms, and validation runs before the flow
body (so before any ARM call)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from georep.cleanup import Selection
from georep.model import RegistryRef
from georep.plan import Plan, load_plan
from georep.validation import PlanError, check_plan, raise_for

DEFAULT_PLAN = "deployments/plans/global.yaml"


class RolloutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_path: str | None = Field(
        DEFAULT_PLAN,
        description="Plan file (YAML), relative to the project directory. Ignored when plan_yaml is given.",
        json_schema_extra={"position": 0},
    )
    plan_yaml: str | None = Field(
        None,
        description="The plan itself, as YAML text. Wins over plan_path.",
        json_schema_extra={"position": 1, "format": "textarea"},
    )
    dry_run: bool = Field(False, description="Observe and plan only: no ARM write.", json_schema_extra={"position": 2})
    confirm: bool = Field(
        False,
        description="Required for destructive actions (recreate a Failed replica, replace, delete/prune).",
        json_schema_extra={"position": 3},
    )
    max_parallel: int = Field(
        8, ge=1, le=64, description="Regions in flight at once within a wave.", json_schema_extra={"position": 4}
    )
    waves: list[list[str]] | None = Field(
        None,
        description='Override the plan\'s waves, e.g. [["westus2"], ["*"]] for a canary first.',
        json_schema_extra={"position": 5},
    )
    failure_budget: int | None = Field(
        None,
        ge=0,
        description="Override: failed regions tolerated before later waves are not started.",
        json_schema_extra={"position": 6},
    )
    deadline_seconds: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Override: per-region deadline for one LRO action, in seconds.",
        json_schema_extra={"position": 7},
    )
    rollback_on_failure: bool = Field(
        False,
        description="If any region failed, delete the replicas this run created (and only those).",
        json_schema_extra={"position": 8},
    )

    def load(self, base: Path | None = None) -> Plan:
        """The plan with this run's overrides applied, validated as a whole."""
        if self.plan_yaml:
            plan = load_plan(self.plan_yaml)
        elif self.plan_path:
            path = Path(self.plan_path)
            if not path.is_absolute() and base is not None:
                path = base / path
            plan = load_plan(path)
        else:
            from georep.validation import Problem

            raise PlanError([Problem("plan_path", "required", "give plan_path or plan_yaml")])
        updates: dict[str, object] = {}
        if self.waves is not None:
            updates["waves"] = self.waves
        if self.failure_budget is not None:
            updates["failure_budget"] = self.failure_budget
        if self.deadline_seconds is not None:
            updates["lro_deadline_seconds"] = self.deadline_seconds
        if updates:
            plan = Plan.model_validate({**plan.model_dump(), **updates})
            raise_for(check_plan(plan))
        return plan


# ------------------------------------------------------------------------------------------------ DR drill

DRILL_PRESETS_DIR = Path(__file__).resolve().parent.parent / "deployments" / "drills"
_PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class DrillParams(BaseModel):
    """Parameters of the DR drill flow (flows/dr_drill.py). Safe by default: a dry run, and a real drill needs
    dry_run=false *and* confirm=true. A preset (deployments/drills/<name>.yaml) fills every field the caller did
    not give, so a scheduled drill is one name while a person can still override a field for one run."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        None,
        description="Name of deployments/drills/<preset>.yaml; its keys fill the fields not given explicitly.",
        json_schema_extra={"position": 0},
    )
    plan_path: str | None = Field(
        DEFAULT_PLAN,
        description="Plan file (YAML) naming the registry and its intended replicas. Ignored when plan_yaml is given.",
        json_schema_extra={"position": 1},
    )
    plan_yaml: str | None = Field(
        None,
        description="The plan itself, as YAML text. Wins over plan_path.",
        json_schema_extra={"position": 2, "format": "textarea"},
    )
    targets: list[str] = Field(
        default_factory=list,
        description='Regions to drill, e.g. ["westeurope"] (display names such as "West Europe" are accepted).',
        json_schema_extra={"position": 3},
    )
    mode: Literal["failover", "rebuild"] = Field(
        "failover",
        description="failover: take the targets out of global routing, hold, put them back. "
        "rebuild: delete each target replica and re-create it with its original configuration.",
        json_schema_extra={"position": 4},
    )
    hold_seconds: float = Field(
        60,
        ge=0,
        le=86_400,
        description="failover: how long routing stays away from the targets.",
        json_schema_extra={"position": 5},
    )
    max_duration_seconds: float = Field(
        1800,
        gt=0,
        le=86_400,
        description="Deadline for the whole drill; past it the drill stops and restores the original configuration.",
        json_schema_extra={"position": 6},
    )
    dry_run: bool = Field(
        True,
        description="Run every pre-check and publish the steps, write nothing. On by default: drills are destructive.",
        json_schema_extra={"position": 7},
    )
    confirm: bool = Field(
        False, description="Required (with dry_run=false) for a real drill.", json_schema_extra={"position": 8}
    )
    require_ready: bool = Field(
        True,
        description="Another replica must be Ready (not only Succeeded) before the targets are taken out.",
        json_schema_extra={"position": 9},
    )
    drill_id: str | None = Field(
        None,
        max_length=200,
        description="Idempotency key: a finished drill with the same key, registry, targets and mode is not run "
        "again; its report is returned. Defaults to the flow run's idempotency key (run_deployment(idempotency_key=)).",
        json_schema_extra={"position": 10},
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the fields the caller left out from the preset file; explicit values always win."""
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        name = str(data["preset"])
        if not _PRESET_NAME.match(name):
            raise ValueError(f"preset {name!r}: use lowercase letters, digits and dashes (a file name, not a path)")
        path = DRILL_PRESETS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in DRILL_PRESETS_DIR.glob("*.yaml")) if DRILL_PRESETS_DIR.is_dir() else []
            raise ValueError(
                f"preset {name!r}: no {path.name} in deployments/drills (known: {', '.join(known) or 'none'})"
            )
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"preset {name!r}: the file must be a YAML mapping of DrillParams fields")
        if "preset" in values:
            raise ValueError(f"preset {name!r}: a preset cannot name another preset")
        return {**values, **data}

    @field_validator("targets")
    @classmethod
    def _normalize_targets(cls, value: list[str]) -> list[str]:
        # unknown names are kept (normalized) so the flow refuses them with a Problem naming targets[i]
        from georep.drill import normalize_targets

        return normalize_targets(value)

    def load(self, base: Path | None = None) -> Plan:
        """The plan that names the registry and its intended replica configuration."""
        if self.plan_yaml:
            return load_plan(self.plan_yaml)
        if self.plan_path:
            path = Path(self.plan_path)
            if not path.is_absolute() and base is not None:
                path = base / path
            return load_plan(path)
        from georep.validation import Problem

        raise PlanError([Problem("plan_path", "required", "give plan_path or plan_yaml")])


# ------------------------------------------------------------------------------- DR setup, cleanup, status

DEFAULT_DR_PLAN = "deployments/plans/dr.yaml"


def _plan_or_none(path: str | None, text: str | None, base: Path | None) -> Plan | None:
    """A plan from YAML text (wins) or a file, relative paths against ``base`` (the project directory)."""
    if text:
        return load_plan(text)
    if path:
        file = Path(path)
        if not file.is_absolute() and base is not None:
            file = base / file
        return load_plan(file)
    return None


def _registry_ref(
    subscription_id: str | None, resource_group: str | None, name: str | None, plan: Plan | None, plan_field: str
) -> RegistryRef:
    """The registry named by the three parameters, else by the plan. Both given and different is refused: a
    keep plan or drift plan of another registry would decide about the wrong replicas."""
    from georep.validation import Problem, check_registry_section

    given = {"subscription_id": subscription_id, "resource_group": resource_group, "name": name}
    if not any(given.values()):
        if plan is None:
            raise PlanError(
                [
                    Problem(
                        "name",
                        "required",
                        f"name the registry (subscription_id, resource_group, name) or a plan ({plan_field})",
                    )
                ]
            )
        return plan.ref
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise PlanError(
            [Problem(k, "required", "give all three of subscription_id, resource_group and name") for k in missing]
        )
    ref = RegistryRef(subscription_id=str(subscription_id), resource_group=str(resource_group), name=str(name))
    raise_for(check_registry_section(ref, prefix=""))
    if plan is not None and str(plan.ref).lower() != str(ref).lower():
        raise PlanError(
            [
                Problem(
                    plan_field,
                    "registry_mismatch",
                    f"the plan is for registry {plan.ref}, the parameters name {ref}: clear {plan_field} or the registry",
                )
            ]
        )
    return ref


class DrSetupParams(BaseModel):
    """Parameters of the DR setup flow (flows/dr_setup.py): region lists plus the registry, or a DR plan file.
    With region lists the plan is built by georep.dr.dr_plan; without them plan_yaml / plan_path is used."""

    model_config = ConfigDict(extra="forbid")

    primary_regions: list[str] = Field(
        default_factory=list,
        description="Primary regions: zone-redundant, endpoint enabled, tagged dr-tier=primary. "
        "Given (with dr_regions), the registry fields below are required and the plan file is not used.",
        json_schema_extra={"position": 0},
    )
    dr_regions: list[str] = Field(
        default_factory=list,
        description="DR regions: no zone redundancy, endpoint disabled (synced, out of routing), tagged dr-tier=dr.",
        json_schema_extra={"position": 1},
    )
    subscription_id: str | None = Field(
        None, description="Registry subscription (with region lists).", json_schema_extra={"position": 2}
    )
    resource_group: str | None = Field(
        None, description="Registry resource group (with region lists).", json_schema_extra={"position": 3}
    )
    name: str | None = Field(None, description="Registry name (with region lists).", json_schema_extra={"position": 4})
    tags: dict[str, str] = Field(
        default_factory=lambda: {"managed-by": "georep"},
        description="Tags for every replica (with region lists); the dr-tier tag is added per tier.",
        json_schema_extra={"position": 5},
    )
    plan_path: str | None = Field(
        DEFAULT_DR_PLAN,
        description="DR plan file (YAML), relative to the project directory; used when no region lists are given.",
        json_schema_extra={"position": 6},
    )
    plan_yaml: str | None = Field(
        None,
        description="A DR plan as YAML text. Wins over plan_path; not allowed together with region lists.",
        json_schema_extra={"position": 7, "format": "textarea"},
    )
    dry_run: bool = Field(False, description="Observe and plan only: no ARM write.", json_schema_extra={"position": 8})
    confirm: bool = Field(
        False,
        description="Required for destructive actions (recreate a Failed replica, replace).",
        json_schema_extra={"position": 9},
    )
    max_parallel: int = Field(
        8, ge=1, le=64, description="Regions in flight at once within a wave.", json_schema_extra={"position": 10}
    )
    failure_budget: int | None = Field(
        None,
        ge=0,
        description="Failed regions tolerated before the DR wave is held back (region lists: default 0).",
        json_schema_extra={"position": 11},
    )
    deadline_seconds: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Per-region deadline for one LRO action, in seconds.",
        json_schema_extra={"position": 12},
    )
    rollback_on_failure: bool = Field(
        False,
        description="If any region failed, delete the replicas this run created (and only those).",
        json_schema_extra={"position": 13},
    )

    def load(self, base: Path | None = None) -> Plan:
        """The DR plan with this run's overrides applied, validated as a whole."""
        from georep.dr import dr_plan
        from georep.planfile import RegistrySection
        from georep.validation import Problem

        if self.primary_regions or self.dr_regions:
            if self.plan_yaml:
                raise PlanError([Problem("plan_yaml", "conflict", "give region lists or a plan, not both")])
            ref = _registry_ref(self.subscription_id, self.resource_group, self.name, None, "plan_path")
            loaded: Plan | None = dr_plan(
                RegistrySection(**ref.model_dump()), self.primary_regions, self.dr_regions, tags=self.tags
            )
        else:
            loaded = _plan_or_none(self.plan_path, self.plan_yaml, base)
        if loaded is None:
            raise PlanError(
                [
                    Problem(
                        "primary_regions", "required", "give primary_regions (and dr_regions), or plan_path / plan_yaml"
                    )
                ]
            )
        updates: dict[str, object] = {}
        if self.failure_budget is not None:
            updates["failure_budget"] = self.failure_budget
        if self.deadline_seconds is not None:
            updates["lro_deadline_seconds"] = self.deadline_seconds
        if updates:
            loaded = Plan.model_validate({**loaded.model_dump(), **updates})
            raise_for(check_plan(loaded))
        return loaded


class CleanupParams(BaseModel):
    """Parameters of the cleanup flow (flows/cleanup.py). A dry run by default; a real run needs confirm=true.
    A replica is removed only if it matches every criterion given; the home replica and replicas tagged
    georep-protected=true are never removed."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str | None = Field(
        None,
        description="Registry subscription; taken from the keep plan when empty.",
        json_schema_extra={"position": 0},
    )
    resource_group: str | None = Field(
        None, description="Registry resource group; from the keep plan when empty.", json_schema_extra={"position": 1}
    )
    name: str | None = Field(
        None, description="Registry name; from the keep plan when empty.", json_schema_extra={"position": 2}
    )
    keep_plan_path: str | None = Field(
        DEFAULT_PLAN,
        description="Keep the replicas of this plan's regions (relative to the project directory); "
        "replicas outside it are selected. Clear it to select by the other criteria only.",
        json_schema_extra={"position": 3},
    )
    keep_plan_yaml: str | None = Field(
        None,
        description="A keep plan as YAML text; wins over keep_plan_path.",
        json_schema_extra={"position": 4, "format": "textarea"},
    )
    keep_regions: list[str] | None = Field(
        None,
        description="Regions to keep (joins the keep plan's); replicas elsewhere are selected. [] keeps none.",
        json_schema_extra={"position": 5},
    )
    match_tags: list[str] = Field(
        default_factory=list,
        description='Select replicas carrying all these tags, as key=value, e.g. ["env=staging"].',
        json_schema_extra={"position": 6},
    )
    regions: list[str] | None = Field(
        None, description="Select replicas in these regions.", json_schema_extra={"position": 7}
    )
    dry_run: bool = Field(
        True,
        description="Report what would be removed; no ARM write. On by default.",
        json_schema_extra={"position": 8},
    )
    confirm: bool = Field(
        False, description="Required (with dry_run=false) for a real cleanup.", json_schema_extra={"position": 9}
    )
    max_parallel: int = Field(
        4, ge=1, le=64, description="Deletes in flight at once.", json_schema_extra={"position": 10}
    )
    deadline_seconds: float = Field(
        1800,
        gt=0,
        le=86_400,
        description="Per-replica deadline for a delete (until its name is free).",
        json_schema_extra={"position": 11},
    )

    def check_confirm(self) -> None:
        """Refuse a real run without confirm, before anything is read or written."""
        from georep.validation import Problem

        if not self.dry_run and not self.confirm:
            raise PlanError(
                [
                    Problem(
                        "confirm", "required", "a cleanup deletes replicas: pass confirm=true, or run with dry_run=true"
                    )
                ]
            )

    def resolve(self, base: Path | None = None) -> tuple[RegistryRef, Selection]:
        """The registry and the validated selection (``georep.cleanup.Selection``)."""
        from georep.cleanup import selection
        from georep.plan import desired

        plan = _plan_or_none(self.keep_plan_path, self.keep_plan_yaml, base)
        ref = _registry_ref(self.subscription_id, self.resource_group, self.name, plan, "keep_plan_path")
        chosen = selection(
            keep_regions=self.keep_regions,
            plan_regions=[s.region for s in desired(plan)] if plan is not None else None,
            match_tags=self.match_tags,
            in_regions=self.regions,
            extra_protection_tag=plan.protection_tag if plan is not None else None,
        )
        return ref, chosen


class StatusParams(BaseModel):
    """Parameters of the status report flow (flows/status_report.py): health of every replica, and drift
    against a plan when one is given."""

    model_config = ConfigDict(extra="forbid")

    plan_path: str | None = Field(
        DEFAULT_PLAN,
        description="Report drift against this plan (relative to the project directory); it also names the "
        "registry when the registry fields are empty. Clear it for health only.",
        json_schema_extra={"position": 0},
    )
    plan_yaml: str | None = Field(
        None,
        description="The plan as YAML text; wins over plan_path.",
        json_schema_extra={"position": 1, "format": "textarea"},
    )
    subscription_id: str | None = Field(None, description="Registry subscription.", json_schema_extra={"position": 2})
    resource_group: str | None = Field(None, description="Registry resource group.", json_schema_extra={"position": 3})
    name: str | None = Field(None, description="Registry name.", json_schema_extra={"position": 4})
    fail_on_unhealthy: bool = Field(
        False,
        description="Fail the run when any replica is unhealthy (not Succeeded, or displayStatus not Ready/Syncing).",
        json_schema_extra={"position": 5},
    )

    def resolve(self, base: Path | None = None) -> tuple[RegistryRef, Plan | None]:
        """The registry and the drift plan, if any."""
        plan = _plan_or_none(self.plan_path, self.plan_yaml, base)
        return _registry_ref(self.subscription_id, self.resource_group, self.name, plan, "plan_path"), plan


# ---------------------------------------------------------------------------------------------- fleet rollout

from georep.fleet import Fleet, FleetError, load_fleet  # noqa: E402  (this section is appended to the module)

DEFAULT_FLEET = "deployments/fleets/demo.yaml"
DEFAULT_CHILD_DEPLOYMENT = "global-rollout/registry-rollout"


class FleetParams(BaseModel):
    """Parameters of the fleet rollout flow (flows/fleet_rollout.py): one global rollout per registry of a fleet
    file, each a child run of its own. The whole fleet is validated before the first child starts."""

    model_config = ConfigDict(extra="forbid")

    fleet_path: str | None = Field(
        DEFAULT_FLEET,
        description="Fleet file (YAML), relative to the project directory. Ignored when fleet_yaml is given.",
        json_schema_extra={"position": 0},
    )
    fleet_yaml: str | None = Field(
        None,
        description="The fleet itself, as YAML text. Wins over fleet_path; its plan_path entries are relative to "
        "the project directory.",
        json_schema_extra={"position": 1, "format": "textarea"},
    )
    mode: Literal["deployments", "subflows"] = Field(
        "deployments",
        description="deployments: one run of child_deployment per registry, picked up by any worker of its pool. "
        "subflows: every registry's rollout runs inside this flow run's process.",
        json_schema_extra={"position": 2},
    )
    child_deployment: str = Field(
        DEFAULT_CHILD_DEPLOYMENT,
        min_length=3,
        description="deployments mode: the global-rollout deployment (flow/deployment) each registry runs as.",
        json_schema_extra={"position": 3},
    )
    max_parallel_registries: int = Field(
        10, ge=1, le=200, description="Registries rolling out at once.", json_schema_extra={"position": 4}
    )
    max_parallel: int = Field(
        8,
        ge=1,
        le=64,
        description="Regions in flight at once within a wave, per registry.",
        json_schema_extra={"position": 5},
    )
    dry_run: bool = Field(
        False, description="Observe and plan every registry only: no ARM write.", json_schema_extra={"position": 6}
    )
    confirm: bool = Field(
        False,
        description="Required for destructive actions (recreate a Failed replica, replace, delete/prune) in any registry.",
        json_schema_extra={"position": 7},
    )
    child_timeout_seconds: float | None = Field(
        21_600,
        gt=0,
        le=7 * 86_400,
        description="A registry whose child run has not finished this long after it was started counts as failed "
        "(deployments mode: the child is left running and named in the report; subflows mode: the child is "
        "stopped). Empty: wait as long as it takes.",
        json_schema_extra={"position": 8},
    )

    def load(self, base: Path | None = None) -> Fleet:
        """The fleet, every member's plan validated, before anything is dispatched."""
        from georep.validation import Problem

        if self.fleet_yaml:
            return load_fleet(self.fleet_yaml, base=base)
        if self.fleet_path:
            path = Path(self.fleet_path)
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise FleetError([Problem("fleet_path", "exists", f"no fleet file {path}")])
            return load_fleet(path)
        raise FleetError([Problem("fleet_path", "required", "give fleet_path or fleet_yaml")])
