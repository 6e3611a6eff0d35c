"""Prefect artifacts for every flow: the plan, a progress bar updated as regions finish, the result table and a
markdown summary. Keys are lowercase letters, digits and dashes only (Prefect rejects anything else), so they
are derived from the registry name through ``key()``."""

from __future__ import annotations

import contextvars
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.artifacts import Artifact, MarkdownArtifact, TableArtifact
from prefect.artifacts import ProgressArtifact as PrefectProgress
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.utilities.context import get_task_and_flow_run_ids

from georep import report
from georep.model import Action, RegionOutcome, RegistryRef
from tasks import api

log = logging.getLogger("georep.artifacts")


def key(kind: str, ref: RegistryRef) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"georep-{kind}-{ref.name}".lower()).strip("-")[:100]


def create(artifact: Artifact, flow_run_id: UUID | None = None) -> UUID:
    """Create an artifact through georep's Prefect writes (tasks/api.py: one client, one write at a time, quick
    retries), attached to the current flow and task run, or to ``flow_run_id`` when this runs outside the run (a
    hook the worker calls after the run's process is gone: Prefect would attach the report to no run at all)."""
    task_run_id, current_flow_run_id = get_task_and_flow_run_ids()
    request = ArtifactCreate(
        type=artifact.type,
        key=artifact.key,
        description=artifact.description,
        flow_run_id=flow_run_id or current_flow_run_id,
        task_run_id=task_run_id,
        data=artifact.format(_sync=True),  # type: ignore[call-arg]
    )
    return api.write(lambda client: client.create_artifact(artifact=request)).id


def table(rows: Sequence[dict[str, Any]], key: str, description: str, flow_run_id: UUID | None = None) -> UUID:
    return create(TableArtifact(table=list(rows), key=key, description=description), flow_run_id)


def markdown(body: str, key: str, description: str, flow_run_id: UUID | None = None) -> UUID:
    return create(MarkdownArtifact(markdown=body, key=key, description=description), flow_run_id)


def progress(value: float, key: str, description: str) -> UUID:
    return create(PrefectProgress(progress=value, key=key, description=description))


def update_progress(artifact_id: UUID, value: float, description: str) -> None:
    update = ArtifactUpdate(data=value, description=description)
    api.write(lambda client: client.update_artifact(artifact_id, update))


def publish_plan(ref: RegistryRef, actions: Sequence[Action], title: str) -> None:
    table(report.plan_rows(actions), key("plan", ref), f"{title}: plan for `{ref.name}`")
    markdown(
        f"# {title}: plan for {ref.name}\n\n{report.plan_summary(actions)}\n\n{report.plan_markdown(actions)}\n",
        key("plan-summary", ref),
        f"{title}: what will change and why",
    )


def publish_result(ref: RegistryRef, outcomes: Sequence[RegionOutcome], title: str, extra_markdown: str = "") -> None:
    table(report.outcome_rows(outcomes), key("result", ref), f"{title}: result per region for `{ref.name}`")
    body = f"# {title}: {ref.name}\n\n{report.outcome_summary(outcomes)}\n\n{report.outcome_markdown(outcomes)}\n"
    if extra_markdown:
        body += f"\n{extra_markdown}\n"
    markdown(body, key("summary", ref), f"{title}: summary")


