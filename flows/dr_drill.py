"""DR drill: rehearse losing a region on a live registry, measure the recovery, and always put things back.

Runbook: load the plan (it names the registry) → static checks (targets, dry_run/confirm) → replay a finished
drill with the same idempotency key instead of drilling twice → take the registry's drill lock (a strict global
concurrency limit of 1: a second drill fails fast) → observe → pre-checks (home, exists, Succeeded, protected,
another healthy replica, endpoint enabled) → publish the steps → [dry run stops here] → journal the original
configuration → drill → restore if anything is left changed → publish timeline, figures and restore status.

Modes:

* ``failover``: PATCH ``regionEndpointEnabled=false`` on each target, verify the rest are Succeeded and Ready,
  hold ``hold_seconds``, PATCH it back. Figures: time to failover, time to restore.
* ``rebuild``: DELETE each target (the engine waits for consistent 404s), PUT it back with the configuration
  observed before the drill (the engine retries the 409 of the settle window), wait for Succeeded, then Ready.
  Figures: rebuild RTO to Succeeded and to Ready.

Restore is guaranteed three ways, all working from the journal (georep/journal.py) written before the first write:
the flow's ``finally`` for ordinary failures and the deadline; ``on_failure``/``on_crashed`` hooks if that restore
failed or never ran; ``on_cancellation`` when the run is cancelled (the runner/worker runs it, in another process).
Each records who restored, so nothing is restored twice, and the report says how.

Trigger deployments with ``run_deployment(..., idempotency_key="drill-2026-w12")``: the server runs one flow run per
key, and if a run is retried or re-requested with ``drill_id`` the same key, a finished drill returns its report.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow, State, flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.params import DrillParams
from georep import drill
from georep.drill import DrillReport, Step
from georep.inventory import RegistryNotFound
from georep.journal import RESTORE_DONE, RESTORE_PENDING, DrillEntry
from georep.model import ObservedReplica, RegionOutcome, RegistryRef
from georep.plan import Plan
from georep.validation import PlanError, Problem, check_registry, raise_for
from tasks import artifacts, limits
from tasks.drill import DrillDeadline, drill_restore, get_journal, replica_wait, replicas_read
from tasks.engine import get_engine
from tasks.limits import RegistryBusy
from tasks.replication import RegionError, registry_observe, replica_delete, replica_ensure, replica_update

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "DR drill"
DEFAULTS = DrillParams()
#: a second drill on the same registry waits this long for the lock, then fails (a drill is never queued)
LOCK_TIMEOUT_SECONDS = 3.0
#: the hold and the readiness polls sleep in steps this short, so the deadline is checked often
HOLD_STEP_SECONDS = 0.25


class DrillBusy(RegistryBusy):
    """Another run (a drill, a rollout, a cleanup) holds the registry's write lock."""


def lock_name(ref: RegistryRef) -> str:
    return limits.lock_name(ref)


@contextmanager
def drill_lock(ref: RegistryRef, timeout_seconds: float = LOCK_TIMEOUT_SECONDS) -> Iterator[str]:
    """One writing run per registry: the same strict lock as rollouts and cleanups take (tasks.limits), so a
    drill never runs while a rollout is rebuilding the replicas it relies on, and vice versa."""
    try:
        with limits.registry_lock(ref, "DR drill", timeout_seconds) as name:
            yield name
    except DrillBusy:
        raise
    except RegistryBusy as exc:
        raise DrillBusy(str(exc)) from exc


def _idempotency_key() -> str | None:
    """The flow run's idempotency key (set by run_deployment(idempotency_key=...)), if any."""
    if flow_run.id is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(UUID(str(flow_run.id))).idempotency_key
    except Exception:  # a missing key only disables the replay, never the drill
        return None


class _Progress:
    """One progress artifact per drill, advanced step by step (keyed per registry)."""

    def __init__(self, ref: RegistryRef, total: int) -> None:
        self.total, self.done = max(total, 1), 0
        self.id: UUID | None = None
        with contextlib.suppress(Exception):
            self.id = artifacts.progress(0.0, artifacts.key("drill-progress", ref), f"{TITLE}: 0/{total} steps")

    def advance(self, text: str) -> None:
        self.done += 1
        if self.id is not None:
            with contextlib.suppress(Exception):
                artifacts.update_progress(self.id, min(100.0, 100.0 * self.done / self.total), text[:500])

    def finish(self, text: str) -> None:
        if self.id is not None:
            with contextlib.suppress(Exception):
                artifacts.update_progress(self.id, 100.0, text[:500])


