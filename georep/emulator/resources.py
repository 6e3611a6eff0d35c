"""The emulated ARM resources and their wire rendering (API 2025-11-01 shapes, plus systemData as recorded)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from georep.emulator.operations import iso

PROVIDER = "Microsoft.ContainerRegistry"
REGISTRY_TYPE = f"{PROVIDER}/registries"
REPLICATION_TYPE = f"{PROVIDER}/registries/replications"


def registry_key(subscription: str, resource_group: str, registry: str) -> str:
    """ARM names are case-insensitive; keys are lowercased, wire output keeps the stored casing."""
    return f"{subscription}/{resource_group}/{registry}".lower()


def replication_key(subscription: str, resource_group: str, registry: str, name: str) -> str:
    return f"{registry_key(subscription, resource_group, registry)}/{name.lower()}"


@dataclass
class Registry:
    subscription: str
    resource_group: str
    name: str
    location: str
    sku: str = "Premium"
    size_gb: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def key(self) -> str:
        return registry_key(self.subscription, self.resource_group, self.name)

    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"{REGISTRY_TYPE}/{self.name}"
        )

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.id(),
            "name": self.name,
            "type": REGISTRY_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "sku": {"name": self.sku, "tier": self.sku},
            "properties": {
                "loginServer": f"{self.name.lower()}.azurecr.io",
                "creationDate": iso(self.created_at),
                "provisioningState": "Succeeded",
                "adminUserEnabled": False,
                "publicNetworkAccess": "Enabled",
                "zoneRedundancy": "Disabled",
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Replication:
    subscription: str
    resource_group: str
    registry: str
    name: str
    location: str
    tags: dict[str, str]
    region_endpoint_enabled: bool
    zone_redundancy: str
    provisioning_state: str
    created_at: float
    created_by: str
    modified_at: float
    modified_by: str
    status_changed_at: float
    #: when provisioning reached Succeeded; Syncing lasts sync_seconds after it, then Ready.
    succeeded_at: float | None = None
    sync_seconds: float = 0.0
    error_message: str | None = None
    operation_id: str | None = None
    #: list may lag get (ARO-HCP PR #2585): the replica appears in list from this time on.
    listed_from: float = 0.0

    @property
    def key(self) -> str:
        return replication_key(self.subscription, self.resource_group, self.registry, self.name)

    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"{REGISTRY_TYPE}/{self.registry}/replications/{self.name}"
        )

    def display_status(self, now: float) -> tuple[str, str | None, float]:
        """(displayStatus, message, timestamp) as ACR reports them in each phase."""
        if self.provisioning_state in ("Creating", "Updating"):
            return "Provisioning", "The replication is provisioning.", self.status_changed_at
        if self.provisioning_state == "Deleting":
            return "Deleting", "The replication is being deleted.", self.status_changed_at
        if self.provisioning_state == "Failed":
            return "Failed", self.error_message or "The replication failed.", self.status_changed_at
        if self.succeeded_at is not None and now < self.succeeded_at + self.sync_seconds:
            return "Syncing", None, self.succeeded_at
        ready_at = (self.succeeded_at or self.status_changed_at) + self.sync_seconds
        return "Ready", "The replication is ready.", ready_at

    def to_arm(self, now: float) -> dict[str, Any]:
        display, message, stamp = self.display_status(now)
        status: dict[str, Any] = {"displayStatus": display, "timestamp": iso(stamp)}
        if message:
            status["message"] = message
        return {
            "id": self.id(),
            "name": self.name,
            "type": REPLICATION_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "systemData": {
                "createdBy": self.created_by,
                "createdByType": "Application",
                "createdAt": iso(self.created_at),
                "lastModifiedBy": self.modified_by,
                "lastModifiedByType": "Application",
                "lastModifiedAt": iso(self.modified_at),
            },
            "properties": {
                "provisioningState": self.provisioning_state,
                "status": status,
                "regionEndpointEnabled": self.region_endpoint_enabled,
                "zoneRedundancy": self.zone_redundancy,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