def publish_table(ref: RegistryRef, kind: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    """A keyed table artifact for flows whose rows are not plans or outcomes (cleanup, health, drift)."""
    table(rows, key(kind, ref), description)


def publish_markdown(ref: RegistryRef, kind: str, body: str, description: str) -> None:
    markdown(body, key(kind, ref), description)


class Publisher:
    """Prefect API writes that nothing waits for (artifacts, returning slots), made one at a time on a background
    thread, in the order they were submitted, each in the context of the call that submitted it (an artifact made
    there belongs to the flow run).

    One at a time because the temporary server's SQLite takes one writer at a time: concurrent writes meet
    "database is locked" retries that cost far more than the round trips they were meant to hide (measured: a
    plan artifact written while a wave took its slots pushed the acquisition past its first 1 s try). A paused
    publisher queues until ``resume()``, so a flow can keep those writes off the path to its first ARM write.
    ``join()`` waits until everything submitted is written and re-raises the first error."""

    def __init__(self, *, paused: bool = False) -> None:
        self._queue: queue.Queue[tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._held: list[tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...]]] = []
        self._paused = paused
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        item = (contextvars.copy_context(), fn, args)
        with self._lock:
            if self._paused:
                self._held.append(item)
                return
            self._start()
        self._queue.put(item)

    def resume(self) -> None:
        with self._lock:
            held, self._held, self._paused = self._held, [], False
            if held:
                self._start()
        for item in held:
            self._queue.put(item)

    def join(self, *, resume: bool = True, raise_errors: bool = True) -> None:
        """Wait until everything submitted is written (``resume=False``: everything not held by the pause), then
        re-raise the first error (``raise_errors=False``: keep them for the next join)."""
        if resume:
            self.resume()
        self._queue.join()
        if not raise_errors:
            return
        errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    def close(self) -> None:
        """``join()``, then end the thread."""
        try:
            self.join()
        finally:
            with self._lock:
                thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
                thread.join()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="georep-publisher", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            context, fn, args = item
            try:
                context.run(fn, *args)
            except BaseException as exc:
                self._errors.append(exc)
            finally:
                self._queue.task_done()
        self._queue.task_done()


class ProgressArtifact:
    """A georep.progress listener that keeps one Prefect progress artifact up to date.

    ``kind`` names the artifact key (``georep-<kind>-<registry>``): flows that may run at the same time on one
    registry (a rollout and a status report) keep separate progress bars instead of interleaving versions.

    Its API calls go through a ``Publisher`` (the flow's, or one of its own): the flow's thread never waits for a
    round trip, a burst of regions finishing together costs at most one update, and the last region's update is
    the summary that ``finish`` writes. ``finish`` waits until that is written, so the artifact is complete when
    the flow run ends. A failed update is logged, never raised: the artifact is a view."""

    def __init__(
        self,
        ref: RegistryRef,
        kind: str = "progress",
        min_interval: float = 0.5,
        publisher: Publisher | None = None,
    ) -> None:
        self._ref = ref
        self._kind = kind
        self._id: UUID | None = None
        self._total = 0
        self._done = 0
        self._min_interval = min_interval
        self._last = 0.0
        self._own = publisher is None
        self._publisher = publisher or Publisher()

    def _create(self, total: int, title: str) -> None:
        with self._quiet():
            self._id = progress(0.0 if total else 100.0, key(self._kind, self._ref), f"{title}: 0/{total} regions")

    def _update(self, progress: float, description: str) -> None:
        if self._id is not None:
            with self._quiet():
                update_progress(self._id, progress, description)

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        try:
            yield
        except Exception:
            log.warning("progress artifact %s: write failed", key(self._kind, self._ref), exc_info=True)

    def start(self, total: int, title: str) -> None:
        self._total, self._done = total, 0
        self._publisher.submit(self._create, total, title)

    def advance(self, outcome: RegionOutcome) -> None:
        self.tick(f"{outcome.region} {outcome.result.value}")

    def tick(self, last: str) -> None:
        """One more region done, for flows whose steps are not ``RegionOutcome``s (the status report)."""
        self._done += 1
        now = time.monotonic()
        if self._done >= self._total or now - self._last < self._min_interval:
            return  # coalesced; the last region's update is finish()'s summary
        self._last = now
        description = f"{self._done}/{self._total} regions; last: {last}"
        self._publisher.submit(self._update, 100.0 * self._done / self._total, description)

    def finish(self, summary: str) -> None:
        self._publisher.submit(self._update, 100.0, summary[:500])
        if self._own:
            self._publisher.close()
        else:  # the owner of a shared publisher joins it and sees its errors
            self._publisher.join(raise_errors=False)
