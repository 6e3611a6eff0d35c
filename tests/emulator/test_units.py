"""Token buckets, bearer tokens and request parsing, without HTTP."""

from __future__ import annotations

import json

import pytest

from georep.emulator.exceptions import (
    AuthenticationFailed,
    ExpiredAuthenticationToken,
    InvalidAuthenticationToken,
    InvalidRequestContent,
    InvalidResourceName,
    LocationNotAvailableForResourceType,
    LocationRequired,
    PropertyChangeNotAllowed,
    ZoneRedundancyNotSupported,
)
from georep.emulator.identity import TokenAuthority
from georep.emulator.settings import Bucket, ThrottleSettings
from georep.emulator.throttling import Throttle
from georep.emulator.validation import check_names, parse_patch, parse_replication

SUB = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"
AUDIENCE = "https://management.azure.com"
KEY = b"k" * 32
SMALL = ThrottleSettings(reads=Bucket(burst=2, refill_per_second=1), writes=Bucket(burst=1, refill_per_second=0.5))


# ------------------------------------------------------------------------------------------------ throttle
def test_bucket_counts_down_then_refuses_with_retry_after() -> None:
    throttle = Throttle(SMALL)
    decisions = [throttle.take(SUB, "p", "reads", now=0.0) for _ in range(3)]
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 1), (True, 0), (False, 0)]
    assert decisions[2].retry_after == 1


def test_bucket_refills_over_time() -> None:
    throttle = Throttle(SMALL)
    throttle.take(SUB, "p", "writes", now=0.0)
    refused = throttle.take(SUB, "p", "writes", now=0.5)
    assert (refused.allowed, refused.retry_after) == (False, 2)  # 0.25 of a token back; 0.75 / 0.5 -> 2 s
    assert throttle.take(SUB, "p", "writes", now=2.1).allowed


def test_buckets_are_per_subscription_principal_and_kind() -> None:
    throttle = Throttle(SMALL)
    throttle.take(SUB, "p", "writes", now=0.0)
    assert not throttle.take(SUB.upper(), "p", "writes", now=0.0).allowed  # subscription ids are case-insensitive
    assert throttle.take(SUB, "other", "writes", now=0.0).allowed
    assert throttle.take(SUB, "p", "reads", now=0.0).allowed
    assert throttle.take(SUB, "p", "deletes", now=0.0).allowed


def test_disabled_throttle_allows_everything_and_configure_resets() -> None:
    throttle = Throttle(SMALL.model_copy(update={"enabled": False}))
    assert all(throttle.take(SUB, "p", "writes", now=0.0).allowed for _ in range(5))
    throttle.configure(SMALL)
    assert throttle.take(SUB, "p", "writes", now=0.0).allowed
    assert not throttle.take(SUB, "p", "writes", now=0.0).allowed


# ------------------------------------------------------------------------------------------------ tokens
def test_issued_token_verifies_to_its_principal() -> None:
    authority = TokenAuthority(KEY, AUDIENCE, 60)
    token = authority.issue(AUDIENCE + "/", "client-1")
    assert token["token_type"] == "Bearer" and int(token["expires_on"]) > 0
    assert authority.verify(f"Bearer {token['access_token']}").id == "client-1"


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, AuthenticationFailed),
        ("", AuthenticationFailed),
        ("Basic abc", AuthenticationFailed),
        ("Bearer ", AuthenticationFailed),
        ("Bearer not-a-jwt", InvalidAuthenticationToken),
        ("Bearer a.b.c", InvalidAuthenticationToken),
    ],
)
def test_malformed_authorization_is_refused(header: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        TokenAuthority(KEY, AUDIENCE, 60).verify(header)


def test_foreign_wrong_audience_and_expired_tokens_are_refused() -> None:
    authority = TokenAuthority(KEY, AUDIENCE, 60)
    foreign = TokenAuthority(b"x" * 32, AUDIENCE, 60).issue(AUDIENCE, None)["access_token"]
    other_audience = TokenAuthority(KEY, "https://vault.azure.net", 60).issue("https://vault.azure.net", None)
    expired = TokenAuthority(KEY, AUDIENCE, -10).issue(AUDIENCE, None)["access_token"]
    with pytest.raises(InvalidAuthenticationToken):
        authority.verify(f"Bearer {foreign}")
    with pytest.raises(InvalidAuthenticationToken):
        authority.verify(f"Bearer {other_audience['access_token']}")
    with pytest.raises(ExpiredAuthenticationToken):
        authority.verify(f"Bearer {expired}")


# ------------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("name", ["abcd", "a" * 51, "west-eu1", "west_eu1", "wést12"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidResourceName):
        check_names("rg", "registry1", name)


def test_resource_group_names() -> None:
    check_names("rg-(a).b_c", "registry1", "replica1")
    for bad in ("", "rg.", "rg/x", "r" * 91):
        with pytest.raises(InvalidResourceName):
            check_names(bad, "registry1")


def test_body_is_normalised_and_defaulted() -> None:
    parsed = parse_replication(b'{"location": "West US 2"}', set())
    assert (parsed.location, parsed.tags, parsed.region_endpoint_enabled, parsed.zone_redundancy) == (
        "westus2",
        {},
        True,
        "Disabled",
    )
    assert parse_replication(
        b'{"location": "eastus", "properties": {"zoneRedundancy": "enabled"}}', set()
    ).zone_redundancy == ("Enabled")


@pytest.mark.parametrize(
    ("raw", "error", "target"),
    [
        (b"{", InvalidRequestContent, None),
        (b"", InvalidRequestContent, None),
        (b"[]", InvalidRequestContent, None),
        (b"{}", LocationRequired, "location"),
        (b'{"location": ""}', LocationRequired, "location"),
        (b'{"location": 5}', InvalidRequestContent, "location"),
        (b'{"location": "atlantis"}', LocationNotAvailableForResourceType, "location"),
        (b'{"location": "germanynorth"}', LocationNotAvailableForResourceType, "location"),
        (b'{"location": "westus", "properties": {"zoneRedundancy": "Enabled"}}', ZoneRedundancyNotSupported, None),
        (b'{"location": "eastus", "properties": []}', InvalidRequestContent, "properties"),
        (b'{"location": "eastus", "properties": {"regionEndpointEnabled": 1}}', InvalidRequestContent, None),
        (b'{"location": "eastus", "tags": ["a"]}', InvalidRequestContent, "tags"),
    ],
)
def test_bad_bodies(raw: bytes, error: type[Exception], target: str | None) -> None:
    with pytest.raises(error) as refused:
        parse_replication(raw, set())
    if target:
        assert refused.value.target == target  # type: ignore[attr-defined]


def test_granted_restricted_region_is_accepted() -> None:
    assert parse_replication(b'{"location": "Germany North"}', {"germanynorth"}).location == "germanynorth"


def test_too_many_tags() -> None:
    with pytest.raises(InvalidRequestContent):
        parse_replication(json.dumps({"location": "eastus", "tags": {str(i): "v" for i in range(51)}}).encode(), set())


def test_patch_parsing() -> None:
    patch = parse_patch(b'{"tags": {"a": "b"}, "properties": {"regionEndpointEnabled": false}}')
    assert (patch.tags, patch.region_endpoint_enabled) == ({"a": "b"}, False)
    assert parse_patch(b"{}").tags is None
    for raw in (b'{"location": "eastus"}', b'{"properties": {"zoneRedundancy": "Enabled"}}'):
        with pytest.raises(PropertyChangeNotAllowed):
            parse_patch(raw)
