"""Error classification: the one place that decides whether an SDK failure is worth retrying.

Callers (the LRO engine, tasks, flows) never parse messages; they ask ``classify`` and get the status, the ARM
error code and message, whether to retry, and how long the server asked us to wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

#: ARM / ACR codes that describe a passing condition: the same request can succeed later.
RETRYABLE_CODES = frozenset(
    {
        "AnotherOperationInProgress",
        "Conflict",  # recreate-after-delete settle window
        "TooManyInFlightOperations",
        "OperationNotAllowed",
        "RetryableErrorDueToAnotherOperation",
        "TooManyRequests",
        "SubscriptionRequestsThrottled",
        "ResourceCollectionRequestsThrottled",
        "InternalServerError",
        "ServiceUnavailable",
        "GatewayTimeout",
        "BadGateway",
    }
)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Kind(StrEnum):
    RETRYABLE = "retryable"
    TERMINAL = "terminal"
    NOT_FOUND = "not_found"
    AUTH = "auth"


@dataclass(frozen=True)
class ErrorInfo:
    kind: Kind
    status: int | None
    code: str | None
    message: str
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind is Kind.RETRYABLE

    def __str__(self) -> str:
        head = f"HTTP {self.status}" if self.status else "no response"
        return f"{head} {self.code or 'Error'}: {self.message}"


def _retry_after(exc: HttpResponseError) -> float | None:
    response = exc.response
    if response is None:
        return None
    headers = getattr(response, "headers", {})
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                return float(value) / 1000
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _message(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        return str(error.message)
    return str(exc.message or exc.reason or exc)


def classify(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, ClientAuthenticationError):
        status = exc.status_code
        code = exc.error.code if exc.error else None
        return ErrorInfo(Kind.AUTH, status, code, _message(exc))
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code = exc.error.code if exc.error else None
        retry_after = _retry_after(exc)
        if status == 404:
            return ErrorInfo(Kind.NOT_FOUND, status, code, _message(exc))
        if (code and code in RETRYABLE_CODES) or (status in RETRYABLE_STATUS):
            return ErrorInfo(Kind.RETRYABLE, status, code, _message(exc), retry_after)
        # A Failed LRO surfaces as HttpResponseError with the poll's status (200) and the operation's error.
        return ErrorInfo(Kind.TERMINAL, status, code, _message(exc), retry_after)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
        return ErrorInfo(Kind.RETRYABLE, None, type(exc).__name__, str(exc))
    if isinstance(exc, AzureError):
        return ErrorInfo(Kind.TERMINAL, None, type(exc).__name__, str(exc))
    return ErrorInfo(Kind.TERMINAL, None, type(exc).__name__, str(exc))
