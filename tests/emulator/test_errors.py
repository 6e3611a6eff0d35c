"""georep.errors.classify on real exceptions: each one raised by the real SDK (retries off, as georep builds
it) against the emulator, never constructed by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.errors import ErrorInfo, Kind, classify
from tests.conftest import RegistryRef
from tests.emulator.conftest import RawArm

REPLICA = "westeurope"
LONG_SECONDS = 30.0
THROTTLE_REFILL = 0.1


def raised(call: Callable[[], Any]) -> BaseException:
    """The exception a real SDK call raised."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


def _info(call: Callable[[], Any]) -> ErrorInfo:
    return classify(raised(call))


def _create(client: ContainerRegistryManagementClient, registry: RegistryRef, name: str = REPLICA) -> Any:
    return client.replications.begin_create(registry.resource_group, registry.name, name, {"location": name}).result()


# ------------------------------------------------------------------------------------------------ not found, terminal
def test_missing_replica_is_not_found(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    info = _info(lambda: client.replications.get(registry.resource_group, registry.name, REPLICA))
    assert (info.kind, info.status, info.code, info.retryable) == (Kind.NOT_FOUND, 404, "ResourceNotFound", False)
    assert info.message.startswith("The Resource 'Microsoft.ContainerRegistry/registries/")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"location": "atlantis"}, "LocationNotAvailableForResourceType"),
        ({"tags": {}}, "LocationRequired"),
        ({"location": REPLICA, "properties": {"regionEndpointEnabled": "yes"}}, "InvalidRequestContent"),
    ],
    ids=["location", "required", "type"],
)
def test_validation_errors_are_terminal(
    client: ContainerRegistryManagementClient, registry: RegistryRef, body: dict[str, Any], code: str
) -> None:
    info = _info(lambda: client.replications.begin_create(registry.resource_group, registry.name, REPLICA, body))
    assert (info.kind, info.status, info.code, info.retry_after) == (Kind.TERMINAL, 400, code, None)


