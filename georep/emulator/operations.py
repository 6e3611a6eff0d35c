"""Async-operation records: what the Azure-AsyncOperation and Location URLs report.

State is derived from elapsed time on each read (no background task), as the real service appears to the
SDK: an operation is InProgress until ``started + duration``, then terminal. ``duration=None`` is an operation
that never ends (azure-sdk-for-python#31579).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

OpKind = Literal["create", "update", "delete"]
Outcome = Literal["Succeeded", "Failed", "Canceled"]


def iso(ts: float) -> str:
    """RFC 3339 with 7 fractional digits and a Z, the way ARM writes timestamps."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def new_operation_id() -> str:
    return f"replications-{uuid.uuid4()}"


@dataclass
class Operation:
    id: str
    kind: OpKind
    subscription: str
    resource_group: str
    registry: str
    replication: str
    location: str
    started: float
    duration: float | None
    outcome: Outcome = "Succeeded"
    error_code: str | None = None
    error_message: str | None = None
    applied: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def ends_at(self) -> float | None:
        return None if self.duration is None else self.started + self.duration

    def is_done(self, now: float) -> bool:
        end = self.ends_at()
        return end is not None and now >= end

    def status(self, now: float) -> str:
        return self.outcome if self.is_done(now) else "InProgress"

    def status_body(self, now: float, base_url: str, api_version: str) -> dict[str, Any]:
        """The Azure-AsyncOperation document (ARM async-api-reference)."""
        body: dict[str, Any] = {
            "id": self.status_path() + f"?api-version={api_version}",
            "name": self.id,
            "status": self.status(now),
            "startTime": iso(self.started),
        }
        if self.is_done(now):
            body["endTime"] = iso(self.ends_at() or now)
            if self.outcome != "Succeeded":
                body["error"] = {
                    "code": self.error_code or "InternalServerError",
                    "message": self.error_message or "The operation failed.",
                }
        return body

    def replication_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.ContainerRegistry/registries/{self.registry}/replications/{self.replication}"
        )

    def status_path(self) -> str:
        if self.kind == "delete":
            # recorded shape: subscription-scoped, keyed by the replica's location
            return (
                f"/subscriptions/{self.subscription}/providers/Microsoft.ContainerRegistry/locations/"
                f"{self.location}/operationResults/{self.id}"
            )
        return f"{self.replication_path()}/operationStatuses/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        return cls(**data)
