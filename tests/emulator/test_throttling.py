"""ARM throttling as the SDK sees it: token buckets per operation kind, 429 SubscriptionRequestsThrottled with
Retry-After, the remaining-budget headers, and a 429 that azure-core's own retry honours."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef
from tests.emulator.conftest import Recorder

REPLICA = "westeurope"
BURST = 3
#: slow enough that no token comes back during a test: Retry-After = ceil(1 / refill) s
REFILL_PER_SECOND = 0.1
HEADER = "x-ms-ratelimit-remaining-subscription-{}"
SDK_RETRIES = 3
THROTTLED_TIMES = 2
RETRY_AFTER = 1


def _bucket(burst: int = BURST) -> dict[str, Any]:
    return {"burst": burst, "refill_per_second": REFILL_PER_SECOND}


def _get_home(client: ContainerRegistryManagementClient, registry: RegistryRef, **kwargs: Any) -> Any:
    return client.replications.get(registry.resource_group, registry.name, registry.home, **kwargs)


def test_reads_beyond_the_bucket_are_throttled(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a read bucket of three tokens that does not refill during the test
    control.settings(throttle={"reads": _bucket()})
    recorder = Recorder()
    # when the SDK reads three times, then once more
    for _ in range(BURST):
        _get_home(client, registry, raw_response_hook=recorder)
    with pytest.raises(HttpResponseError) as throttled:
        _get_home(client, registry)
    # then the first three count the budget down, the fourth is 429 SubscriptionRequestsThrottled with Retry-After
    assert [s.headers[HEADER.format("reads")] for s in recorder.seen] == ["2", "1", "0"]
    assert throttled.value.status_code == 429
    assert throttled.value.error.code == "SubscriptionRequestsThrottled"
    assert throttled.value.response.headers["Retry-After"] == str(int(1 / REFILL_PER_SECOND))
    assert throttled.value.response.headers[HEADER.format("reads")] == "0"


def test_each_operation_kind_has_its_own_bucket_and_header(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given small buckets for every kind, the read bucket already empty
    control.settings(throttle={"reads": _bucket(1), "writes": _bucket(), "deletes": _bucket()})
    _get_home(client, registry)
    with pytest.raises(HttpResponseError):
        _get_home(client, registry)
    rg, reg = registry.resource_group, registry.name
    put, patch, delete = Recorder(), Recorder(), Recorder()
    # when the SDK writes and deletes (polling=False: polls would be reads)
    client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}, polling=False, raw_response_hook=put)
    control.advance_clock(1)
    client.replications.begin_update(rg, reg, REPLICA, {"tags": {"a": "b"}}, polling=False, raw_response_hook=patch)
    client.replications.begin_delete(rg, reg, REPLICA, polling=False, raw_response_hook=delete)
    # then writes and deletes still pass, each reporting its own remaining budget, and nothing else
    assert (put.seen[0].status, patch.seen[0].status, delete.seen[0].status) == (201, 200, 202)
    assert put.seen[0].headers[HEADER.format("writes")] == str(BURST - 1)
    assert patch.seen[0].headers[HEADER.format("writes")] == str(BURST - 2)
    assert delete.seen[0].headers[HEADER.format("deletes")] == str(BURST - 1)
    assert HEADER.format("reads") not in put.seen[0].headers
    assert HEADER.format("writes") not in delete.seen[0].headers
    control.advance_clock(1)  # let the delete finish


def test_writes_beyond_the_bucket_are_throttled(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a write bucket of one token
    control.settings(throttle={"writes": _bucket(1)})
    rg, reg = registry.resource_group, registry.name
    client.replications.begin_update(rg, reg, registry.home, {"tags": {"n": "1"}}).result()
    # when a second write follows at once
    with pytest.raises(HttpResponseError) as throttled:
        client.replications.begin_update(rg, reg, registry.home, {"tags": {"n": "2"}})
    # then it is throttled and not applied
    assert (throttled.value.status_code, throttled.value.error.code) == (429, "SubscriptionRequestsThrottled")
    assert throttled.value.response.headers[HEADER.format("writes")] == "0"
    assert _get_home(client, registry).tags == {"n": "1"}


def test_disabled_throttling_never_refuses(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a one-token bucket with throttling turned off
    control.settings(throttle={"enabled": False, "reads": _bucket(1)})
    # when the SDK reads several times; then every read passes
    for _ in range(BURST):
        _get_home(client, registry)
    assert {r["status"] for r in control.requests(registry=registry.name)} == {200}


def test_sdk_retry_honours_retry_after_on_429(
    settings: Settings, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given a client with azure-core's retries on, and two 429s with Retry-After: 1 on replication GETs
    control.add_fault(
        "status", method="GET", path="replications/", status=429, count=THROTTLED_TIMES, retry_after=RETRY_AFTER
    )
    with build_client(settings, retry_total=SDK_RETRIES) as retrying:
        # when it reads a replica
        started = time.monotonic()
        replica = _get_home(retrying, registry)
        elapsed = time.monotonic() - started
    # then the read succeeds after three requests, having waited Retry-After between them
    assert replica.name == registry.home
    assert [r["status"] for r in control.requests(registry=registry.name)] == [429, 429, 200]
    assert elapsed >= THROTTLED_TIMES * RETRY_AFTER * 0.95
    assert elapsed < THROTTLED_TIMES * RETRY_AFTER + 1.5  # Retry-After, not the 0.8 s exponential backoff on top


def test_sdk_with_retries_off_surfaces_the_first_429(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given the same two 429s and georep's client (retries off)
    control.add_fault(
        "status", method="GET", path="replications/", status=429, count=THROTTLED_TIMES, retry_after=RETRY_AFTER
    )
    # when it reads; then the first 429 is raised at once, with its Retry-After for georep's own retry layer
    with pytest.raises(HttpResponseError) as throttled:
        _get_home(client, registry)
    assert throttled.value.status_code == 429
    assert throttled.value.response.headers["Retry-After"] == str(RETRY_AFTER)
    assert len(control.requests(registry=registry.name)) == 1
