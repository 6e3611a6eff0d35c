"""Status report: is every replica healthy, and does the registry still match its plan?

Runbook: resolve the registry (and the plan, if given) → observe (reads only) → classify each replica
(georep.health: healthy = Succeeded and Ready/Syncing) → with a plan, diff it: every action that would write is
drift → emit ``georep.replica.unhealthy`` / ``georep.replica.drift`` events (for automations) → publish the health
table, the drift table and a summary. Never writes to ARM. Failed only when ``fail_on_unhealthy`` and a replica is
unhealthy; drift alone never fails the run (it is a report, the rollout is the fix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.params import StatusParams
from georep import health
from georep.inventory import RegistryNotFound
from georep.plan import diff, plan_hash
from georep.report import markdown_table
from georep.validation import PlanError, Problem, check_registry, raise_for
from tasks import artifacts
from tasks.replication import registry_observe

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "Status report"
DEFAULTS = StatusParams()


def _emit(specs: list[health.EventSpec]) -> int:
    related = [{"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run"}]
    sent = 0
    for spec in specs:
        if emit_event(spec.event, resource=spec.resource, payload=spec.payload, related=related) is not None:
            sent += 1
    return sent


@flow(name="status-report", validate_parameters=True)
def status_report(params: StatusParams = DEFAULTS) -> dict[str, Any] | State:
    log = get_run_logger()
    ref, plan = params.resolve(PROJECT_DIR)
    try:
        info, observed = registry_observe(ref)
    except RegistryNotFound:
        raise PlanError(
            [Problem("name", "exists", f"registry '{ref.name}' not found in resource group '{ref.resource_group}'")]
        ) from None
    if plan is not None:
        raise_for(check_registry(plan, info, observed))

    progress = artifacts.ProgressArtifact(ref, kind="status-progress")
    progress.start(len(observed), TITLE)
    checked = []
    for replica in sorted(observed, key=lambda o: (o.region, o.name)):
        checked.append(health.classify(replica))
        progress.tick(f"{replica.region} {checked[-1].level.value}")
    drifted = health.drift(diff(plan, info, observed)) if plan is not None else None

    events = health.unhealthy_events(ref, checked)
    if plan is not None and drifted:
        events += health.drift_events(ref, drifted, plan_hash(plan))
    sent = _emit(events)
    unhealthy = [h for h in checked if not h.healthy]
    log.info(
        "status of %s: %d replica(s), %d unhealthy, %s; %d event(s)",
        ref.name,
        len(checked),
        len(unhealthy),
        "no plan" if drifted is None else f"{len(drifted)} drifted",
        sent,
    )

    summary = health.summary(checked, drifted)
    body = f"# {TITLE}: {ref.name} (home {info.home})\n\n{summary}\n## Replicas\n\n"
    body += markdown_table(health.health_rows(checked), health.HEALTH_COLUMNS)
    artifacts.publish_table(ref, "health", health.health_rows(checked), f"{TITLE}: health of every replica")
    if drifted is not None:
        body += "\n## Drift\n\n" + markdown_table(health.drift_rows(drifted), health.DRIFT_COLUMNS)
        artifacts.publish_table(ref, "drift", health.drift_rows(drifted), f"{TITLE}: drift against the plan")
    artifacts.publish_markdown(ref, "status", body, f"{TITLE}: summary")
    progress.finish(summary.splitlines()[0])

    report = {
        "registry": str(ref),
        "home": info.home,
        "replicas": len(checked),
        "unhealthy": [h.region for h in unhealthy],
        "drift": [d.region for d in drifted] if drifted is not None else None,
        "events": sent,
    }
    if params.fail_on_unhealthy and unhealthy:
        return Failed(
            message=f"{len(unhealthy)} unhealthy replica(s): "
            + ", ".join(f"{h.region} ({h.level.value})" for h in unhealthy),
            data=report,
        )
    return report
