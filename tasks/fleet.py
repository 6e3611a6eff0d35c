"""The fleet rollout's Prefect side: its artifacts, and reading its children's runs and result tables back.

The parent of a fleet may have hundreds of children, so every read here is one API call for a whole batch of
children (a filter on their ids), never one call per child. Artifact keys follow ``tasks.artifacts``:
lowercase letters, digits and dashes, here ``georep-fleet-<kind>-<fleet hash>``, so two fleets (or two
versions of one fleet) never share a progress bar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort
from prefect.settings import PREFECT_UI_URL

from georep import fleet as fleet_report
from georep import inventory
from georep.fleet import Fleet, FleetMember, RegistryRun
from georep.model import RegionOutcome, RegistryInfo, RegistryRef
from georep.validation import Problem
from tasks import artifacts
from tasks.engine import get_engine

#: the API's page size cap: a batch read never asks for more at once
PAGE = 200


def key(kind: str, fleet_hash: str) -> str:
    suffix = fleet_hash[:12]
    return f"georep-fleet-{kind}-{suffix}" if kind else f"georep-fleet-{suffix}"


def ui_url(flow_run_id: UUID | str | None) -> str | None:
    """The child's page in the UI, for the fleet table: with hundreds of children, the link is how a person
    gets from a failed row to its logs."""
    base = PREFECT_UI_URL.value()
    if not base or flow_run_id is None:
        return None
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}"


def publish_plan(fleet: Fleet, fleet_hash: str, title: str, description: str) -> None:
    rows = fleet_report.member_rows(fleet)
    artifacts.table(rows, key("plan", fleet_hash), f"{title}: {description}")


def publish_result(runs: Sequence[RegistryRun], fleet_hash: str, title: str) -> None:
    artifacts.table(
        fleet_report.fleet_rows(runs),
        key("", fleet_hash),
        f"{title}: registry x region result (fleet {fleet_hash[:12]})",
    )
    artifacts.markdown(
        fleet_report.fleet_markdown(runs, f"{title}: fleet {fleet_hash[:12]}"),
        key("summary", fleet_hash),
        f"{title}: totals, failed registries and the registry x region matrix",
    )


class FleetProgress:
    """One progress artifact for the whole fleet, advanced as each child finishes (coalesced like
    ``tasks.artifacts.ProgressArtifact``: a burst of children finishing together is one update, not many)."""

    def __init__(self, fleet_hash: str, min_interval: float = 0.5) -> None:
        self._key = key("progress", fleet_hash)
        self._id: UUID | None = None
        self._total = 0
        self._done = 0
        self._failed = 0
        self._min_interval = min_interval
        self._last = 0.0

    def start(self, total: int, title: str) -> None:
        self._total, self._done, self._failed = total, 0, 0
        self._id = artifacts.progress(0.0 if total else 100.0, self._key, f"{title}: 0/{total} registries")

    def advance(self, run: RegistryRun) -> None:
        self._done += 1
        self._failed += run.failed
        now = time.monotonic()
        if self._done < self._total and now - self._last < self._min_interval:
            return
        self._last = now
        if self._id is not None and self._total:
            artifacts.update_progress(
                self._id,
                100.0 * self._done / self._total,
                f"{self._done}/{self._total} registries ({self._failed} failed); "
                f"last: {run.ref.name} {run.state.lower()}",
            )

    def finish(self, summary: str) -> None:
        if self._id is not None:
            artifacts.update_progress(self._id, 100.0, summary[:500])


def read_flow_runs(ids: Sequence[UUID]) -> dict[UUID, FlowRun]:
    """The current state of many child runs, one API call per page of ids."""
    out: dict[UUID, FlowRun] = {}
    with get_client(sync_client=True) as client:
        for start in range(0, len(ids), PAGE):
            batch = list(ids[start : start + PAGE])
            found = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=len(batch)
            )
            out.update({run.id: run for run in found})
    return out


def read_results(children: Mapping[UUID, RegistryRef]) -> dict[UUID, list[RegionOutcome]]:
    """Each child's regions from its ``georep-result-<registry>`` table, filtered by the child's flow run id
    (the key alone is shared by every run that ever touched the registry). A child without the table (refused
    before any region ran, crashed) is absent from the answer."""
    out: dict[UUID, list[RegionOutcome]] = {}
    items = list(children.items())
    with get_client(sync_client=True) as client:
        for start in range(0, len(items), PAGE):
            batch = dict(items[start : start + PAGE])
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=sorted({artifacts.key("result", ref) for ref in batch.values()})),
                    flow_run_id=ArtifactFilterFlowRunId(any_=list(batch)),
                ),
                sort=ArtifactSort.CREATED_DESC,
                limit=PAGE,
            )
            for artifact in found:  # newest first: a child's latest table wins
                run_id = artifact.flow_run_id
                if run_id is None or run_id in out or run_id not in batch:
                    continue
                if artifact.key != artifacts.key("result", batch[run_id]):
                    continue
                data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
                if isinstance(data, list):
                    out[run_id] = fleet_report.outcomes_from_rows(data)
    return out


# ------------------------------------------------------------------------------------------------ pre-flight


@task(name="fleet-preflight", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def preflight(members: Sequence[FleetMember], parallel: int = 16) -> list[Problem]:
    """One GET per registry before any child starts. A missing or non-Premium registry, or a plan that asks to
    create or delete a registry's home replica, then refuses the whole fleet, instead of failing its own child
    after the others have written. Reads only; the registries' replicas are observed by each child."""
    engine = get_engine()

    def check(member: FleetMember) -> list[Problem]:
        with engine.client(member.ref.subscription_id) as client:
            try:
                info: RegistryInfo | None = inventory.read_registry(client, member.ref, engine.config.retry)
            except inventory.RegistryNotFound:
                info = None
        return fleet_report.registry_problems(member, info)

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(members)))) as pool:
        return [p for problems in pool.map(check, members) for p in problems]
