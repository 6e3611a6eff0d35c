"""ASGI applications: the ARM front door (auth, faults, throttling, api-version, dispatch, request log), the
managed-identity endpoint and the control API. Rules stay in models.py; wire details in responses.py."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import struct
import time
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from georep.emulator import urls
from georep.emulator.exceptions import (
    ArmError,
    InvalidApiVersionParameter,
    MissingApiVersionParameter,
    SubscriptionRequestsThrottled,
)
from georep.emulator.faults import REQUEST_ACTIONS, FaultRule
from georep.emulator.identity import TokenAuthority
from georep.emulator.models import Backend
from georep.emulator.responses import NO_BODY, NULL_BODY, ArmResponses, Call, Reply
from georep.emulator.settings import SUPPORTED_API_VERSIONS, EmulatorSettings
from georep.emulator.throttling import Kind

_KIND: dict[str, Kind] = {
    "GET": "reads",
    "HEAD": "reads",
    "PUT": "writes",
    "PATCH": "writes",
    "DELETE": "deletes",
}
_REQUEST_FILTERS = (
    "method",
    "route",
    "status",
    "registry",
    "replication",
    "subscription",
    "client_request_id",
)


def _abort(send: Send) -> bool:
    """Reset the TCP connection under this request (RST, no response), as a flaky load balancer would."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


class ArmApp:
    def __init__(self, backend: Backend, authority: TokenAuthority, admin_key: str) -> None:
        self.backend = backend
        self.authority = authority
        self.admin_key = admin_key
        self.responses = ArmResponses(backend)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response: Response | None
        if request.url.path.startswith(urls.ADMIN_PREFIX):
            response = await self.admin(request)
        else:
            response = await self.arm(request, send)
        if response is not None:  # None: the connection was reset on purpose
            await response(scope, receive, send)

    # ---------------------------------------------------------------------- ARM
    async def arm(self, request: Request, send: Send) -> Response | None:
        started = time.perf_counter()
        method, path = request.method.upper(), request.url.path
        body = await request.body()
        matched = urls.match(path)
        params = matched[1] if matched else {}
        entry: dict[str, Any] = {
            "ts": time.time(),
            "method": method,
            "path": path,
            "route": matched[0].name if matched else "unknown",
            "subscription": params.get("subscription"),
            "resource_group": params.get("resource_group"),
            "registry": params.get("registry"),
            "replication": params.get("replication"),
            "client_request_id": request.headers.get("x-ms-client-request-id"),
        }
        extra_headers: dict[str, str] = {}
        try:
            principal = self.authority.verify(request.headers.get("authorization"))
            entry["principal"] = principal.id
            for rule in sorted(self.backend.faults.take(method, path, REQUEST_ACTIONS), key=_fault_order):
                entry["fault"] = rule.action
                if rule.action == "latency":
                    await asyncio.sleep(rule.latency_seconds)
                elif rule.action == "reset" and _abort(send):
                    self._log(entry, 0, started)
                    return None
                elif rule.action == "status":
                    raise ArmError(
                        rule.error_message(),
                        status=rule.status,
                        code=rule.error_code(),
                        retry_after=rule.effective_retry_after(),
                    )
            if matched is None:
                raise ArmError(
                    f"The resource path '{path}' is not served by this emulator.",
                    status=404,
                    code="InvalidResourceType",
                )
            route = matched[0]
            handler = route.methods.get(method)
            if handler is None:
                raise ArmError(
                    f"The method '{method}' is not allowed on this resource.", status=405, code="MethodNotAllowed"
                )
            api_version = request.query_params.get("api-version")
            if not api_version:
                raise MissingApiVersionParameter(
                    "The api-version query parameter (?api-version=) is required for all requests."
                )
            if api_version not in SUPPORTED_API_VERSIONS:
                raise InvalidApiVersionParameter(
                    f"The api-version '{api_version}' is invalid. The supported versions are "
                    f"'{','.join(SUPPORTED_API_VERSIONS)}'."
                )
            kind = _KIND.get(method, "reads")
            decision = self.backend.throttle.take(params["subscription"], principal.id, kind, time.monotonic())
            extra_headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(decision.remaining)
            if not decision.allowed:
                raise SubscriptionRequestsThrottled(
                    f"Number of '{kind[:-1]}' requests for subscription '{params['subscription']}' actor "
                    f"'{principal.id}' exceeded. Please try again after '{decision.retry_after}' seconds after "
                    "the additional tokens are available.",
                    retry_after=decision.retry_after,
                )
            call = Call(
                method,
                path,
                dict(request.query_params),
                body,
                str(request.base_url).rstrip("/"),
                api_version,
                principal.id,
                params,
            )
            reply: Reply = getattr(self.responses, handler)(call)
        except ArmError as exc:
            reply = Reply(exc.status, exc.body())
            if exc.retry_after:
                reply.headers["Retry-After"] = str(exc.retry_after)
            if exc.status == 401:
                reply.headers["WWW-Authenticate"] = (
                    'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
                    f'error_description="{exc.code}"'
                )
        response = self._render(reply, extra_headers)
        self._log(entry, reply.status, started)
        return response

    def _render(self, reply: Reply, extra_headers: dict[str, str]) -> Response:
        request_id = str(uuid.uuid4())
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request_id,
            "x-ms-routing-request-id": f"EMULATOR:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}:{request_id}",
            **extra_headers,
            **reply.headers,
        }
        if reply.body is NO_BODY:
            return Response(b"", status_code=reply.status, headers=headers)
        content = b"null" if reply.body is NULL_BODY else json.dumps(reply.body).encode()
        return Response(
            content, status_code=reply.status, headers=headers, media_type="application/json; charset=utf-8"
        )

    def _log(self, entry: dict[str, Any], status: int, started: float) -> None:
        entry["status"] = status
        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.backend.store.log_request(entry)

    # -------------------------------------------------------------- control API
    async def admin(self, request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("x-georep-admin-key", ""), self.admin_key):
            return JSONResponse({"error": "missing or wrong X-Georep-Admin-Key"}, status_code=403)
        sub = request.url.path[len(urls.ADMIN_PREFIX) :].strip("/")
        method = request.method.upper()
        b = self.backend
        try:
            data: Any = await request.json() if method in ("POST", "PUT", "PATCH") else None
            if sub == "health":
                return JSONResponse({"ok": True})
            if sub == "reset" and method == "POST":
                b.reset()
                return JSONResponse({"ok": True})
            if sub == "state":
                return JSONResponse(b.snapshot())
            if sub == "registries" and method == "POST":
                reg = b.declare_registry(**data)
                return JSONResponse(reg.to_arm(), status_code=201)
            if sub == "settings":
                if method in ("PUT", "PATCH"):
                    merged = {**b.settings.model_dump(), **data}
                    b.configure(EmulatorSettings.model_validate(merged))
                    self.authority.audience = b.settings.audience.rstrip("/")
                    self.authority.ttl_seconds = b.settings.token_ttl_seconds
                return JSONResponse(b.settings.model_dump())
            if sub == "clock" and method == "POST":
                return JSONResponse({"offset": b.advance_clock(float(data["advance"]))})
            if sub == "faults":
                if method == "POST":
                    return JSONResponse(b.faults.add(FaultRule.model_validate(data)).model_dump(), status_code=201)
                if method == "DELETE":
                    b.faults.clear()
                return JSONResponse([r.model_dump() for r in b.faults.rules()])
            if sub.startswith("faults/") and method == "DELETE":
                found = b.faults.remove(sub.split("/", 1)[1])
                return JSONResponse({"removed": found}, status_code=200 if found else 404)
            if sub == "requests":
                if method == "DELETE":
                    b.store.clear_requests()
                    return JSONResponse({"ok": True})
                q = request.query_params
                filters: dict[str, Any] = {k: q[k] for k in _REQUEST_FILTERS if k in q}
                if "status" in filters:
                    filters["status"] = int(filters["status"])
                return JSONResponse(b.store.requests(filters, since_id=int(q.get("since_id", "0"))))
            if sub == "counters":
                return JSONResponse(b.store.counters())
        except (ValidationError, ArmError, KeyError, TypeError, ValueError) as exc:
            detail = exc.body() if isinstance(exc, ArmError) else {"error": str(exc)}
            return JSONResponse(detail, status_code=400)
        return JSONResponse({"error": f"no control route {method} {request.url.path}"}, status_code=404)


