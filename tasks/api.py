"""georep's own Prefect API writes (registry locks, write slots, ARM budget payments, artifacts): one long-lived
client per API, one gate that lets them through one at a time, and quick retries of a busy server.

Why one client: Prefect's concurrency helpers build a new client for every acquisition and every release (an SSL
context, about 20 ms, and a CSRF token fetch) on a service thread; measured 40-45 ms per call beyond the request
itself, four times per run on the path to the first PUT and after the last LRO. httpx clients are thread-safe, so
one client serves every thread of the process.

Why one gate and georep's own retries: on a SQLite-backed server (Prefect's temporary server, the default of
``georep apply``) two write transactions that meet fail at once with "database is locked", the server answers
503, and Prefect's client retries after 2 s, then 4 s. georep writes from several threads (the registry lock and
a wave's slots on the flow's thread, artifacts and slot returns on the publisher, ARM budget payments on the
budget's threads): measured, a wave's slot acquisition that met a budget payment waited 2-6 s. Each of georep's
writes is one short request, so the gate costs nothing on SQLite, which serializes writers anyway, and little on
PostgreSQL; a write that still meets one of the server's own (events, task runs) is retried here after tens of
milliseconds instead of seconds, outside the gate. Waiting for a refused slot or a spent rate limit is the
caller's, and also happens outside the gate.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from prefect.client.base import PrefectHttpxSyncClient, PrefectResponse
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL

T = TypeVar("T")

#: held for the length of one georep write to the Prefect API (re-entrant for a write that makes another)
WRITE_GATE = threading.RLock()
#: answers that mean "try again": a busy database (503), a proxy (502), throttling (429), a timeout (408)
RETRY_STATUSES = frozenset({408, 429, 502, 503})
#: how long a write keeps being retried: Prefect's own client retries for about a minute too (2+4+...+32 s)
RETRY_FOR_SECONDS = 60.0
RETRY_PAUSE_SECONDS = (0.02, 2.0)

_clients: dict[str, SyncPrefectClient] = {}
_clients_lock = threading.Lock()


def _client() -> SyncPrefectClient:
    """The process's client for the Prefect API configured now (keyed by its URL; "" is the temporary server
    Prefect starts when none is configured), sending each request once: ``write`` retries."""
    url = PREFECT_API_URL.value() or ""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            _send_once(client._client)
            _clients[url] = client
        return client


def _send_once(raw: PrefectHttpxSyncClient) -> None:
    """``PrefectHttpxSyncClient.send`` without its retries: it sleeps 2 s after a 503 even with
    PREFECT_CLIENT_MAX_RETRIES=0. Everything else it does is kept: attribution and CSRF headers, Prefect's
    responses and their errors."""

    def send(request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        raw._add_attribution_headers(request)
        if raw.enable_csrf_support and request.method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
            raw._add_csrf_headers(request=request)
        response = PrefectResponse.from_httpx_response(httpx.Client.send(raw, request, *args, **kwargs))
        if _csrf_refused(response):
            raw.csrf_token = None  # fetched again by the retry
        if raw.raise_on_all_errors:
            response.raise_for_status()
        return response

    raw.send = send  # type: ignore[method-assign]


def _csrf_refused(response: httpx.Response) -> bool:
    """The server no longer knows the client's CSRF token (it expired, or the server restarted)."""
    return response.status_code == 403 and "Invalid CSRF token" in response.text


def _retryable(exc: httpx.HTTPStatusError) -> bool:
    return exc.response.status_code in RETRY_STATUSES or _csrf_refused(exc.response)


def write(call: Callable[[SyncPrefectClient], T]) -> T:
    """Make one georep write through the gate and return what ``call`` returned. Busy and unreachable servers
    are retried (jittered backoff from 20 ms, up to ``RETRY_FOR_SECONDS``); any other error is the caller's (a
    423 for slots that are taken, a 404, a 409)."""
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    pause = RETRY_PAUSE_SECONDS[0]
    while True:
        with WRITE_GATE:
            try:
                return call(_client())
            except httpx.HTTPStatusError as exc:
                if not _retryable(exc) or time.monotonic() > deadline:
                    raise
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(random.uniform(pause / 2, pause))
        pause = min(pause * 2, RETRY_PAUSE_SECONDS[1])
