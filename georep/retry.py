"""The one retry layer for ARM calls (tenacity).

azure-core's RetryPolicy is set to 0 retries in the client factory (``Settings.sdk_retry_total``), so a
throttled or failed request is retried here and only here: one attempt budget per logical call, backoff with
full jitter, and the server's Retry-After honoured when it sends one. With the defaults below a call makes at
most ``attempts`` HTTP requests (6), never 4 x 6 as stacked layers would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from tenacity import RetryCallState

from georep.errors import classify

T = TypeVar("T")
log = logging.getLogger("georep.retry")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    #: absolute time.monotonic() after which no new attempt starts
    deadline: float | None = None

    def with_deadline(self, deadline: float | None) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.initial_wait, self.max_wait, deadline)


def _is_retryable(exc: BaseException) -> bool:
    return classify(exc).retryable


class _Wait(tenacity.wait.wait_base):
    """Retry-After when the server gave one, else exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._jitter = tenacity.wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        info = classify(exc) if exc else None
        if info is not None and info.retry_after:
            return min(float(info.retry_after), self._policy.max_wait)
        return float(self._jitter(retry_state))


class _StopAtDeadline(tenacity.stop.stop_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._policy.deadline is None:
            return False
        upcoming = retry_state.upcoming_sleep or 0.0
        return time.monotonic() + upcoming >= self._policy.deadline


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if exc is not None:
        info = classify(exc)
        log.warning(
            "retrying after %s (attempt %d, sleeping %.2fs)",
            info,
            retry_state.attempt_number,
            retry_state.upcoming_sleep or 0.0,
        )


def retrying(policy: RetryPolicy, on_retry: Callable[[RetryCallState], None] | None = None) -> tenacity.Retrying:
    def before_sleep(state: RetryCallState) -> None:
        _log_retry(state)
        if on_retry is not None:
            on_retry(state)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_retryable),
        wait=_Wait(policy),
        stop=tenacity.stop_after_attempt(policy.attempts) | _StopAtDeadline(policy),
        before_sleep=before_sleep,
        reraise=True,
    )


def call(fn: Callable[[], T], policy: RetryPolicy = RetryPolicy()) -> T:
    """Run one ARM call under the retry policy; the last error is re-raised unchanged."""
    return retrying(policy)(fn)
