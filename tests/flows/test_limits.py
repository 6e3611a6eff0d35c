"""Taking global concurrency slots under contention never leaks them (Prefect 3.9 drops a grant whose client-side
timeout fired mid-request; georep never lets a timeout cut a request), and concurrent first runs may create the
same limit."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from prefect.client.orchestration import get_client

from tasks import api, limits


def active(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_contended_acquisitions_with_short_timeouts_leak_no_slot() -> None:
    name = f"georep-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        limits.upsert(client, name, 1)
    outcomes: list[str] = []

    def contend() -> None:
        try:
            held = limits.acquire([name], 1, 0.3)
        except TimeoutError:
            outcomes.append("timed out")
            return
        outcomes.append("held")
        held.release()

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 8 and "held" in outcomes
    assert active(name) == 0, "a slot stayed taken after every holder released"


def test_acquire_times_out_while_held_and_succeeds_after_release() -> None:
    name = f"georep-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        limits.upsert(client, name, 1)
    first = limits.acquire([name], 1, 5)
    with pytest.raises(TimeoutError):
        limits.acquire([name], 1, 0.5)
    first.release()
    second = limits.acquire([name], 1, 5)
    second.release()
    assert active(name) == 0


def test_concurrent_upserts_of_a_new_limit_all_succeed() -> None:
    name = f"georep-test-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []

    def create() -> None:
        try:
            with get_client(sync_client=True) as client:
                limits.upsert(client, name, 3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 3


def test_missing_limit_is_not_mistaken_for_a_busy_one() -> None:
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    with pytest.raises(ConcurrencySlotAcquisitionError):
        limits.acquire([f"georep-missing-{uuid.uuid4().hex[:8]}"], 1, 0.5)


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://prefect.invalid/api/v2/concurrency_limits/increment-with-lease")
    return httpx.HTTPStatusError(f"{status}", request=request, response=httpx.Response(status, request=request))


def test_a_busy_server_is_retried_after_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's "database is locked" comes back as 503; Prefect's own client would sleep 2 s before retrying."""
    pauses: list[float] = []
    monkeypatch.setattr(api.time, "sleep", pauses.append)
    calls: list[int] = []

    def busy_twice(client: object) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _status_error(503)
        return "granted"

    assert api.write(busy_twice) == "granted"
    assert len(calls) == 3 and len(pauses) == 2 and max(pauses) <= 0.05


def test_a_refusal_is_the_callers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(api.time, "sleep", pauses.append)

    def refused(client: object) -> None:
        raise _status_error(423)

    with pytest.raises(httpx.HTTPStatusError):
        api.write(refused)
    assert pauses == []


def test_the_shared_client_sends_a_request_once() -> None:
    """The 503 retry is georep's: the shared client itself must not sleep and resend (Prefect's does, 2 s)."""
    client = api._client()
    sent: list[httpx.Request] = []
    transport = client._client._transport
    original = transport.handle_request

    def busy(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, request=request, json={"exception_message": "Service Unavailable"})

    transport.handle_request = busy  # type: ignore[method-assign]
    try:
        with pytest.raises(httpx.HTTPStatusError):
            client.read_global_concurrency_limit_by_name("georep-any")
    finally:
        transport.handle_request = original  # type: ignore[method-assign]
    assert len(sent) == 1
