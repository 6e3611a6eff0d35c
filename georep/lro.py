"""The LRO engine: carry one region's action to its end, exactly once, within a deadline.

Every replication write in georep goes through ``Engine.run``. It

* checks the checkpoint first: a region already done for this plan is skipped, an operation started by a run
  that crashed is resumed from its continuation token (no second PUT/DELETE), and a write whose token was never
  saved is adopted by GETting the replica before anything is sent again;
* records intent before each write and the token right after it, so the two crash windows are both covered;
* waits with GuidedPolling (see polling.py) and its own deadline, because neither pollers nor Prefect's
  timeouts can interrupt a blocking wait;
* retries transient failures once, here, with tenacity (azure-core's retries are off), resuming pollers from
  their token rather than re-sending writes;
* after a delete, waits for consistent 404s before a recreate (the recreate race, azure-rest-api-specs#18934);
* fails a region at once on a terminal error, with the ARM code and message.

The dry-run boundary is here too: with ``dry_run`` nothing is sent and the outcome says what would be done.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import azure.core
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep import retry
from georep.arm import build_client, build_credential
from georep.budget import BudgetPolicy, Budgets, TokenSource
from georep.checkpoint import Checkpoint, CheckpointStore
from georep.config import Settings
from georep.errors import ErrorInfo, Kind, classify
from georep.model import Action, ActionKind, RegionOutcome, RegistryRef, ReplicaSpec, Result
from georep.polling import GuidedPolling, PollGuide, PollingStopped, Ticket

log = logging.getLogger("georep.lro")

STEPS: dict[ActionKind, tuple[str, ...]] = {
    ActionKind.CREATE: ("create",),
    ActionKind.UPDATE: ("update",),
    ActionKind.DELETE: ("delete",),
    ActionKind.RECREATE: ("delete", "create"),
    ActionKind.REPLACE: ("delete", "create"),
}
TRANSITIONAL = frozenset({"creating", "updating", "deleting"})


@dataclass(frozen=True)
class EngineConfig:
    #: how long one region's action may take, end to end (Terraform: 30 min for create/update/delete)
    deadline_seconds: float = 1800.0
    #: a poller's own cadence when the watcher has not woken it (the SDK default is 30 s). Longer than a typical
    #: replication LRO (~11 s), so that normally the watcher's wake-up is the first poll: a fallback as long as
    #: the LRO itself cost a wasted in-progress poll per region
    fallback_poll_seconds: float = 15.0
    #: how often each registry's watcher lists its replicas while LROs are in flight
    watch_seconds: float = 1.0
    #: consecutive 404s, this far apart, before a deleted name is re-created (Terraform: 5 x 5 s)
    settle_probes: int = 3
    settle_probe_seconds: float = 2.0
    #: ARM budgets per subscription for this process, under ARM's 25 reads/s and 10 writes/s per subscription and
    #: principal; runs on several workers share them through a TokenSource (see georep.budget)
    reads_per_second: float = 20.0
    writes_per_second: float = 8.0
    read_burst: float = 200.0
    write_burst: float = 150.0
    retry: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EngineConfig:
        values: dict[str, Any] = {
            "fallback_poll_seconds": settings.polling_interval,
            "watch_seconds": settings.watch_interval,
            "settle_probe_seconds": settings.settle_probe_interval,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def fast(cls, **overrides: Any) -> EngineConfig:
        """Cadences for the emulator in tests (LROs of tenths of a second)."""
        values: dict[str, Any] = {
            "fallback_poll_seconds": 0.5,
            "watch_seconds": 0.05,
            "settle_probe_seconds": 0.05,
            "retry": retry.RetryPolicy(attempts=6, initial_wait=0.05, max_wait=1.0),
        }
        values.update(overrides)
        return cls(**values)


class DeadlineExceeded(Exception):
    pass


class RegionFailed(Exception):
    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(str(info))
        self.info = info


@dataclass
class _Run:
    """Mutable bookkeeping of one ``Engine.run`` call."""

    ref: RegistryRef
    action: Action
    cp: Checkpoint
    deadline: float
    limit: float
    requests: int = 0
    resumed: bool = False
    last_state: tuple[str | None, str | None] = (None, None)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, _request: Any) -> None:
        with self.lock:
            self.requests += 1


class Engine:
    """One per process: it owns the process's ARM clients (one per subscription, so one connection pool and one
    TLS session per subscription rather than one per region), its budgets and its registry watchers."""

    def __init__(
        self,
        settings: Settings,
        store: CheckpointStore,
        config: EngineConfig | None = None,
        credential: TokenCredential | None = None,
        budget_source: TokenSource | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config or EngineConfig()
        self._credential = credential or build_credential(settings)
        # bursts as ARM's buckets allow them (reads 250, writes 200); the refill rates keep us under ARM's
        self.budgets = Budgets(
            self.config.reads_per_second,
            self.config.writes_per_second,
            self.config.read_burst,
            self.config.write_burst,
            source=budget_source,
        )
        self._clients: dict[str, ContainerRegistryManagementClient] = {}
        self._clients_lock = threading.Lock()
        self.guide = PollGuide(self._shared_client, self.config.watch_seconds)

    @contextmanager
    def client(self, subscription: str) -> Iterator[ContainerRegistryManagementClient]:
        """The process's client for ``subscription`` (shared credential and token cache, shared connection pool).
        A context manager for the callers' sake; leaving it does not close the shared client."""
        yield self._shared_client(subscription)

    def _shared_client(self, subscription: str) -> ContainerRegistryManagementClient:
        key = subscription.lower()
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = build_client(
                    self.settings,
                    subscription,
                    credential=self._credential,
                    per_retry_policies=[BudgetPolicy(self.budgets, subscription)],
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # ------------------------------------------------------------------ public
    def run(
        self,
        ref: RegistryRef,
        plan_hash: str,
        action: Action,
        *,
        dry_run: bool = False,
        run_id: str | None = None,
        deadline_seconds: float | None = None,
    ) -> RegionOutcome:
        """Carry ``action`` out for one region. ``deadline_seconds`` (the plan's per-LRO deadline) bounds this
        call end to end; the engine's configured deadline applies when it is not given."""
        started = time.monotonic()
        if not action.kind.writes and action.kind is not ActionKind.WAIT:
            return self._outcome(
                action,
                Result.SKIPPED if action.kind is ActionKind.SKIP_HOME else Result.UNCHANGED,
                action.observed.provisioning_state if action.observed else None,
                action.observed.display_status if action.observed else None,
            )
        if dry_run:
            return self._outcome(action, Result.DRY_RUN)
        key = (str(ref), action.replication, plan_hash)
        cp = self.store.get(*key) or Checkpoint(
            str(ref), action.replication, plan_hash, action.region, action.kind.value, started=time.time()
        )
        if cp.done:
            return self._outcome(
                action,
                Result.SUCCEEDED,
                cp.provisioning_state,
                cp.display_status,
                seconds=0.0,
                requests=0,
                resumed=True,
            )
        limit = deadline_seconds if deadline_seconds is not None else self.config.deadline_seconds
        run = _Run(ref, action, cp, deadline=started + limit, limit=limit)
        cp.run_id = run_id or cp.run_id or uuid.uuid4().hex
        cp.result, cp.error_code, cp.error_message = None, None, None
        client = self._shared_client(ref.subscription_id)
        try:
            if action.kind is ActionKind.WAIT:
                self._wait_settled(client, run)
            else:
                steps = STEPS[action.kind]
                for index, step in enumerate(steps):
                    if step in cp.steps_done:
                        continue
                    getattr(self, f"_step_{step}")(client, run)
                    cp.steps_done.append(step)
                    cp.step, cp.token, cp.state = None, None, f"{step}-done"
                    if index < len(steps) - 1:
                        # between a recreate's delete and create a crash must not delete again; after the last
                        # step the final save below records the same (one fsync fewer per region)
                        self._save(run, f"{step} done")
            state, display = run.last_state
            return self._finish(run, Result.SUCCEEDED, started, state, display)
        except RegionFailed as exc:
            return self._finish(run, Result.FAILED, started, error=exc.info)
        except DeadlineExceeded as exc:
            info = ErrorInfo(Kind.TERMINAL, None, "DeadlineExceeded", str(exc))
            return self._finish(run, Result.FAILED, started, error=info)

    # ------------------------------------------------------------------- steps
    def _step_create(self, client: ContainerRegistryManagementClient, run: _Run) -> None:
        spec = run.action.desired
        assert spec is not None, "a create needs a desired spec"
        body = _create_body(spec)
        self._write_step(
            client,
            run,
            "create",
            begin=lambda **kw: client.replications.begin_create(
                run.ref.resource_group, run.ref.name, spec.name, body, **kw
            ),
            resume=lambda tok, **kw: _ops(client).begin_create(None, None, None, None, continuation_token=tok, **kw),
        )

    def _step_update(self, client: ContainerRegistryManagementClient, run: _Run) -> None:
        spec = run.action.desired
        assert spec is not None, "an update needs a desired spec"
        body = _update_body(spec, run.action)
        self._write_step(
            client,
            run,
            "update",
            begin=lambda **kw: client.replications.begin_update(
                run.ref.resource_group, run.ref.name, run.action.replication, body, **kw
            ),
            resume=lambda tok, **kw: _ops(client).begin_update(None, None, None, None, continuation_token=tok, **kw),
        )

    def _step_delete(self, client: ContainerRegistryManagementClient, run: _Run) -> None:
        name = run.action.observed.name if run.action.observed else run.action.replication
        self._write_step(
            client,
            run,
            "delete",
            begin=lambda **kw: client.replications.begin_delete(run.ref.resource_group, run.ref.name, name, **kw),
            resume=lambda tok, **kw: _ops(client).begin_delete(None, None, None, continuation_token=tok, **kw),
            replica=name,
        )
        self._wait_gone(client, run, name)

    # ------------------------------------------------------------- machinery
    def _write_step(
        self,
        client: ContainerRegistryManagementClient,
        run: _Run,
        step: str,
        begin: Callable[..., LROPoller[Any]],
        resume: Callable[..., LROPoller[Any]],
        replica: str | None = None,
    ) -> None:
        """Start (or resume, or adopt) one LRO and wait for its end, retrying transient failures."""
        cp = run.cp
        replica = replica or run.action.replication
        ticket = self.guide.register(run.ref, replica, step)
        try:
            adopt = cp.step == step and cp.state == "starting"  # a crash between intent and token
            policy = self.config.retry.with_deadline(run.deadline)
            for attempt in retry.retrying(policy):
                with attempt:
                    self._check_deadline(run)
                    token = cp.usable_token() if cp.step == step else None
                    polling = self._polling(run, ticket)
                    if token:
                        # a token this call did not write: an earlier run (or attempt) started the operation
                        run.resumed = run.resumed or attempt.retry_state.attempt_number == 1
                        poller = resume(token, polling=polling)
                    elif adopt or attempt.retry_state.attempt_number > 1:
                        if self._adopt(client, run, step, replica):
                            return
                        poller = self._begin(run, step, begin, polling)
                    else:
                        poller = self._begin(run, step, begin, polling)
                    adopt = False
                    self._await(run, ticket, poller)
        except PollingStopped as exc:
            raise DeadlineExceeded(str(exc)) from exc
        except DeadlineExceeded:
            raise
        except Exception as exc:
            raise RegionFailed(classify(exc)) from exc
        finally:
            ticket.stop()
            self.guide.unregister(ticket)

    def _begin(
        self, run: _Run, step: str, begin: Callable[..., LROPoller[Any]], polling: GuidedPolling
    ) -> LROPoller[Any]:
        cp = run.cp
        cp.step, cp.state, cp.token = step, "starting", None
        self._save(run, f"{step}: sending")
        poller = begin(polling=polling, raw_request_hook=run.count)
        cp.token, cp.token_azure_core, cp.state = poller.continuation_token(), azure.core.__version__, "in-flight"
        if step == "create" and run.action.kind is ActionKind.CREATE:
            # a new replica, whatever its LRO's fate: rollback may remove it (and only such replicas)
            cp.created_by_run = cp.run_id
        self._save(run, f"{step}: accepted")
        return poller

    def _adopt(self, client: ContainerRegistryManagementClient, run: _Run, step: str, replica: str) -> bool:
        """Before re-sending a write whose answer was lost, look: if ARM already has it, wait on the resource
        instead of writing again. Returns True when the step is complete."""
        observed = self._get(client, run, replica)
        state = (_text(observed.provisioning_state) or "").lower() if observed is not None else None
        if step == "delete":
            if state is None:
                return True
            if state == "deleting":
                self._wait_resource(client, run, replica, until_absent=True)
                return True
            return False
        if state is None:
            return False
        if state in TRANSITIONAL:
            observed = self._wait_resource(client, run, replica, until_absent=False)
            state = (_text(observed.provisioning_state) or "").lower() if observed is not None else None
        if step == "create" and state == "succeeded":
            run.last_state = (_text(observed.provisioning_state), _display(observed))
            return True
        if state == "failed":
            raise RegionFailed(
                ErrorInfo(Kind.TERMINAL, 200, "ReplicationFailed", f"the replica '{replica}' ended Failed")
            )
        return False

    def _await(self, run: _Run, ticket: Ticket, poller: LROPoller[Any]) -> None:
        while not poller.done():
            self._check_deadline(run, ticket)
            poller.wait(timeout=min(0.5, max(0.01, run.deadline - time.monotonic())))
        result = poller.result()  # raises HttpResponseError for Failed/Canceled and for poll errors
        if result is not None:
            run.last_state = (_text(result.provisioning_state), _display(result))

    def _wait_gone(self, client: ContainerRegistryManagementClient, run: _Run, name: str) -> None:
        """The delete LRO said done; a PUT of the same name may still be refused. Wait for consistent 404s."""
        misses = 0
        while misses < self.config.settle_probes:
            self._check_deadline(run)
            if self._get(client, run, name) is None:
                misses += 1
            else:
                misses = 0
            if misses < self.config.settle_probes:
                time.sleep(self.config.settle_probe_seconds)
        run.last_state = (None, None)

    def _wait_settled(self, client: ContainerRegistryManagementClient, run: _Run) -> None:
        observed = self._wait_resource(client, run, run.action.replication, until_absent=False)
        if observed is not None:
            run.last_state = (_text(observed.provisioning_state), _display(observed))

    def _wait_resource(
        self, client: ContainerRegistryManagementClient, run: _Run, name: str, until_absent: bool
    ) -> Any:
        """Poll the resource itself (no operation URL is known) until it leaves its transitional state."""
        ticket = self.guide.register(run.ref, name, "delete" if until_absent else "update")
        try:
            while True:
                observed = self._get(client, run, name)
                if observed is None or (
                    not until_absent and (_text(observed.provisioning_state) or "").lower() not in TRANSITIONAL
                ):
                    return observed
                self._check_deadline(run, ticket)
                ticket.sleep(self.config.fallback_poll_seconds)
        except PollingStopped as exc:
            raise DeadlineExceeded(str(exc)) from exc
        finally:
            ticket.stop()
            self.guide.unregister(ticket)

    def _get(self, client: ContainerRegistryManagementClient, run: _Run, name: str) -> Any:
        def get() -> Any:
            try:
                return client.replications.get(run.ref.resource_group, run.ref.name, name, raw_request_hook=run.count)
            except ResourceNotFoundError:
                return None

        return retry.call(get, self.config.retry.with_deadline(run.deadline))

    def _polling(self, run: _Run, ticket: Ticket) -> GuidedPolling:
        # the hook rides in the poller's operation config, so its status polls and final GET are counted too
        return GuidedPolling(
            ticket,
            self.config.fallback_poll_seconds,
            path_format_arguments={"endpoint": self.settings.base_url},
            raw_request_hook=run.count,
        )

    def _check_deadline(self, run: _Run, ticket: Ticket | None = None) -> None:
        if time.monotonic() >= run.deadline:
            if ticket is not None:
                ticket.stop()
            raise DeadlineExceeded(
                f"{run.action.kind.value} of {run.action.region} did not finish within "
                f"{run.limit:g} s; the operation may still complete in Azure, and a rerun "
                "of the same plan resumes it"
            )

    # --------------------------------------------------------------- outcomes
    def _save(self, run: _Run, detail: str) -> None:
        run.cp.arm_requests = run.requests
        self.store.save(run.cp, detail)

    def _finish(
        self,
        run: _Run,
        result: Result,
        started: float,
        state: str | None = None,
        display: str | None = None,
        error: ErrorInfo | None = None,
    ) -> RegionOutcome:
        cp = run.cp
        seconds = time.monotonic() - started
        cp.result, cp.seconds = result.value, cp.seconds + seconds
        cp.state = "succeeded" if result is Result.SUCCEEDED else "failed"
        cp.provisioning_state, cp.display_status = state, display
        if error is not None:
            cp.error_code, cp.error_message = error.code, error.message
        self._save(run, error.message if error else result.value)
        return self._outcome(
            run.action, result, state, display, seconds=seconds, requests=run.requests, resumed=run.resumed, error=error
        )

    @staticmethod
    def _outcome(
        action: Action,
        result: Result,
        state: str | None = None,
        display: str | None = None,
        seconds: float = 0.0,
        requests: int = 0,
        resumed: bool = False,
        error: ErrorInfo | None = None,
    ) -> RegionOutcome:
        return RegionOutcome(
            region=action.region,
            replication=action.replication,
            action=action.kind,
            result=result,
            provisioning_state=state,
            display_status=display,
            seconds=round(seconds, 3),
            arm_requests=requests,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
            resumed=resumed,
        )


def _ops(client: ContainerRegistryManagementClient) -> Any:
    """Resuming from a token takes placeholder positional arguments the typed overloads do not admit."""
    return client.replications


def _text(value: Any) -> str | None:
    """SDK enums are str subclasses whose str() is 'ProvisioningState.SUCCEEDED'; we want the wire value."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _display(resource: Any) -> str | None:
    status = getattr(resource, "status", None)
    return _text(status.display_status) if status is not None else None


def _create_body(spec: ReplicaSpec) -> dict[str, Any]:
    return {
        "location": spec.region,
        "tags": dict(spec.tags),
        "properties": {
            "regionEndpointEnabled": True if spec.region_endpoint_enabled is None else spec.region_endpoint_enabled,
            "zoneRedundancy": "Enabled" if spec.zone_redundancy else "Disabled",
        },
    }


def _update_body(spec: ReplicaSpec, action: Action) -> dict[str, Any]:
    """PATCH carries only what may change: tags (merged with what the replica has) and the endpoint flag."""
    tags = dict(action.observed.tags) if action.observed else {}
    tags.update(spec.tags)
    body: dict[str, Any] = {"tags": tags}
    if spec.region_endpoint_enabled is not None:
        body["properties"] = {"regionEndpointEnabled": spec.region_endpoint_enabled}
    return body
