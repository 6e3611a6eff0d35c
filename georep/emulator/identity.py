"""Managed-identity token issue (App Service protocol) and bearer verification for the ARM routes.

Tokens are HS256-signed JWTs under a key kept in the state directory, so tokens cached by clients stay valid
across an emulator restart, and a forged or tampered token fails the signature check. Tokens are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from georep.emulator.exceptions import (
    AuthenticationFailed,
    ExpiredAuthenticationToken,
    InvalidAuthenticationToken,
)

ISSUER = "https://sts.georep-emulator.local/"
DEFAULT_PRINCIPAL = "georep-emulator-identity"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Principal:
    id: str
    type: str = "ManagedIdentity"


class TokenAuthority:
    def __init__(self, key: bytes, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self.audience = audience.rstrip("/")
        self.ttl_seconds = ttl_seconds

    def issue(self, resource: str, client_id: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "aud": resource.rstrip("/"),
            "iss": ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "oid": client_id or DEFAULT_PRINCIPAL,
            "appid": client_id or DEFAULT_PRINCIPAL,
            "idtyp": "app",
            "jti": uuid.uuid4().hex,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return {
            "access_token": f"{header}.{payload}.{signature}",
            "expires_on": str(claims["exp"]),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id or DEFAULT_PRINCIPAL,
        }

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationFailed("Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "Authentication failed. The 'Authorization' header is provided in an invalid format."
            )
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise InvalidAuthenticationToken("The access token is invalid.")
        header, payload, signature = parts
        expected = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            raise InvalidAuthenticationToken("The access token has an invalid signature.")
        try:
            claims = json.loads(_unb64(payload))
        except ValueError as exc:
            raise InvalidAuthenticationToken("The access token is invalid.") from exc
        if str(claims.get("aud", "")).rstrip("/") != self.audience:
            raise InvalidAuthenticationToken(
                f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'. "
                f"It should exactly match with one of the allowed audiences '{self.audience}'."
            )
        if int(claims.get("exp", 0)) <= time.time():
            raise ExpiredAuthenticationToken("The access token expiry UTC time is earlier than current UTC time.")
        return Principal(id=str(claims.get("oid", DEFAULT_PRINCIPAL)))