class _Drill:
    """One real drill's bookkeeping: timeline, figures, deadline, journal intents."""

    def __init__(
        self, params: DrillParams, plan: Plan, entry: DrillEntry, observed: list[ObservedReplica], home: str
    ) -> None:
        self.params, self.plan, self.entry, self.home = params, plan, entry, home
        self.ref = entry.ref
        self.observed = observed
        self.by_region = {o.region: o for o in observed}
        self.started = time.time()
        self.deadline = self.started + params.max_duration_seconds
        self.timeline: list[Step] = []
        self.figures: dict[str, float | None] = {}
        self.outcomes: list[RegionOutcome] = []
        self.progress = _Progress(self.ref, len(drill.planned_steps(params.mode, self.targets, params.hold_seconds)))
        self.journal = get_journal()
        self.log = get_run_logger()

    @property
    def targets(self) -> list[ObservedReplica]:
        return [self.by_region[t] for t in self.params.targets]

    # ----------------------------------------------------------------- helpers
    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[Step]:
        step = Step(step=name, start=time.time(), end=time.time(), detail=detail)
        try:
            yield step
        finally:
            step.end = time.time()
            self.timeline.append(step)
            self.progress.advance(f"{name} {detail}".strip())

    def remaining(self) -> float:
        left = self.deadline - time.time()
        if left <= 0:
            raise DrillDeadline(f"the drill exceeded max_duration_seconds={self.params.max_duration_seconds:g}")
        return left

    def intent(self, what: str, region: str) -> None:
        """Recorded before the write is sent: a crash right after sending must still be restored."""
        self.entry.writes.append(f"{what}:{region}")
        self.entry.restore = RESTORE_PENDING
        self.journal.save(self.entry)

    def key(self, step: str) -> str:
        return f"drill-{self.entry.drill_id}-{step}"

    def outcome(self, result: RegionOutcome) -> RegionOutcome:
        self.outcomes.append(result)
        return result

    def _figure(self, name: str, region: str, value: float | None) -> None:
        label = name if len(self.params.targets) == 1 else f"{name}@{region}"
        self.figures[label] = None if value is None else round(value, 3)

    # ----------------------------------------------------------------- failover
    def failover(self) -> None:
        p = self.params
        t0 = time.time()
        for t in self.targets:
            with self.step("disable-endpoint", t.region):
                action = drill.endpoint_action(
                    t, False, f"DR drill {self.entry.drill_id}: fail over away from {t.region}"
                )
                self.intent("disable", t.region)
                self.outcome(replica_update(self.ref, self.key("disable"), action, deadline_seconds=self.remaining()))
        self.figures["time_to_failover_seconds"] = round(time.time() - t0, 3)

        with self.step("verify", "remaining replicas") as step:
            t1 = time.time()
            others = [o for o in self.observed if o.region not in p.targets]
            now = replicas_read(self.ref, [o.name for o in others], self.home)
            bad = [
                f"{o.region} ({_describe(now.get(o.name))})"
                for o in others
                if drill.healthy(o, p.require_ready)
                and not (now.get(o.name) and drill.healthy(now[o.name], p.require_ready))  # type: ignore[arg-type]
            ]
            serving = [o for o in now.values() if o is not None and drill.healthy(o, p.require_ready)]
            step.detail = f"{len(serving)} serving"
            if bad or not serving:
                raise RuntimeError(
                    "verification failed: with the targets out of routing, "
                    + (f"replicas no longer serving: {', '.join(bad)}" if bad else "no replica is serving")
                )
            self.figures["verify_seconds"] = round(time.time() - t1, 3)

        with self.step("hold", f"{p.hold_seconds:g} s"):
            t2 = time.time()
            end = t2 + p.hold_seconds
            while time.time() < end:
                self.remaining()
                time.sleep(max(0.0, min(HOLD_STEP_SECONDS, end - time.time())))
            self.figures["hold_seconds"] = round(time.time() - t2, 3)

        t3 = time.time()
        for t in self.targets:
            with self.step("restore-endpoint", t.region):
                action = drill.endpoint_action(
                    t.model_copy(update={"region_endpoint_enabled": False}),
                    t.region_endpoint_enabled,
                    f"DR drill {self.entry.drill_id}: restore routing to {t.region}",
                )
                # the restore must not be starved by the drill's deadline: it gets the plan's own LRO deadline
                self.outcome(
                    replica_update(
                        self.ref, self.key("restore"), action, deadline_seconds=self.plan.lro_deadline_seconds
                    )
                )
        self.figures["time_to_restore_seconds"] = round(time.time() - t3, 3)
        self._restored("the drill's own restore step (PATCH back)")

    # ------------------------------------------------------------------ rebuild
    def rebuild(self) -> None:
        poll = max(0.05, min(2.0, get_engine().settings.polling_interval / 2))
        for t in self.targets:
            t0 = time.time()
            with self.step("delete", t.region):
                self.intent("delete", t.region)
                action = drill.delete_action(t, f"DR drill {self.entry.drill_id}: rebuild {t.region}")
                self.outcome(
                    replica_delete(self.ref, self.key(f"delete-{t.region}"), action, deadline_seconds=self.remaining())
                )
            self._figure("delete_seconds", t.region, time.time() - t0)
            with self.step("recreate", t.region) as step:
                self.intent("create", t.region)
                action = drill.create_action(t, f"DR drill {self.entry.drill_id}: re-create {t.region} as it was")
                done = self.outcome(
                    replica_ensure(self.ref, self.key(f"create-{t.region}"), action, deadline_seconds=self.remaining())
                )
                step.detail = f"{t.region} {done.provisioning_state}/{done.display_status}"
            with self.step("wait-succeeded", t.region):
                replica_wait(self.ref, t.name, self.home, "succeeded", self.deadline, poll)
            t_succeeded = time.time()
            self._figure("rto_succeeded_seconds", t.region, t_succeeded - t0)
            with self.step("wait-ready", t.region):
                replica_wait(self.ref, t.name, self.home, "ready", self.deadline, poll)
            self._figure("rto_ready_seconds", t.region, time.time() - t0)
            self._figure("syncing_seconds", t.region, time.time() - t_succeeded)
        self._restored("the drill's own re-create step (PUT with the original configuration)")

    def _restored(self, how: str) -> None:
        self.entry.restore, self.entry.restore_by = RESTORE_DONE, "drill"
        self.entry.restore_detail = how
        self.journal.save(self.entry)


