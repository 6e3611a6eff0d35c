"""Cleanup: remove the replicas a selection names, safely; the seed's "delete replicas" job made safe.

Runbook: refuse a real run without confirm → resolve the registry and the selection (keep plan / keep list, tags,
regions) → observe the registry → decide for every replica (georep.cleanup.select: home and protected replicas
are never selected) → delete the selected ones through the replica-delete task (LRO engine: waits for consistent
404s; under the registry's write limit) — or, in a dry run (the default), only report them as would-remove →
publish the table (every replica with its decision, reason and result) and a summary. Failed if any delete failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.apply import run_wave
from flows.params import CleanupParams
from georep import cleanup as decide
from georep import regions
from georep.inventory import RegistryNotFound
from georep.model import Action, ActionKind, RegionOutcome, RegistryInfo, RegistryRef
from georep.progress import Broadcast
from georep.report import markdown_table
from georep.validation import PlanError, Problem
from tasks import artifacts, limits
from tasks.replication import registry_observe

PROJECT_DIR = Path(__file__).resolve().parent.parent
TITLE = "Cleanup"
DEFAULTS = CleanupParams()


def _deletes(info: RegistryInfo, choices: list[decide.Choice]) -> list[Action]:
    """Delete actions for the selected replicas. The selection already excludes the home replica and protected
    ones; this checks again, because a wrong delete here cannot be undone."""
    home = regions.normalize(info.home)
    actions = []
    for c in choices:
        if not c.remove:
            continue
        if c.observed.is_home or c.region == home or c.observed.tags.get("georep-protected", "").lower() == "true":
            raise RuntimeError(f"refusing to delete {c.replication} in {c.region}: home or protected")
        actions.append(
            Action(
                region=c.region, replication=c.replication, kind=ActionKind.DELETE, reason=c.reason, observed=c.observed
            )
        )
    return actions


@flow(name="cleanup", task_runner=ThreadPoolTaskRunner(max_workers=64), validate_parameters=True)
def cleanup(params: CleanupParams = DEFAULTS) -> list[dict[str, Any]] | State:
    params.check_confirm()
    ref, selection = params.resolve(PROJECT_DIR)
    if params.dry_run:
        return _cleanup(params, ref, selection)
    with limits.registry_lock(ref, TITLE):
        return _cleanup(params, ref, selection)


def _cleanup(params: CleanupParams, ref: RegistryRef, selection: Any) -> list[dict[str, Any]] | State:
    log = get_run_logger()
    try:
        info, observed = registry_observe(ref)
    except RegistryNotFound:
        raise PlanError(
            [Problem("name", "exists", f"registry '{ref.name}' not found in resource group '{ref.resource_group}'")]
        ) from None
    choices = decide.select(info, observed, selection)
    actions = _deletes(info, choices)
    log.info(
        "cleanup of %s: %d of %d replica(s) selected%s",
        ref.name,
        len(actions),
        len(choices),
        " (dry run)" if params.dry_run else "",
    )

    run_id = str(flow_run.id or "local")
    progress = Broadcast(artifacts.ProgressArtifact(ref, kind="cleanup-progress"))
    progress.start(len(actions), TITLE)
    outcomes: list[RegionOutcome] = []
    if actions:
        if not params.dry_run:
            limits.ensure(ref)
        outcomes = run_wave(
            ref,
            f"cleanup-{run_id}",  # checkpoints per run: a Prefect retry resumes, a later cleanup decides afresh
            actions,
            dry_run=params.dry_run,
            max_parallel=params.max_parallel,
            run_id=run_id,
            progress=progress,
            deadline_seconds=params.deadline_seconds,
        )
    table = decide.rows(choices, outcomes)
    summary = decide.summary(table, params.dry_run)
    progress.finish(summary.splitlines()[0])
    artifacts.publish_table(ref, "cleanup", table, f"{TITLE}: every replica of `{ref.name}`, decision and result")
    artifacts.publish_markdown(
        ref,
        "cleanup-summary",
        f"# {TITLE}: {ref.name}\n\n{summary}\n{markdown_table(table, decide.COLUMNS)}",
        f"{TITLE}: summary",
    )
    failed = [r for r in table if r["result"] == "failed"]
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(actions)} delete(s) failed: "
            + ", ".join(f"{r['region']} ({r['error'].split(':')[0]})" for r in failed)
        )
    return table
