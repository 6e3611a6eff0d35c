"""Helpers for the emulator suite: raw ARM calls with a real bearer token (for what the SDK cannot express or
hides: malformed bodies, exact headers and body bytes) and a recorder of the SDK's HTTP responses.

Both check every response they see for MissingSubscriptionRegistration: the emulator must never send it
(azure-mgmt-core would then POST .../providers/Microsoft.ContainerRegistry/register and poll it every 10 s)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResponseNotReadError
from requests.structures import CaseInsensitiveDict

from georep.emulator.client import EmulatorControl
from georep.emulator.server import EmulatorServer
from georep.emulator.settings import API_VERSION
from tests.conftest import RegistryRef

IDENTITY_API_VERSION = "2019-08-01"
ARM_RESOURCE = "https://management.azure.com"
PROVIDER = "/providers/Microsoft.ContainerRegistry"
#: the error code the emulator must never answer with
NEVER_SENT = "MissingSubscriptionRegistration"


def fetch_token(server: EmulatorServer, resource: str = ARM_RESOURCE) -> dict[str, Any]:
    """A token from the emulator's managed-identity endpoint, the way msal asks for it."""
    response = requests.get(
        server.identity_endpoint,
        params={"api-version": IDENTITY_API_VERSION, "resource": resource},
        headers={"X-IDENTITY-HEADER": server.secrets.identity_header, "Metadata": "true"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def registry_path(ref: RegistryRef) -> str:
    return f"/subscriptions/{ref.subscription}/resourceGroups/{ref.resource_group}{PROVIDER}/registries/{ref.name}"


def replication_path(ref: RegistryRef, name: str | None = None) -> str:
    base = registry_path(ref) + "/replications"
    return base if name is None else f"{base}/{name}"


@dataclass
class RawArm:
    """requests against the emulator's ARM front door: TLS verified with the emulator CA, bearer token attached."""

    base_url: str
    ca: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path_or_url: str) -> str:
        return path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        api_version: str | None = API_VERSION,
        token: str | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {token or self.token}"
        params = kwargs.pop("params", {})
        if api_version is not None and "api-version=" not in path_or_url:
            params = {"api-version": api_version, **params}
        response = self.session.request(
            method,
            self.url(path_or_url),
            params=params,
            headers=hdrs,
            verify=self.ca,
            timeout=10,
            **kwargs,
        )
        assert NEVER_SENT not in response.text
        return response

    def get(self, path_or_url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path_or_url, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(scope="session")
def raw(emulator: EmulatorServer) -> Iterator[RawArm]:
    arm = RawArm(emulator.base_url, str(emulator.tls.ca), fetch_token(emulator)["access_token"])
    yield arm
    arm.session.close()


@dataclass
class Seen:
    method: str
    url: str
    status: int
    headers: CaseInsensitiveDict[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class Recorder:
    """``raw_response_hook`` for SDK calls: keeps every response the SDK received (polls included)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def __call__(self, pipeline_response: Any) -> None:
        req, resp = pipeline_response.http_request, pipeline_response.http_response
        try:
            text = resp.text()
        except ResponseNotReadError:  # LRO initial calls are streamed; read (and cache) the body for the SDK
            resp.read()
            text = resp.text()
        assert NEVER_SENT not in text
        self.seen.append(Seen(req.method, req.url, resp.status_code, CaseInsensitiveDict(resp.headers), text))

    @property
    def statuses(self) -> list[int]:
        return [s.status for s in self.seen]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll a condition instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def lro_requests(control: EmulatorControl, client_request_id: str) -> list[dict[str, Any]]:
    """Every request of one SDK call: polls reuse the call's x-ms-client-request-id."""
    return control.requests(client_request_id=client_request_id)
