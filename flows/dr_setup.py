"""DR setup: give a registry its disaster-recovery layout, primary regions serving and DR regions standing by.

Runbook: build the DR plan (from the primary and DR region lists with georep.dr.dr_plan, or from a DR plan file)
→ then exactly the global rollout's path (``flows.apply.execute``): observe the registry → check the plan
against it → confirm rule for destructive actions → publish the plan → apply wave by wave (primaries, then DR)
→ publish the result. Failed whenever a region failed. Never deletes a replica: that is the cleanup flow's job.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.apply import execute
from flows.params import DrSetupParams
from georep.model import RegionOutcome

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "DR setup"
DEFAULTS = DrSetupParams()


@flow(name="dr-setup", task_runner=ThreadPoolTaskRunner(max_workers=64), validate_parameters=True)
def dr_setup(params: DrSetupParams = DEFAULTS) -> list[RegionOutcome] | State:
    plan = params.load(PROJECT_DIR)
    return execute(
        plan,
        title=TITLE,
        dry_run=params.dry_run,
        confirm=params.confirm,
        max_parallel=params.max_parallel,
        rollback_on_failure=params.rollback_on_failure,
    )
