"""Global rollout: make a registry's replicas match a plan, region by region, wave by wave.

Runbook: load and validate the plan → observe the registry → check the plan against it → publish the plan →
apply wave by wave → roll back what this run created if asked and needed → publish the result. The flow is Failed
whenever any region failed; every region's outcome is reported either way. Everything after loading the plan is
``flows.apply.execute``, shared with the DR setup flow.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.apply import execute
from flows.params import RolloutParams
from georep.model import RegionOutcome

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "Global rollout"
DEFAULTS = RolloutParams()


@flow(name="global-rollout", task_runner=ThreadPoolTaskRunner(max_workers=64), validate_parameters=True)
def global_rollout(params: RolloutParams = DEFAULTS) -> list[RegionOutcome] | State:
    plan = params.load(PROJECT_DIR)
    return execute(
        plan,
        title=TITLE,
        dry_run=params.dry_run,
        confirm=params.confirm,
        max_parallel=params.max_parallel,
        rollback_on_failure=params.rollback_on_failure,
    )
