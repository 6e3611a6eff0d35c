"""Carry a plan's actions out wave by wave: the part the rollout and DR setup flows share.

``execute`` is the whole runbook after the plan is in hand (observe → check against the registry → diff →
confirm rule → publish the plan → run → roll back if asked → publish the result), so every flow that applies a
plan behaves, refuses and reports alike; the flows only decide where the plan comes from.

Within a wave at most ``max_parallel`` regions are in flight (a sliding window over task futures, so the limit
is a run parameter and not a property of the task runner). A wave starts only while the failure budget holds.
Every region's outcome is collected, failed or not, so the flow can report all of them and then fail.

Prefect API calls that no region waits for are kept off the path to the first PUT: the write limits are
ensured (reads) beside the lock and the observation, and the plan and progress artifacts wait in a paused
``artifacts.Publisher`` until the first wave holds its slots, then go out one at a time while the LROs run (the
temporary server's SQLite takes one writer at a time). A wave's slots are returned through the same publisher,
so a following wave without writes does not wait for it; the run joins the publisher before it ends, so every
artifact is there when the flow run finishes.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

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


@contextmanager
def local_run(temporary_server: bool | None = None) -> Iterator[None]:
    """Run a flow in this process the way ``georep apply`` does.

    On a temporary Prefect server (Prefect's ephemeral one, or the one ``georep apply`` starts), which lives and
    dies with this process, nothing reads flow-run heartbeats (they feed zombie-run detection on a real server),
    yet the end of every flow run waits up to 1 s for the heartbeat thread, which sleeps in 1 s steps. So such runs
    go without heartbeats; runs on a real server (workers, deployments, ``PREFECT_API_URL``) keep them.
    ``temporary_server=None``: temporary when no API URL is configured."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if temporary_server is None:
        temporary_server = not PREFECT_API_URL.value()
    if not temporary_server:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


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
    publisher: artifacts.Publisher | None = None,
    limits_ready: Future[Any] | None = None,
) -> list[RegionOutcome]:
    """One wave. With a ``publisher``: it is resumed once the wave holds its slots (the writes it holds back stay
    off the path to the first PUT), and the wave's slots are returned through it once its last region is done, so
    a following wave without writes, or the result artifacts, do not wait for that round trip (a wave that takes
    slots waits for it). ``limits_ready``: the write limits being ensured, awaited before slots are taken."""
    writers = sum(1 for a in actions if a.kind.writes or a.kind is ActionKind.WAIT)
    if dry_run or not writers:
        if publisher is not None:
            publisher.resume()
        return _window(ref, plan_hash, actions, dry_run, max_parallel, run_id, progress, deadline_seconds)
    if limits_ready is not None:
        limits_ready.result()
    if publisher is not None:
        publisher.join(resume=False)  # the previous wave's slots are back before this one takes its own
    with ExitStack() as held:
        slots = held.enter_context(write_slots(ref, min(max_parallel, writers)))
        if publisher is not None:
            publisher.resume()
        outcomes = _window(ref, plan_hash, actions, dry_run, slots, run_id, progress, deadline_seconds)
        if publisher is not None:
            publisher.submit(held.pop_all().close)
        return outcomes


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
    publisher: artifacts.Publisher | None = None,
    limits_ready: Future[Any] | None = None,
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
                publisher=publisher,
                limits_ready=limits_ready,
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
    publisher = artifacts.Publisher(paused=True)  # resumed once the first wave holds its slots
    options: dict[str, Any] = {
        "title": title,
        "dry_run": dry_run,
        "confirm": confirm,
        "max_parallel": max_parallel,
        "rollback_on_failure": rollback_on_failure,
        "publisher": publisher,
    }
    try:
        if dry_run:
            result = _execute(plan, limits_ready=None, **options)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="georep-limits") as pool:
                # reads (creates the first time): beside the lock and the observation; the first wave awaits it
                ensuring = pool.submit(contextvars.copy_context().run, limits.ensure, ref)
                with limits.registry_lock(ref, title):
                    result = _execute(plan, limits_ready=ensuring, **options)
                    publisher.join()  # the last wave's slots are back before the lock is
    except BaseException:
        with suppress(Exception):
            publisher.join()
        raise
    finally:
        publisher.close()
    return result


def _execute(
    plan: Plan,
    *,
    title: str,
    dry_run: bool,
    confirm: bool,
    max_parallel: int,
    rollback_on_failure: bool,
    publisher: artifacts.Publisher,
    limits_ready: Future[Any] | None,
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
    publisher.submit(artifacts.publish_plan, ref, actions, title)
    log.info("plan %s for %s: %s", key, ref.name, report.plan_summary(actions).replace("\n", " "))

    run_id = str(flow_run.id or "local")
    progress = Broadcast(artifacts.ProgressArtifact(ref, publisher=publisher))
    progress.start(len(actions), title)
    outcomes = run_plan(
        ref,
        plan,
        key,
        actions,
        dry_run=dry_run,
        max_parallel=max_parallel,
        run_id=run_id,
        progress=progress,
        publisher=publisher,
        limits_ready=limits_ready,
    )
    failed = [o for o in outcomes if o.failed]
    rolled: list[RegionOutcome] = []
    if failed and rollback_on_failure and not dry_run:
        store: CheckpointStore = get_engine().store
        created = [(cp.region, cp.replica) for cp in store.created_by(str(ref), run_id)]
        log.warning("rolling back %d replica(s) created by this run", len(created))
        publisher.join()  # the last wave's slots are back before the rollback takes its own
        rolled = rollback(ref, key, created, run_id=run_id, progress=progress)
    summary = report.outcome_summary(outcomes + rolled)
    rollback_md = f"## Rollback\n\n{report.outcome_markdown(rolled)}" if rolled else ""
    publisher.submit(artifacts.publish_result, ref, outcomes + rolled, title, rollback_md)
    progress.finish(summary.splitlines()[0] if summary else "done")  # waits for the publisher
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(outcomes)} region(s) failed: "
            + ", ".join(f"{o.region} ({o.error_code})" for o in failed)
        )
    return outcomes
