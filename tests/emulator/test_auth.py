"""Bearer authentication on the ARM routes and the managed-identity endpoint behind DefaultAzureCredential:
missing, forged, mis-addressed and expired tokens, a wrong identity secret, and tokens kept out of the log."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.arm import build_client
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.emulator.identity import TokenAuthority
from georep.emulator.server import EmulatorServer
from tests.conftest import RegistryRef
from tests.emulator.conftest import IDENTITY_API_VERSION, RawArm, fetch_token, replication_path

TOKEN_TTL_SECONDS = 1
OTHER_AUDIENCE = "https://vault.azure.net"
WRONG_SECRET = "not-the-identity-header"


class StaticToken:
    """A TokenCredential that always hands out the same (bad) token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def _tamper(token: str) -> str:
    """Change the payload's oid and keep the signature: a forged token."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _arm_error(response: requests.Response, code: str) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "claims=" not in response.headers["WWW-Authenticate"]  # no CAE challenge: the SDK must not retry


# ------------------------------------------------------------------------------------------------ ARM routes
def test_request_without_authorization_is_401_authentication_failed(raw: RawArm, registry: RegistryRef) -> None:
    # given no Authorization header
    # when a replica is read
    response = raw.get(replication_path(registry, registry.home), auth=False)
    # then 401 AuthenticationFailed with an ARM error body and a Bearer challenge
    _arm_error(response, "AuthenticationFailed")


def test_non_bearer_scheme_is_401_authentication_failed(raw: RawArm, registry: RegistryRef) -> None:
    # given Basic credentials instead of a bearer token; when a replica is read; then 401 AuthenticationFailed
    response = raw.get(
        replication_path(registry, registry.home), auth=False, headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    _arm_error(response, "AuthenticationFailed")


def test_forged_token_is_invalid(raw: RawArm, registry: RegistryRef) -> None:
    # given a real token whose claims were edited after signing
    # when used; then 401 InvalidAuthenticationToken
    response = raw.get(replication_path(registry, registry.home), token=_tamper(raw.token))
    _arm_error(response, "InvalidAuthenticationToken")


def test_token_signed_with_another_key_is_invalid(raw: RawArm, registry: RegistryRef) -> None:
    # given a well-formed token from another issuer's key
    foreign = TokenAuthority(b"another-key", "https://management.azure.com", 3600).issue(
        "https://management.azure.com", None
    )["access_token"]
    # when used; then 401 InvalidAuthenticationToken
    _arm_error(raw.get(replication_path(registry, registry.home), token=foreign), "InvalidAuthenticationToken")


def test_token_for_another_audience_is_invalid(raw: RawArm, registry: RegistryRef, emulator: EmulatorServer) -> None:
    # given a correctly signed token for another resource
    other = TokenAuthority(emulator.secrets.token_key, OTHER_AUDIENCE, 3600).issue(OTHER_AUDIENCE, None)
    # when used against ARM; then 401 InvalidAuthenticationToken naming the audience
    response = raw.get(replication_path(registry, registry.home), token=other["access_token"])
    _arm_error(response, "InvalidAuthenticationToken")
    assert OTHER_AUDIENCE in response.json()["error"]["message"]


def test_expired_token_is_refused(
    raw: RawArm, registry: RegistryRef, control: EmulatorControl, emulator: EmulatorServer
) -> None:
    # given tokens that live one second, and one fetched now
    control.settings(token_ttl_seconds=TOKEN_TTL_SECONDS)
    token = fetch_token(emulator)
    assert raw.get(replication_path(registry, registry.home), token=token["access_token"]).status_code == 200
    # when it is used after its expiry
    time.sleep(max(0.0, int(token["expires_on"]) - time.time()) + 0.05)
    response = raw.get(replication_path(registry, registry.home), token=token["access_token"])
    # then 401 ExpiredAuthenticationToken
    _arm_error(response, "ExpiredAuthenticationToken")


def test_sdk_with_a_bad_token_raises_client_authentication_error(
    settings: Settings, raw: RawArm, registry: RegistryRef, control: EmulatorControl
) -> None:
    # given an SDK client whose credential hands out a forged token
    credential = StaticToken(_tamper(raw.token))
    # when it reads a replica
    with build_client(settings, credential=credential) as forged, pytest.raises(ClientAuthenticationError) as refused:
        forged.replications.get(registry.resource_group, registry.name, registry.home)
    # then ClientAuthenticationError with the ARM code, after a single request (no retry on the challenge)
    assert refused.value.status_code == 401
    assert refused.value.error.code == "InvalidAuthenticationToken"
    assert [r["status"] for r in control.requests(registry=registry.name)] == [401]


# ------------------------------------------------------------------------------------------------ identity endpoint
def test_identity_endpoint_requires_the_secret_header(emulator: EmulatorServer) -> None:
    # given a token request without X-IDENTITY-HEADER, and one with a wrong value
    params = {"api-version": IDENTITY_API_VERSION, "resource": "https://management.azure.com"}
    missing = requests.get(emulator.identity_endpoint, params=params, headers={"Metadata": "true"}, timeout=10)
    wrong = requests.get(
        emulator.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": WRONG_SECRET}, timeout=10
    )
    # then both are 401 and carry no token
    for response in (missing, wrong):
        assert response.status_code == 401
        assert "access_token" not in response.json()


def test_identity_endpoint_issues_tokens_only_for_its_audience(emulator: EmulatorServer) -> None:
    # given the right secret; when a token for another resource is asked; then 400 invalid_resource
    response = requests.get(
        emulator.identity_endpoint,
        params={"api-version": IDENTITY_API_VERSION, "resource": OTHER_AUDIENCE},
        headers={"X-IDENTITY-HEADER": emulator.secrets.identity_header},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_resource"


def test_default_azure_credential_with_a_wrong_identity_header_fails(
    settings: Settings, registry: RegistryRef, control: EmulatorControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given DefaultAzureCredential configured with the wrong managed-identity secret
    monkeypatch.setenv("IDENTITY_HEADER", WRONG_SECRET)
    # when the SDK reads a replica
    with build_client(settings) as misconfigured, pytest.raises(ClientAuthenticationError):
        misconfigured.replications.get(registry.resource_group, registry.name, registry.home)
    # then ClientAuthenticationError, before any ARM request; the identity endpoint said 401
    assert control.requests(registry=registry.name) == []
    assert control.requests(route="identity.token")[-1]["status"] == 401


def test_tokens_never_reach_the_request_log(
    client: ContainerRegistryManagementClient,
    raw: RawArm,
    registry: RegistryRef,
    control: EmulatorControl,
    emulator: EmulatorServer,
) -> None:
    # given authenticated SDK and raw traffic, and a rejected forged token
    client.replications.get(registry.resource_group, registry.name, registry.home)
    raw.get(replication_path(registry, registry.home), token=_tamper(raw.token))
    # when the request log is read back, and the state files are scanned
    log = json.dumps(control.requests())
    stored = b"".join(p.read_bytes() for p in Path(emulator.state_dir).glob("emulator.db*"))
    # then no token (nor any signature part of one) appears anywhere
    signature = raw.token.split(".")[2].encode()
    assert raw.token not in log and "Bearer" not in log
    assert signature.decode() not in log
    assert signature not in stored
    assert control.requests(registry=registry.name)[0]["principal"] == "georep-emulator-identity"
