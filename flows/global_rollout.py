"""Global rollout: make a registry's replicas match a plan, region by region, wave by wave.

Runbook: load and validate the plan → observe the registry → check the plan against it → publish the plan →
apply wave by wave → roll back what this run created if asked and needed → publish the result. The flow is Failed
whenever any region failed; every region's outcome is reported either way.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.apply import rollback, run_plan
from flows.params import RolloutParams
from georep import report
from georep.checkpoint import CheckpointStore
from georep.inventory import RegistryNotFound
from georep.model import RegionOutcome
from georep.plan import diff, plan_hash
from georep.progress import Broadcast
from georep.validation import PlanError, Problem, check_registry, raise_for, validate_options
from tasks import artifacts, limits
from tasks.engine import get_engine
from tasks.replication import registry_observe

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "Global rollout"
DEFAULTS = RolloutParams()


@flow(name="global-rollout", task_runner=ThreadPoolTaskRunner(max_workers=64), validate_parameters=True)
def global_rollout(params: RolloutParams = DEFAULTS) -> list[RegionOutcome] | State:
    log = get_run_logger()
    plan = params.load(PROJECT_DIR)
    ref, key = plan.ref, plan_hash(plan)
    try:
        info, observed = registry_observe(ref)
    except RegistryNotFound:
        raise_for(check_registry(plan, None))
        raise
    raise_for(check_registry(plan, info, observed))
    actions = diff(plan, info, observed)
    validate_options(plan.prune, params.confirm, params.dry_run)
    destructive = [a for a in actions if a.kind.destructive]
    if destructive and not params.dry_run and not params.confirm:
        raise PlanError(
            [
                Problem(
                    "confirm",
                    "required",
                    "destructive actions need confirm=true: "
                    + ", ".join(f"{a.kind.value} {a.region}" for a in destructive),
                )
            ]
        )
    artifacts.publish_plan(ref, actions, TITLE)
    log.info("plan %s for %s: %s", key, ref.name, report.plan_summary(actions).replace("\n", " "))

    run_id = str(flow_run.id or "local")
    limits.ensure(ref)
    progress = Broadcast(artifacts.ProgressArtifact(ref))
    progress.start(len(actions), TITLE)
    outcomes = run_plan(
        ref,
        plan,
        key,
        actions,
        dry_run=params.dry_run,
        max_parallel=params.max_parallel,
        run_id=run_id,
        progress=progress,
    )
    failed = [o for o in outcomes if o.failed]
    rolled: list[RegionOutcome] = []
    if failed and params.rollback_on_failure and not params.dry_run:
        store: CheckpointStore = get_engine().store
        created = [(cp.region, cp.replica) for cp in store.created_by(str(ref), run_id)]
        log.warning("rolling back %d replica(s) created by this run", len(created))
        rolled = rollback(ref, key, created, run_id=run_id, progress=progress)
    summary = report.outcome_summary(outcomes + rolled)
    progress.finish(summary.splitlines()[0] if summary else "done")
    rollback_md = f"## Rollback\n\n{report.outcome_markdown(rolled)}" if rolled else ""
    artifacts.publish_result(ref, outcomes + rolled, TITLE, rollback_md)
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(outcomes)} region(s) failed: "
            + ", ".join(f"{o.region} ({o.error_code})" for o in failed)
        )
    return outcomes
