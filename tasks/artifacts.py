"""Prefect artifacts for every flow: the plan, a progress bar updated as regions finish, the result table and a
markdown summary. Keys are lowercase letters, digits and dashes only (Prefect rejects anything else), so they
are derived from the registry name through ``key()``."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from georep import report
from georep.model import Action, RegionOutcome, RegistryRef


def key(kind: str, ref: RegistryRef) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"georep-{kind}-{ref.name}".lower()).strip("-")[:100]


def publish_plan(ref: RegistryRef, actions: Sequence[Action], title: str) -> None:
    create_table_artifact(
        report.plan_rows(actions), key=key("plan", ref), description=f"{title}: plan for `{ref.name}`"
    )
    create_markdown_artifact(
        f"# {title}: plan for {ref.name}\n\n{report.plan_summary(actions)}\n\n{report.plan_markdown(actions)}\n",
        key=key("plan-summary", ref),
        description=f"{title}: what will change and why",
    )


def publish_result(ref: RegistryRef, outcomes: Sequence[RegionOutcome], title: str, extra_markdown: str = "") -> None:
    create_table_artifact(
        report.outcome_rows(outcomes),
        key=key("result", ref),
        description=f"{title}: result per region for `{ref.name}`",
    )
    body = f"# {title}: {ref.name}\n\n{report.outcome_summary(outcomes)}\n\n{report.outcome_markdown(outcomes)}\n"
    if extra_markdown:
        body += f"\n{extra_markdown}\n"
    create_markdown_artifact(body, key=key("summary", ref), description=f"{title}: summary")


def publish_table(ref: RegistryRef, kind: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    """A keyed table artifact for flows whose rows are not plans or outcomes (cleanup, health, drift)."""
    create_table_artifact(list(rows), key=key(kind, ref), description=description)


def publish_markdown(ref: RegistryRef, kind: str, body: str, description: str) -> None:
    create_markdown_artifact(body, key=key(kind, ref), description=description)


class ProgressArtifact:
    """A georep.progress listener that keeps one Prefect progress artifact up to date.

    ``kind`` names the artifact key (``georep-<kind>-<registry>``): flows that may run at the same time on one
    registry (a rollout and a status report) keep separate progress bars instead of interleaving versions."""

    def __init__(self, ref: RegistryRef, kind: str = "progress", min_interval: float = 0.5) -> None:
        self._ref = ref
        self._kind = kind
        self._id: UUID | None = None
        self._total = 0
        self._done = 0
        # updates are coalesced: each is a synchronous round trip on the flow's thread, and hundreds of regions
        # finishing together must not queue hundreds of them (the last one always goes out)
        self._min_interval = min_interval
        self._last = 0.0

    def start(self, total: int, title: str) -> None:
        self._total, self._done = total, 0
        self._id = create_progress_artifact(
            0.0 if total else 100.0, key=key(self._kind, self._ref), description=f"{title}: 0/{total} regions"
        )

    def advance(self, outcome: RegionOutcome) -> None:
        self.tick(f"{outcome.region} {outcome.result.value}")

    def tick(self, last: str) -> None:
        """One more region done, for flows whose steps are not ``RegionOutcome``s (the status report)."""
        self._done += 1
        now = time.monotonic()
        if self._done < self._total and now - self._last < self._min_interval:
            return
        self._last = now
        if self._id is not None and self._total:
            update_progress_artifact(
                self._id,
                100.0 * self._done / self._total,
                description=f"{self._done}/{self._total} regions; last: {last}",
            )

    def finish(self, summary: str) -> None:
        if self._id is not None:
            update_progress_artifact(self._id, 100.0, description=summary[:500])
