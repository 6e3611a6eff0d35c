"""Thin ARM handlers: read the parsed call, ask the backend, render the body and the LRO headers.

Everything the real service decides (state, validation, errors) lives in models.py; this module only knows
the wire: which status goes with which outcome, the absolute status URLs, and where Retry-After belongs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from georep.emulator.faults import LRO_ACTIONS
from georep.emulator.models import Backend, WriteResult
from georep.emulator.operations import Operation

#: a body of exactly ``null``: what the real DELETE 202 returns (recorded)
NULL_BODY = object()
NO_BODY = object()


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    base_url: str
    api_version: str
    principal: str
    params: dict[str, str]


@dataclass
class Reply:
    status: int
    body: Any = NO_BODY
    headers: dict[str, str] = field(default_factory=dict)


class ArmResponses:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # ----------------------------------------------------------------- helpers
    def _url(self, call: Call, path: str, **extra: str) -> str:
        query = {"api-version": call.api_version, **extra}
        return f"{call.base_url}{path}?{urlencode(query)}"

    def _in_progress_headers(self) -> dict[str, str]:
        seconds = self.backend.settings.retry_after
        return {"Retry-After": str(seconds)} if seconds else {}

    def _lro_faults(self, call: Call) -> list[Any]:
        return self.backend.faults.take(call.method, call.path, LRO_ACTIONS)

    def _write_reply(self, call: Call, result: WriteResult, header: str) -> Reply:
        now = self.backend.now()
        rep, op = result.replication, result.operation
        body = rep.to_arm(now) if rep else NO_BODY
        if op is None:
            return Reply(result.status, body)
        headers = {header: self._url(call, op.status_path()), **self._in_progress_headers()}
        return Reply(result.status, body, headers)

    # --------------------------------------------------------------- registries
    def list_registries(self, call: Call) -> Reply:
        p = call.params
        regs = self.backend.list_registries(p["subscription"], p.get("resource_group"))
        return Reply(200, {"value": [r.to_arm() for r in regs]})

    def get_registry(self, call: Call) -> Reply:
        p = call.params
        return Reply(200, self.backend.get_registry(p["subscription"], p["resource_group"], p["registry"]).to_arm())

    # ------------------------------------------------------------- replications
    def list_replications(self, call: Call) -> Reply:
        p = call.params
        items = self.backend.list_replications(p["subscription"], p["resource_group"], p["registry"])
        try:
            start = max(0, int(call.query.get("$skipToken", call.query.get("$skiptoken", "0"))))
        except ValueError:
            start = 0
        size = self.backend.settings.page_size
        now = self.backend.now()
        body: dict[str, Any] = {"value": [r.to_arm(now) for r in items[start : start + size]]}
        if start + size < len(items):
            body["nextLink"] = self._url(call, call.path, **{"$skipToken": str(start + size)})
        return Reply(200, body)

    def get_replication(self, call: Call) -> Reply:
        p = call.params
        rep = self.backend.get_replication(p["subscription"], p["resource_group"], p["registry"], p["replication"])
        return Reply(200, rep.to_arm(self.backend.now()))

    def create_replication(self, call: Call) -> Reply:
        p = call.params
        result = self.backend.create_replication(
            p["subscription"],
            p["resource_group"],
            p["registry"],
            p["replication"],
            call.body,
            call.principal,
            lambda: self._lro_faults(call),
        )
        return self._write_reply(call, result, "Azure-AsyncOperation")

    def update_replication(self, call: Call) -> Reply:
        p = call.params
        result = self.backend.update_replication(
            p["subscription"],
            p["resource_group"],
            p["registry"],
            p["replication"],
            call.body,
            call.principal,
            lambda: self._lro_faults(call),
        )
        return self._write_reply(call, result, "Azure-AsyncOperation")

    def delete_replication(self, call: Call) -> Reply:
        p = call.params
        result = self.backend.delete_replication(
            p["subscription"], p["resource_group"], p["registry"], p["replication"], lambda: self._lro_faults(call)
        )
        if result.operation is None:
            return Reply(204)
        headers = {"Location": self._url(call, result.operation.status_path()), **self._in_progress_headers()}
        return Reply(202, NULL_BODY, headers)

    # --------------------------------------------------------------- operations
    def operation_status(self, call: Call) -> Reply:
        """Azure-AsyncOperation URL: always 200, the state is in the body."""
        op = self._operation(call, kind="async")
        now = self.backend.now()
        body = op.status_body(now, call.base_url, call.api_version)
        headers = {} if op.is_done(now) else self._in_progress_headers()
        return Reply(200, body, headers)

    def operation_result(self, call: Call) -> Reply:
        """Location URL of a delete: 202 (no body) while running, then 200 with an empty body (recorded)."""
        op = self._operation(call, kind="delete")
        now = self.backend.now()
        if not op.is_done(now):
            return Reply(202, NO_BODY, self._in_progress_headers())
        if op.outcome != "Succeeded":
            # ARM RPC: a Location URL reports a failed operation with an error status and the error body; a
            # 4xx (not 5xx) so that no client retries the poll of an operation that has already ended
            body = op.status_body(now, call.base_url, call.api_version)
            return Reply(400, {"error": body["error"]})
        return Reply(200, NO_BODY)

    def _operation(self, call: Call, kind: str) -> Operation:
        op = self.backend.get_operation(call.params["operation"], kind=kind)
        return op
