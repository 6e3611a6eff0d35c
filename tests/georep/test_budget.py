"""ARM budgets: local buckets per subscription, paid into a shared budget off the request path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from georep.budget import BudgetKind, BudgetPolicy, Budgets, RateLimiter
from georep.checkpoint import CheckpointStore
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.lro import Engine, EngineConfig
from georep.model import Action, ActionKind, RegistryRef, ReplicaSpec, Result
from tests.conftest import RegistryRef as EmulatedRegistry


class Recorder:
    """A shared budget that grants at once (or when ``gate`` opens) and records what it granted."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.taken: list[tuple[BudgetKind, str, int]] = []
        self.lock = threading.Lock()

    def take(self, kind: BudgetKind, subscription: str, count: int) -> None:
        if self.gate is not None:
            assert self.gate.wait(10), "gate never opened"
        with self.lock:
            self.taken.append((kind, subscription, count))

    def granted(self, kind: BudgetKind | None = None) -> int:
        with self.lock:
            return sum(c for k, _, c in self.taken if kind is None or k == kind)


def settle(limiter: RateLimiter, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while limiter._settling and time.monotonic() < end:  # waiting for the background payment
        time.sleep(0.01)


def test_burst_is_spent_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter(1.0, burst=5)

    def no_sleep(_: float) -> None:
        raise AssertionError("the burst must not wait")

    monkeypatch.setattr(time, "sleep", no_sleep)
    for _ in range(5):
        limiter.acquire()


def test_spent_tokens_are_paid_in_batches_off_the_request_path() -> None:
    source = Recorder()
    limiter = RateLimiter(1000, burst=1000, source=source, kind="reads", subscription="sub", batch=20)
    for _ in range(45):
        limiter.acquire()
    settle(limiter)
    assert source.taken and all(t == ("reads", "sub", 20) for t in source.taken)
    assert source.granted() >= 45  # every request paid for, in three batches
    assert limiter.shared_calls == len(source.taken) == 3


def test_requests_block_only_once_a_whole_batch_is_unpaid() -> None:
    gate = threading.Event()
    source = Recorder(gate)
    limiter = RateLimiter(1000, burst=1000, source=source, batch=4, allowance=4)
    for _ in range(4):  # up to the allowance runs ahead of the shared budget
        limiter.acquire()
    blocked = threading.Thread(target=limiter.acquire)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "a fifth request went out with four unpaid"
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    settle(limiter)
    assert source.granted() >= 5


def test_default_allowance_is_three_batches() -> None:
    gate = threading.Event()
    limiter = RateLimiter(1000, burst=1000, source=Recorder(gate), batch=2)
    for _ in range(6):
        limiter.acquire()
    blocked = threading.Thread(target=limiter.acquire)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()


def test_budgets_are_per_subscription_and_kind() -> None:
    budgets = Budgets(20, 8, 100, 100)
    assert budgets.reads("SUB-A") is budgets.reads("sub-a")
    assert budgets.reads("sub-a") is not budgets.reads("sub-b")
    assert budgets.reads("sub-a") is not budgets.writes("sub-a")


@pytest.mark.parametrize(
    ("method", "kind"), [("GET", "reads"), ("PUT", "writes"), ("PATCH", "writes"), ("DELETE", "writes")]
)
def test_policy_charges_writes_and_reads_to_their_buckets(method: str, kind: BudgetKind) -> None:
    source = Recorder()
    budgets = Budgets(1000, 1000, 1000, 1000, source=source, read_batch=1, write_batch=1)
    policy = BudgetPolicy(budgets, "sub")
    policy.on_request(PipelineRequest(HttpRequest(method, "https://arm/x"), PipelineContext(None)))
    settle(budgets.get(kind, "sub"))
    assert [t[0] for t in source.taken] == [kind]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CheckpointStore]:
    s = CheckpointStore(tmp_path / "checkpoints.db")
    yield s
    s.close()


def test_every_arm_request_of_an_lro_is_paid(
    settings: Settings, store: CheckpointStore, registry: EmulatedRegistry, control: EmulatorControl
) -> None:
    """Through the real SDK: the PUT, the poller's status polls and final GET, and the watcher's LISTs all pass
    the budget, so the shared budget is charged at least what the emulator saw."""
    source = Recorder()
    engine = Engine(settings, store, EngineConfig.fast(deadline_seconds=20), budget_source=source)
    ref = RegistryRef(subscription_id=registry.subscription, resource_group=registry.resource_group, name=registry.name)
    control.clear_requests()
    action = Action(
        region="westeurope",
        replication="westeurope",
        kind=ActionKind.CREATE,
        reason="test",
        desired=ReplicaSpec(region="westeurope", name="westeurope"),
    )
    assert engine.run(ref, "plan", action).result is Result.SUCCEEDED
    time.sleep(0.3)  # the watcher's last LIST
    seen = control.requests(registry=ref.name)
    for kind in ("reads", "writes"):
        settle(engine.budgets.get(kind, ref.subscription_id))  # type: ignore[arg-type]
    writes = sum(1 for r in seen if r["method"] in ("PUT", "PATCH", "DELETE"))
    assert writes == 1
    assert source.granted("writes") >= writes
    assert source.granted("reads") >= len(seen) - writes
    engine.close()
