"""Fault plans, chosen through the control API or configuration, and seeded so a test run is reproducible.

Request-level faults (status, reset, latency) fire before the handler; LRO faults (lro_fail, lro_never) are
taken when an operation starts and decide how it ends.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FaultAction = Literal["status", "reset", "latency", "lro_fail", "lro_never"]
REQUEST_ACTIONS = frozenset({"status", "reset", "latency"})
LRO_ACTIONS = frozenset({"lro_fail", "lro_never"})

_DEFAULT_CODES = {
    409: ("AnotherOperationInProgress", "Another operation is in progress on the registry. Retry later."),
    429: ("TooManyRequests", "The request was throttled. Retry after the period in the Retry-After header."),
    500: ("InternalServerError", "An internal server error occurred. Retry the request."),
    502: ("BadGateway", "The gateway received an invalid response."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response in time."),
}


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    action: FaultAction
    method: str = Field("*", description="HTTP method, or * for any")
    path: str = Field(".*", description="regex searched in the request path (case-insensitive)")
    count: int | None = Field(1, ge=1, description="how many matches fire; None = every one")
    skip: int = Field(0, ge=0, description="let this many matches through first")
    probability: float = Field(1.0, ge=0, le=1, description="chance a match fires (seeded)")
    status: int = Field(500, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: int | None = Field(None, ge=0)
    latency_seconds: float = Field(0.0, ge=0)
    matched: int = 0
    fired: int = 0

    @field_validator("path")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:  # not a ValueError: pydantic (and the control API's 400) would miss it
            raise ValueError(f"path is not a valid regular expression: {exc}") from None
        return value

    def error_code(self) -> str:
        if self.code:
            return self.code
        if self.action == "lro_fail":
            return "ReplicationProvisioningFailed"
        return _DEFAULT_CODES.get(self.status, ("InjectedFault", ""))[0]

    def error_message(self) -> str:
        if self.message:
            return self.message
        if self.action == "lro_fail":
            return "The replication failed to provision. Delete and recreate it."
        return _DEFAULT_CODES.get(self.status, ("", f"Injected fault {self.status}."))[1]

    def effective_retry_after(self) -> int | None:
        """Only 429 and 503 carry Retry-After unless the plan says otherwise: azure-core retries any error
        that has the header, so a 409 with it would be retried by the SDK, unlike the real service."""
        if self.retry_after is not None:
            return self.retry_after or None
        return 1 if self.status in (429, 503) else None


class FaultBook:
    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def take(self, method: str, path: str, actions: frozenset[str]) -> list[FaultRule]:
        """Rules of the given actions that fire for this request, counting the match against each."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.action not in actions:
                    continue
                if rule.method != "*" and rule.method.upper() != method.upper():
                    continue
                if not re.search(rule.path, path, re.IGNORECASE):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                fired.append(rule.model_copy())
        return fired
