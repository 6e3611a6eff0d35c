"""Fleet rollout: one global rollout per registry of a fleet file, tens to hundreds of registries at a time.

Runbook: load and validate the whole fleet (a bad fleet fails here, before any child exists: no ARM write) →
read every registry once (missing, not Premium, home replica in the plan: refused here too, still before any
write) → publish the fleet plan → dispatch one child per registry, at most ``max_parallel_registries`` at once → collect
each child's regions as it finishes → publish the registry x region table, the summary and the progress → Failed
naming the failed registries, if any.

Two ways to run the children:

* ``deployments`` (default): each registry is a run of the ``global-rollout/registry-rollout`` deployment,
  created with ``run_deployment(timeout=0)`` and linked to this run as a subflow, so any worker of the pool picks
  it up: the fleet scales with workers, not with this process. The idempotency key is this run's id + the
  registry + its plan hash, so a retried parent re-attaches to the children it already started instead of
  starting a second rollout of the same registry. All running children are polled with one API call per cycle.
* ``subflows``: every registry's rollout runs in this process as a subflow, each inside a task of this flow's
  thread pool (a flow called from a task is that task's subflow). For small fleets, and for runs without workers.

Either way the child is ``global_rollout`` itself: same validation, registry lock, checkpoints and artifacts as a
single-registry rollout. The registry lock (tasks/limits.py) keeps one writing run per registry, so the child
deployment needs no concurrency limit of its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.global_rollout import global_rollout
from flows.params import FleetParams, RolloutParams
from georep.fleet import Fleet, FleetError, FleetMember, RegistryRun, fleet_hash, fleet_totals, plan_yaml, subscriptions
from georep.model import RegionOutcome, RegistryRef
from georep.planfile import plan_hash
from georep.validation import Problem
from tasks import fleet as fleet_artifacts

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "Fleet rollout"
DEFAULTS = FleetParams()
#: deployments mode: seconds between two polls of the running children (one API call for all of them)
POLL_SECONDS = float(os.environ.get("GEOREP_FLEET_POLL_SECONDS", "5"))


@flow(name="fleet-rollout", task_runner=ThreadPoolTaskRunner(max_workers=200), validate_parameters=True)
def fleet_rollout(params: FleetParams = DEFAULTS) -> list[RegistryRun] | State:
    log = get_run_logger()
    fleet = params.load(PROJECT_DIR)
    raise_for_fleet(fleet_artifacts.preflight(fleet.members))
    key = fleet_hash(fleet)
    subs = subscriptions(fleet)
    described = f"{len(fleet.members)} registries in {len(subs)} subscription(s), mode {params.mode}" + (
        ", dry run" if params.dry_run else ""
    )
    fleet_artifacts.publish_plan(fleet, key, TITLE, described)
    log.info("fleet %s: %s", key, described)

    progress = fleet_artifacts.FleetProgress(key)
    progress.start(len(fleet.members), TITLE)
    if params.mode == "subflows":
        runs = _run_subflows(fleet, params, progress)
    else:
        runs = _run_deployments(fleet, params, key, progress)
    order = {m.ref: m.index for m in fleet.members}
    runs.sort(key=lambda r: order[r.ref])

    totals = fleet_totals(runs)
    progress.finish(f"{totals.registries_ok} of {totals.registries} registries ok, {totals.registries_failed} failed")
    fleet_artifacts.publish_result(runs, key, TITLE)
    failed = [r for r in runs if r.failed]
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(runs)} registr{'y' if len(runs) == 1 else 'ies'} failed: "
            + ", ".join(f"{r.ref.name} ({r.state.lower()})" for r in failed)
        )
    return runs


def _child_params(member: FleetMember, params: FleetParams) -> RolloutParams:
    return RolloutParams(
        plan_path=None,
        plan_yaml=plan_yaml(member.plan),
        dry_run=params.dry_run,
        confirm=params.confirm,
        max_parallel=params.max_parallel,
    )


def raise_for_fleet(problems: list[Problem]) -> None:
    if problems:
        raise FleetError(problems)


# ------------------------------------------------------------------------------------------------ subflows


@task(name="registry-rollout", task_run_name="rollout-{ref.name}", cache_policy=NO_CACHE)
def rollout_subflow(ref: RegistryRef, rollout: RolloutParams, timeout_seconds: float | None) -> RegistryRun:
    """One registry's global rollout as a subflow of this task. Its outcomes come back in memory when it
    completes; a failed child's result table is read by the flow afterwards."""
    child = global_rollout.with_options(flow_run_name=f"rollout-{ref.name}", timeout_seconds=timeout_seconds)
    state = child(rollout, return_state=True)
    run_id = state.state_details.flow_run_id
    outcomes: tuple[RegionOutcome, ...] = ()
    if state.is_completed():
        value = state.result(raise_on_failure=False)
        if isinstance(value, list):
            outcomes = tuple(o for o in value if isinstance(o, RegionOutcome))
    return RegistryRun(
        ref=ref,
        state=state.type.value,
        message=state.message or "",
        outcomes=outcomes,
        flow_run_id=str(run_id) if run_id else None,
        url=fleet_artifacts.ui_url(run_id),
    )


