"""ARM request budgets: georep never sends more than a subscription's ARM buckets allow.

ARM throttles per subscription and principal with token buckets (reads 250 burst / 25 per s, writes 200 / 10
per s; see the ARM reference, section 8). Every request georep sends passes ``BudgetPolicy`` in the client's
pipeline, so no call site can forget it: status polls, final GETs, watcher LISTs, observe reads, drill reads.

Within one process the budgets are local token buckets per subscription. Runs on several workers share a
subscription too; a ``TokenSource`` (georep's Prefect layer implements it with Prefect global rate limits,
tasks/budget.py) makes every process pay what it spends into a budget all processes share. Payment is taken
``batch`` tokens at a time and off the request path, because a round trip to the shared budget costs more than
the ARM read it guards (see ``RateLimiter``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal, Protocol

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

BudgetKind = Literal["reads", "writes"]
WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})


class TokenSource(Protocol):
    """A budget shared beyond this process: ``take`` blocks until ``count`` request tokens of ``kind`` in
    ``subscription`` are granted."""

    def take(self, kind: BudgetKind, subscription: str, count: int) -> None: ...


class RateLimiter:
    """A blocking token bucket shared by every reader (or writer) of the process.

    With a ``source``, the tokens spent here are also paid into the budget every process shares. Requests do not
    wait for that payment: a background thread settles the debt ``batch`` tokens at a time (one round trip to
    the shared budget per batch, never on a request's path), and requests block only when the unpaid debt
    reaches ``allowance`` (three batches by default), that is, when the shared budget is really spent. Measured:
    a Prefect rate-limit call took 15 ms idle but 2-3 s while the process's Prefect client was busy with a
    wave's task runs (Prefect's client sleeping 2 s after a "database is locked" 503 of a SQLite server, which
    georep's Prefect layer now retries after milliseconds), so one batch of allowance stalled a 20-region wave's
    final reads; three do not, whatever the server. A process
    can thus run ahead of the shared budget by at most ``allowance`` tokens, which the shared buckets' headroom
    under ARM's absorbs (and a 429 beyond it is retried like any other).
    """

    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        *,
        source: TokenSource | None = None,
        kind: BudgetKind = "reads",
        subscription: str = "",
        batch: int = 20,
        allowance: int | None = None,
    ) -> None:
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1.0, per_second)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._source = source
        self._kind: BudgetKind = kind
        self._subscription = subscription
        self._batch = max(1, batch)
        self._allowance = max(self._batch, allowance if allowance is not None else 3 * self._batch)
        self._debt = 0  # tokens spent and not yet paid to the shared budget; negative: paid in advance
        self._settling = False
        self._settled = threading.Condition()
        self.shared_calls = 0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    break
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)
        if self._source is not None:
            self._owe()

    def _owe(self) -> None:
        with self._settled:
            while self._debt >= self._allowance:
                self._settled.wait()
            self._debt += 1
            if self._debt > 0 and not self._settling:
                self._settling = True
                name = f"georep-budget-{self._kind}-{self._subscription[:8]}"
                threading.Thread(target=self._settle, name=name, daemon=True).start()

    def _settle(self) -> None:
        assert self._source is not None
        while True:
            with self._settled:
                if self._debt <= 0:
                    self._settling = False
                    return
            try:
                self._source.take(self._kind, self._subscription, self._batch)
            finally:
                with self._settled:
                    self.shared_calls += 1
                    self._debt -= self._batch
                    self._settled.notify_all()


class Budgets:
    """ARM counts requests per subscription (and principal), so the budgets are kept per subscription too: a
    fleet rollout in one process spends each subscription's reads and writes separately."""

    def __init__(
        self,
        reads_per_second: float,
        writes_per_second: float,
        read_burst: float,
        write_burst: float,
        source: TokenSource | None = None,
        read_batch: int = 20,
        write_batch: int = 20,
    ) -> None:
        self._spec = {
            "reads": (reads_per_second, read_burst, read_batch),
            "writes": (writes_per_second, write_burst, write_batch),
        }
        self._source = source
        self._limiters: dict[tuple[BudgetKind, str], RateLimiter] = {}
        self._lock = threading.Lock()

    def get(self, kind: BudgetKind, subscription: str) -> RateLimiter:
        key = (kind, subscription.lower())
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                rate, burst, batch = self._spec[kind]
                limiter = RateLimiter(rate, burst, source=self._source, kind=kind, subscription=key[1], batch=batch)
                self._limiters[key] = limiter
            return limiter

    @property
    def source(self) -> TokenSource | None:
        return self._source

    def reads(self, subscription: str) -> RateLimiter:
        return self.get("reads", subscription)

    def writes(self, subscription: str) -> RateLimiter:
        return self.get("writes", subscription)


class BudgetPolicy(SansIOHTTPPolicy[Any, Any]):
    """Spends one token of the subscription's read or write budget before each request is sent (after the retry
    policy, so every attempt pays; azure-core's own retries are off in georep anyway)."""

    def __init__(self, budgets: Budgets, subscription: str) -> None:
        self._reads = budgets.reads(subscription)
        self._writes = budgets.writes(subscription)

    def on_request(self, request: PipelineRequest[Any]) -> None:
        method = request.http_request.method.upper()
        (self._writes if method in WRITE_METHODS else self._reads).acquire()