def _fault_order(rule: FaultRule) -> int:
    return {"latency": 0, "reset": 1, "status": 2}.get(rule.action, 3)


class IdentityApp:
    """The App Service managed-identity protocol (2019-08-01), as DefaultAzureCredential speaks it."""

    def __init__(self, authority: TokenAuthority, identity_header: str, backend: Backend) -> None:
        self.authority = authority
        self.identity_header = identity_header
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = self.handle(request)
        self.backend.store.log_request(
            {
                "ts": time.time(),
                "method": request.method,
                "path": request.url.path,
                "route": "identity.token",
                "status": response.status_code,
                "latency_ms": 0.0,
                "principal": request.query_params.get("client_id"),
            }
        )
        await response(scope, receive, send)

    def handle(self, request: Request) -> Response:
        if request.url.path != urls.IDENTITY_PATH or request.method != "GET":
            return JSONResponse({"error": "not_found"}, status_code=404)
        supplied = request.headers.get("x-identity-header", "")
        if not supplied or not hmac.compare_digest(supplied, self.identity_header):
            return JSONResponse(
                {
                    "error": "unauthorized_client",
                    "error_description": "X-IDENTITY-HEADER is missing or wrong.",
                },
                status_code=401,
            )
        resource = request.query_params.get("resource")
        if not resource:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "The 'resource' parameter is required."},
                status_code=400,
            )
        if resource.rstrip("/") != self.authority.audience:
            return JSONResponse(
                {
                    "error": "invalid_resource",
                    "error_description": f"No token can be issued for resource '{resource}'.",
                },
                status_code=400,
            )
        return JSONResponse(self.authority.issue(resource, request.query_params.get("client_id")))
