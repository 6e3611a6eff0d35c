"""Carry a plan's actions out wave by wave: the part the rollout and DR setup flows share.

``execute`` is the whole runbook after the plan is in hand (observe → check against the registry → diff →
confirm rule → publish the plan → run → roll back if asked → publish the result), so every flow that applies a
plan behaves, refuses and reports alike; the flows only decide where the plan comes from.

Within a wave at most ``max_parallel`` regions are in flight (a sliding window over task futures, so the limit
is a run parameter and not a property of the task runner). A wave starts only while the failure budget holds.
Every region's outcome is collected, failed or not, so the flow can report all of them and then fail.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed, State

from georep import report
from georep.checkpoint import CheckpointStore
from georep.inventory import RegistryNotFound
from georep.model import Action, ActionKind, RegionOutcome, RegistryRef, Result
from georep.plan import Plan, budget_exhausted, diff, group_by_wave, plan_hash
from georep.progress import Broadcast
from georep.validation import PlanError, Problem, check_registry, raise_for, validate_options
from tasks import artifacts, limits
from tasks.engine import get_engine
from tasks.limits import write_slots
from tasks.replication import RegionError, registry_observe, task_for


def _resolve(future: PrefectFuture[RegionOutcome], action: Action) -> RegionOutcome:
    future.wait()
    value = future.result(raise_on_failure=False)
    if isinstance(value, RegionOutcome):
        return value
    if isinstance(value, RegionError):
        return value.outcome
    error = value if isinstance(value, BaseException) else RuntimeError(f"unexpected task result {value!r}")
    return RegionOutcome(
        region=action.region,
        replication=action.replication,
        action=action.kind,
        result=Result.FAILED,
        error_code=type(error).__name__,
        error_message=str(error)[:500],
    )


def run_wave(
    ref: RegistryRef,
    plan_hash: str,
    actions: Sequence[Action],
    *,
    dry_run: bool,
    max_parallel: int,
    run_id: str | None,
    progress: Broadcast,
    deadline_seconds: float | None = None,
) -> list[RegionOutcome]:
    writers = sum(1 for a in actions if a.kind.writes or a.kind is ActionKind.WAIT)
    if dry_run or not writers:
        return _window(ref, plan_hash, actions, dry_run, max_parallel, run_id, progress, deadline_seconds)
    with write_slots(ref, min(max_parallel, writers)) as slots:
        return _window(ref, plan_hash, actions, dry_run, slots, run_id, progress, deadline_seconds)


def _window(
    ref: RegistryRef,
    plan_hash: str,
    actions: Sequence[Action],
    dry_run: bool,
    max_parallel: int,
    run_id: str | None,
    progress: Broadcast,
    deadline_seconds: float | None,
) -> list[RegionOutcome]:
    queue = list(actions)
    pending: dict[PrefectFuture[RegionOutcome], Action] = {}
    outcomes: list[RegionOutcome] = []
    while queue or pending:
        while queue and len(pending) < max_parallel:
            action = queue.pop(0)
            future = task_for(action).submit(
                ref, plan_hash, action, dry_run=dry_run, run_id=run_id, deadline_seconds=deadline_seconds
            )
            pending[future] = action
        done = next(iter(as_completed(list(pending))))
        outcome = _resolve(done, pending.pop(done))
        outcomes.append(outcome)
        progress.advance(outcome)
    return sorted(outcomes, key=lambda o: o.region)


def run_plan(
    ref: RegistryRef,
    plan: Plan,
    plan_hash: str,
    actions: Sequence[Action],
    *,
    dry_run: bool,
    max_parallel: int,
    run_id: str | None,
    progress: Broadcast,
) -> list[RegionOutcome]:
    outcomes: list[RegionOutcome] = []
    for wave in group_by_wave(plan, actions):
        if budget_exhausted(plan, outcomes):
            failed = sum(1 for o in outcomes if o.failed)
            for action in wave:
                skipped = RegionOutcome(
                    region=action.region,
                    replication=action.replication,
                    action=action.kind,
                    result=Result.SKIPPED,
                    error_message=f"not started: {failed} region(s) failed, over the failure budget of "
                    f"{plan.failure_budget}",
                )
                outcomes.append(skipped)
                progress.advance(skipped)
            continue
        outcomes.extend(
            run_wave(
                ref,
                plan_hash,
                wave,
                dry_run=dry_run,
                max_parallel=max_parallel,
                run_id=run_id,
                progress=progress,
                deadline_seconds=plan.lro_deadline_seconds,
            )
        )
    return outcomes


def rollback(
    ref: RegistryRef, plan_hash: str, created: Sequence[tuple[str, str]], *, run_id: str, progress: Broadcast
) -> list[RegionOutcome]:
    """Delete what this run created, one task per region; the home replica can never be among them."""
    actions = [
        Action(
            region=region,
            replication=name,
            kind=ActionKind.DELETE,
            reason=f"rollback: created by run {run_id} which had failures",
        )
        for region, name in created
    ]
    if not actions:
        return []
    with write_slots(ref, len(actions)) as slots:
        done = _window(ref, f"{plan_hash}-rollback-{run_id}", actions, False, slots, run_id, progress, None)
    return [o.model_copy(update={"result": Result.ROLLED_BACK}) if o.result is Result.SUCCEEDED else o for o in done]


def execute(
    plan: Plan,
    *,
    title: str,
    dry_run: bool,
    confirm: bool,
    max_parallel: int,
    rollback_on_failure: bool = False,
) -> list[RegionOutcome] | State:
    """Apply a validated plan to its registry inside a flow run. Refuses (``PlanError``) before any write when
    the registry does not fit the plan, or when destructive actions lack ``confirm``. Returns every region's
    outcome, or a ``Failed`` state naming the failed regions (a plain return would leave the run Completed)."""
    ref = plan.ref
    if dry_run:
        return _execute(
            plan,
            title=title,
            dry_run=dry_run,
            confirm=confirm,
            max_parallel=max_parallel,
            rollback_on_failure=rollback_on_failure,
        )
    with limits.registry_lock(ref, title):
        return _execute(
            plan,
            title=title,
            dry_run=dry_run,
            confirm=confirm,
            max_parallel=max_parallel,
            rollback_on_failure=rollback_on_failure,
        )


def _execute(
    plan: Plan, *, title: str, dry_run: bool, confirm: bool, max_parallel: int, rollback_on_failure: bool
) -> list[RegionOutcome] | State:
    log = get_run_logger()
    ref, key = plan.ref, plan_hash(plan)
    try:
        info, observed = registry_observe(ref)
    except RegistryNotFound:
        raise_for(check_registry(plan, None))
        raise
    raise_for(check_registry(plan, info, observed))
    actions = diff(plan, info, observed)
    validate_options(plan.prune, confirm, dry_run)
    destructive = [a for a in actions if a.kind.destructive]
    if destructive and not dry_run and not confirm:
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
    artifacts.publish_plan(ref, actions, title)
    log.info("plan %s for %s: %s", key, ref.name, report.plan_summary(actions).replace("\n", " "))

    run_id = str(flow_run.id or "local")
    limits.ensure(ref)
    progress = Broadcast(artifacts.ProgressArtifact(ref))
    progress.start(len(actions), title)
    outcomes = run_plan(
        ref, plan, key, actions, dry_run=dry_run, max_parallel=max_parallel, run_id=run_id, progress=progress
    )
    failed = [o for o in outcomes if o.failed]
    rolled: list[RegionOutcome] = []
    if failed and rollback_on_failure and not dry_run:
        store: CheckpointStore = get_engine().store
        created = [(cp.region, cp.replica) for cp in store.created_by(str(ref), run_id)]
        log.warning("rolling back %d replica(s) created by this run", len(created))
        rolled = rollback(ref, key, created, run_id=run_id, progress=progress)
    summary = report.outcome_summary(outcomes + rolled)
    progress.finish(summary.splitlines()[0] if summary else "done")
    rollback_md = f"## Rollback\n\n{report.outcome_markdown(rolled)}" if rolled else ""
    artifacts.publish_result(ref, outcomes + rolled, title, rollback_md)
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(outcomes)} region(s) failed: "
            + ", ".join(f"{o.region} ({o.error_code})" for o in failed)
        )
    return outcomes
