"""Flow parameters as pydantic models: the Prefect UI renders them as forms, and validation runs before the flow
body (so before any ARM call)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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