def _resolve(future: PrefectFuture[RegistryRun], member: FleetMember) -> RegistryRun:
    future.wait()
    value = future.result(raise_on_failure=False)
    if isinstance(value, RegistryRun):
        return value
    return RegistryRun(ref=member.ref, state="CRASHED", message=f"{type(value).__name__}: {value}"[:500])


def _run_subflows(fleet: Fleet, params: FleetParams, progress: fleet_artifacts.FleetProgress) -> list[RegistryRun]:
    queue = list(fleet.members)
    pending: dict[PrefectFuture[RegistryRun], FleetMember] = {}
    runs: list[RegistryRun] = []
    while queue or pending:
        while queue and len(pending) < params.max_parallel_registries:
            member = queue.pop(0)
            future = rollout_subflow.submit(member.ref, _child_params(member, params), params.child_timeout_seconds)
            pending[future] = member
        done = next(iter(as_completed(list(pending))))
        run = _with_table(_resolve(done, pending.pop(done)))
        runs.append(run)
        progress.advance(run)
    return runs


def _with_table(run: RegistryRun) -> RegistryRun:
    """A failed child returned a state, not its outcomes: its result table still names every region."""
    if run.outcomes or run.flow_run_id is None:
        return run
    found = fleet_artifacts.read_results({UUID(run.flow_run_id): run.ref})
    return run.model_copy(update={"outcomes": tuple(found.get(UUID(run.flow_run_id), []))})


# --------------------------------------------------------------------------------------------- deployments


@dataclass
class _Child:
    member: FleetMember
    run: FlowRun
    started: float


def _idempotency_key(parent: str, member: FleetMember) -> str:
    return f"{parent}:{str(member.ref).lower()}:{plan_hash(member.plan)}"


def _dispatch(member: FleetMember, params: FleetParams, parent: str, key: str) -> FlowRun:
    rollout = _child_params(member, params)
    parameters: dict[str, Any] = {
        "params": rollout.model_dump(
            mode="json", include={"plan_path", "plan_yaml", "dry_run", "confirm", "max_parallel"}
        )
    }
    dispatched = run_deployment(
        params.child_deployment,
        parameters=parameters,
        timeout=0,
        as_subflow=True,
        idempotency_key=_idempotency_key(parent, member),
        flow_run_name=f"rollout-{member.ref.name}",
        tags=["georep", "fleet", f"fleet-{key[:12]}"],
    )
    return cast(FlowRun, dispatched)  # the sync twin: this flow is sync


def _run_deployments(
    fleet: Fleet, params: FleetParams, key: str, progress: fleet_artifacts.FleetProgress
) -> list[RegistryRun]:
    log = get_run_logger()
    parent = str(flow_run.id or "local")
    queue = list(fleet.members)
    running: dict[UUID, _Child] = {}
    runs: list[RegistryRun] = []
    while queue or running:
        while queue and len(running) < params.max_parallel_registries:
            member = queue.pop(0)
            dispatched = _dispatch(member, params, parent, key)
            log.info("registry %s: child run %s (%s)", member.ref.name, dispatched.name, dispatched.id)
            running[dispatched.id] = _Child(member, dispatched, time.monotonic())
        states = fleet_artifacts.read_flow_runs(list(running))
        now = time.monotonic()
        finished: dict[UUID, tuple[_Child, str, str]] = {}
        for run_id, child in running.items():
            current = states.get(run_id, child.run)
            child.run = current
            state = current.state
            if state is not None and state.is_final():
                finished[run_id] = (child, state.type.value, state.message or "")
            elif params.child_timeout_seconds is not None and now - child.started > params.child_timeout_seconds:
                last = state.name if state is not None else "unknown"
                finished[run_id] = (
                    child,
                    "TIMED_OUT",
                    f"not finished {params.child_timeout_seconds:.0f} s after it was started (last state {last}); "
                    "it was left running",
                )
        if not finished:
            time.sleep(POLL_SECONDS)
            continue
        tables = fleet_artifacts.read_results({run_id: child.member.ref for run_id, (child, _, _) in finished.items()})
        for run_id, (child, state_name, message) in finished.items():
            del running[run_id]
            run = RegistryRun(
                ref=child.member.ref,
                state=state_name,
                message=message,
                outcomes=tuple(tables.get(run_id, [])),
                flow_run_id=str(run_id),
                url=fleet_artifacts.ui_url(run_id),
            )
            runs.append(run)
            progress.advance(run)
            if run.failed:
                log.warning("registry %s: child run %s ended %s: %s", run.ref.name, run_id, state_name, message)
    return runs
