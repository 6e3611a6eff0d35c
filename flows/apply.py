"""Carry a plan's actions out wave by wave: the part the rollout and DR setup flows share.

Within a wave at most ``max_parallel`` regions are in flight (a sliding window over task futures, so the limit
is a run parameter and not a property of the task runner). A wave starts only while the failure budget holds.
Every region's outcome is collected, failed or not, so the flow can report all of them and then fail.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect.futures import PrefectFuture, as_completed

from georep.model import Action, ActionKind, RegionOutcome, RegistryRef, Result
from georep.plan import Plan, budget_exhausted, group_by_wave
from georep.progress import Broadcast
from tasks.limits import write_slots
from tasks.replication import RegionError, task_for


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
