"""Flow parameters as pydantic models: the Prefect UI renders them as forms, and validation runs before the flow
body (so before any ARM call)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
        None, ge=0, description="Override: failed regions tolerated before later waves are not started."
    )
    deadline_seconds: float | None = Field(
        None, gt=0, le=86_400, description="Override: per-region deadline for one LRO action, in seconds."
    )
    rollback_on_failure: bool = Field(
        False, description="If any region failed, delete the replicas this run created (and only those)."
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