def test_home_replica_delete_is_terminal(client: ContainerRegistryManagementClient, registry: RegistryRef) -> None:
    info = _info(lambda: client.replications.begin_delete(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.code) == (Kind.TERMINAL, "HomeReplicationCannotBeDeleted")


def test_same_name_other_location_is_a_terminal_409(
    client: ContainerRegistryManagementClient, registry: RegistryRef
) -> None:
    _create(client, registry)
    info = _info(
        lambda: client.replications.begin_create(
            registry.resource_group, registry.name, REPLICA, {"location": "eastus"}
        )
    )
    assert (info.kind, info.status, info.code) == (Kind.TERMINAL, 409, "InvalidResourceLocation")


def test_failed_lro_is_terminal_with_the_operation_error(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault("lro_fail", method="PUT", path="replications/")
    info = _info(lambda: _create(client, registry))
    # status 200 is the poll's: the operation itself failed
    assert (info.kind, info.status, info.code) == (Kind.TERMINAL, 200, "ReplicationProvisioningFailed")
    assert info.message == "The replication failed to provision. Delete and recreate it."
    assert str(info) == f"HTTP 200 ReplicationProvisioningFailed: {info.message}"


# ------------------------------------------------------------------------------------------------ retryable
def test_recreate_too_soon_after_delete_is_retryable(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.settings(settle_seconds=LONG_SECONDS)
    _create(client, registry)
    client.replications.begin_delete(registry.resource_group, registry.name, REPLICA).result()
    info = _info(lambda: _create(client, registry))
    assert (info.kind, info.status, info.code, info.retry_after) == (Kind.RETRYABLE, 409, "Conflict", None)


def test_operation_in_progress_and_in_flight_limit_are_retryable(
    client: ContainerRegistryManagementClient, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.settings(create_seconds=LONG_SECONDS, max_inflight_per_registry=1)
    rg, reg = registry.resource_group, registry.name
    client.replications.begin_create(rg, reg, REPLICA, {"location": REPLICA}, polling=False)
    busy = _info(lambda: client.replications.begin_update(rg, reg, REPLICA, {"tags": {}}))
    limited = _info(lambda: client.replications.begin_create(rg, reg, "eastus", {"location": "eastus"}))
    control.advance_clock(LONG_SECONDS)
    assert (busy.kind, busy.status, busy.code) == (Kind.RETRYABLE, 409, "AnotherOperationInProgress")
    assert (limited.kind, limited.status, limited.code) == (Kind.RETRYABLE, 409, "TooManyInFlightOperations")


def test_throttling_is_retryable_after_the_servers_delay(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.settings(throttle={"reads": {"burst": 1, "refill_per_second": THROTTLE_REFILL}})
    get = lambda: client.replications.get(registry.resource_group, registry.name, registry.home)  # noqa: E731
    get()
    info = _info(get)
    assert (info.kind, info.status, info.code) == (Kind.RETRYABLE, 429, "SubscriptionRequestsThrottled")
    assert info.retry_after == 1 / THROTTLE_REFILL


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [(500, "InternalServerError", None), (503, "ServiceUnavailable", 1.0), (502, "BadGateway", None)],
)
def test_server_errors_are_retryable(
    client: ContainerRegistryManagementClient,
    registry: RegistryRef,
    control: EmulatorControl,
    status: int,
    code: str,
    retry_after: float | None,
) -> None:
    control.add_fault("status", method="GET", path="replications/", status=status)
    info = _info(lambda: client.replications.get(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.status, info.code, info.retry_after) == (Kind.RETRYABLE, status, code, retry_after)


def test_an_unknown_retryable_status_code_is_retryable_by_status(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault("status", method="GET", path="replications/", status=504, code="SomethingNew")
    info = _info(lambda: client.replications.get(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.code) == (Kind.RETRYABLE, "SomethingNew")


def test_an_unknown_400_code_is_terminal(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault("status", method="GET", path="replications/", status=400, code="SomethingNew")
    info = _info(lambda: client.replications.get(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.status, info.code) == (Kind.TERMINAL, 400, "SomethingNew")


def test_connection_reset_is_retryable(
    client: ContainerRegistryManagementClient, registry: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault("reset", method="GET", path="replications/")
    info = _info(lambda: client.replications.get(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.status) == (Kind.RETRYABLE, None)
    assert info.code in ("ServiceRequestError", "ServiceResponseError")
    assert str(info).startswith("no response ")


def test_unreachable_endpoint_is_retryable(settings: Settings, registry: RegistryRef) -> None:
    # a port nobody listens on (the discard port on loopback)
    down = settings.model_copy(update={"endpoint": "https://127.0.0.1:9"})
    with build_client(down) as c:
        exc = raised(lambda: c.replications.get(registry.resource_group, registry.name, registry.home))
    assert isinstance(exc, ServiceRequestError)
    assert classify(exc).kind is Kind.RETRYABLE


# ------------------------------------------------------------------------------------------------ auth
class _Forged:
    """A credential whose token the emulator cannot verify."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("a.b.c", 2_000_000_000)


def test_rejected_token_is_auth(settings: Settings, registry: RegistryRef) -> None:
    with build_client(settings, credential=_Forged()) as c:
        info = _info(lambda: c.replications.get(registry.resource_group, registry.name, registry.home))
    assert (info.kind, info.status, info.code, info.retryable) == (Kind.AUTH, 401, "InvalidAuthenticationToken", False)


def test_credential_failure_is_auth(settings: Settings, registry: RegistryRef, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with build_client(settings) as c:
        exc = raised(lambda: c.replications.get(registry.resource_group, registry.name, registry.home))
    assert isinstance(exc, ClientAuthenticationError)
    info = classify(exc)
    assert (info.kind, info.status, info.retryable) == (Kind.AUTH, None, False)
