"""ARM token buckets per subscription, principal and operation kind (reads / writes / deletes)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

from georep.emulator.settings import Bucket, ThrottleSettings

Kind = Literal["reads", "writes", "deletes"]


@dataclass
class _State:
    tokens: float
    last: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int


class Throttle:
    def __init__(self, settings: ThrottleSettings) -> None:
        self._settings = settings
        self._buckets: dict[tuple[str, str, Kind], _State] = {}
        self._lock = threading.Lock()

    def configure(self, settings: ThrottleSettings) -> None:
        with self._lock:
            self._settings = settings
            self._buckets.clear()

    def _spec(self, kind: Kind) -> Bucket:
        spec: Bucket = getattr(self._settings, kind)
        return spec

    def take(self, subscription: str, principal: str, kind: Kind, now: float) -> Decision:
        spec = self._spec(kind)
        with self._lock:
            state = self._buckets.setdefault((subscription.lower(), principal, kind), _State(spec.burst, now))
            state.tokens = min(spec.burst, state.tokens + (now - state.last) * spec.refill_per_second)
            state.last = now
            if not self._settings.enabled:
                return Decision(True, int(state.tokens), 0)
            if state.tokens >= 1:
                state.tokens -= 1
                return Decision(True, int(state.tokens), 0)
            wait = (1 - state.tokens) / spec.refill_per_second
            return Decision(False, 0, max(1, math.ceil(wait)))