def _describe(o: ObservedReplica | None) -> str:
    if o is None:
        return "gone"
    endpoint = "" if o.region_endpoint_enabled else ", out of routing"
    return f"{o.provisioning_state}/{o.display_status}{endpoint}"


def publish_report(ref: RegistryRef, report: DrillReport, flow_run_id: UUID | None = None) -> None:
    """Timeline table + figures/restore markdown; keyed per registry so the Artifacts page keeps versions.
    ``flow_run_id``: the run they belong to when this runs outside it (a hook the worker calls after the run's
    process is gone)."""
    if report.timeline:
        artifacts.table(
            drill.timeline_rows(report),
            artifacts.key("drill-timeline", ref),
            f"{TITLE} ({report.mode}) timeline for `{ref.name}`",
            flow_run_id,
        )
    artifacts.markdown(
        drill.markdown(report),
        artifacts.key("drill-report", ref),
        f"{TITLE} ({report.mode}): figures and restore status",
        flow_run_id,
    )


# ---------------------------------------------------------------------------------------------------- hooks


def restore_hook(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_failure / on_crashed / on_cancellation: restore from the journal if the flow body could not.

    Hooks get no parameters of their own; the journal entry is found by the flow run id (the flow writes it
    before its first ARM write, so a run without one changed nothing). Runs in the worker's process on
    cancellation, so it builds everything from the environment."""
    kind = (
        "cancellation"
        if state.is_cancelled() or state.is_cancelling()
        else "crash"
        if state.is_crashed()
        else "failure"
    )
    by = f"on_{kind} hook"
    journal = get_journal()
    entry = journal.latest_for_run(str(flow_run.id))
    if entry is None or not entry.needs_restore:
        return
    entry = drill.restore(get_engine(), journal, entry, by)
    if entry.report:
        report = DrillReport.model_validate_json(entry.report).model_copy(
            update={"restore": entry.restore, "restore_by": entry.restore_by, "restore_detail": entry.restore_detail}
        )
    else:
        report = DrillReport(
            drill_id=entry.drill_id,
            registry=entry.ref.name,
            mode=entry.mode,
            targets=entry.targets,
            dry_run=False,
            status="failed",
            restore=entry.restore,
            restore_by=entry.restore_by,
            restore_detail=entry.restore_detail,
            error=f"flow run ended {state.type.value}: {state.message or ''}".strip(),
        )
    entry.report = report.model_dump_json()
    journal.save(entry)
    with contextlib.suppress(Exception):  # a report failure must never hide the restore
        publish_report(entry.ref, report, UUID(str(flow_run.id)))


# ----------------------------------------------------------------------------------------------------- flow


@flow(
    name="dr-drill",
    flow_run_name="drill-{params.mode}",
    validate_parameters=True,
    on_failure=[restore_hook],
    on_crashed=[restore_hook],
    on_cancellation=[restore_hook],
)
def dr_drill(params: DrillParams = DEFAULTS) -> DrillReport | State[Any]:
    log = get_run_logger()
    plan = params.load(PROJECT_DIR)
    ref, targets, mode = plan.ref, params.targets, params.mode
    raise_for(drill.check_params(targets, params.dry_run, params.confirm))

    run_id = str(flow_run.id or f"local-{uuid.uuid4().hex[:8]}")
    idempotency_key = params.drill_id or _idempotency_key()
    journal = get_journal()
    if idempotency_key and not params.dry_run:
        previous = journal.completed(str(ref), targets, mode, idempotency_key)
        if previous is not None and previous.report:
            report = DrillReport.model_validate_json(previous.report).model_copy(update={"replayed": True})
            log.warning("drill %s with key %r already ran: returning its report", previous.drill_id, idempotency_key)
            publish_report(ref, report)
            return report if report.status == "completed" else Failed(message=f"replayed: {report.error}", data=report)

    with drill_lock(ref) if not params.dry_run else contextlib.nullcontext():
        try:
            info, observed = registry_observe(ref)
        except RegistryNotFound:
            raise_for(check_registry(plan, None))
            raise
        raise_for(drill.check_targets(targets, mode, info, observed, plan.protection_tag, params.require_ready))
        by_region = {o.region: o for o in observed}
        planned = drill.planned_steps(mode, [by_region[t] for t in targets], params.hold_seconds)
        artifacts.table(
            planned,
            artifacts.key("drill-plan", ref),
            f"{TITLE} ({mode}{', dry run' if params.dry_run else ''}): steps for `{ref.name}`",
        )
        drill_id = uuid.uuid4().hex[:12]
        if params.dry_run:
            report = DrillReport(
                drill_id=drill_id, registry=ref.name, mode=mode, targets=targets, dry_run=True, status="dry-run",
                planned=planned,
            )  # fmt: skip
            publish_report(ref, report)
            log.info(
                "dry run of a %s drill of %s on %s: %d steps, nothing written", mode, targets, ref.name, len(planned)
            )
            return report

        entry = DrillEntry(
            drill_id=drill_id,
            registry=str(ref),
            ref=ref,
            home=info.home,
            targets=targets,
            mode=mode,
            originals=observed,
            run_id=run_id,
            idempotency_key=idempotency_key,
            restore_deadline=plan.lro_deadline_seconds,
        )
        journal.save(entry)  # the original configuration, durable before the first write
        run = _Drill(params, plan, entry, observed, info.home)
        error: BaseException | None = None
        try:
            run.failover() if mode == "failover" else run.rebuild()
        except BaseException as exc:  # the deadline, a failed step, a cancellation signal: all restore
            error = exc
            log.error("drill %s failed: %s", drill_id, exc)
        finally:
            if entry.needs_restore:
                with run.step("restore", "after failure"):
                    entry = drill_restore(entry, "the flow (finally)")
                run.entry = entry

        entry.status = "failed" if error else "completed"
        report = DrillReport(
            drill_id=drill_id,
            registry=ref.name,
            mode=mode,
            targets=targets,
            dry_run=False,
            status=entry.status,
            figures={**run.figures, "total_seconds": round(time.time() - run.started, 3)},
            timeline=run.timeline,
            outcomes=run.outcomes,
            restore=entry.restore,
            restore_by=entry.restore_by,
            restore_detail=entry.restore_detail,
            error=_error_text(error) if error else None,
            planned=planned,
        )
        entry.report = report.model_dump_json()
        journal.save(entry)
        publish_report(ref, report)
        run.progress.finish(f"{report.status}; {drill.restore_sentence(report)}")

    if error is not None:
        if not isinstance(error, Exception):
            raise error  # cancellation/interrupt: propagate after the restore
        return Failed(
            message=f"drill failed: {_error_text(error)}; restore: {entry.restore}"
            + (f" by {entry.restore_by}" if entry.restore_by else ""),
            data=report,
        )
    return report


def _error_text(error: BaseException) -> str:
    if isinstance(error, RegionError):
        o = error.outcome
        return f"{o.action.value} {o.region}: {o.error_code}: {o.error_message}"
    if isinstance(error, PlanError):
        return "; ".join(str(p) for p in error.problems)
    return f"{type(error).__name__}: {error}"


__all__ = ["DrillBusy", "DrillParams", "Problem", "dr_drill", "drill_lock", "lock_name", "restore_hook"]
