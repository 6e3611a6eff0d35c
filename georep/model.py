"""The vocabulary shared by the planner, the LRO engine, the tasks, the artifacts and the report.

One set of field names (registry, region, replication, state, action, operation) everywhere, so a log line,
a checkpoint row and an artifact cell about the same region can be joined without translation.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class RegistryRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subscription_id: str
    resource_group: str
    name: str

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.resource_group}/{self.name}"


class RegistryInfo(BaseModel):
    """What observe() learns about the registry itself (the home region decides what may never be touched)."""

    model_config = ConfigDict(frozen=True)

    ref: RegistryRef
    home: str
    sku: str


class ReplicaSpec(BaseModel):
    """A desired replica. ``region_endpoint_enabled=None`` means "leave it as it is" (never re-enable routing
    implicitly: disabling it may be a deliberate mitigation).

    ``region_endpoint_explicit`` records whether the plan's region entry said so itself: only an explicit
    ``true`` re-enables a disabled endpoint; a ``true`` inherited from the defaults applies to new replicas only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    name: str
    zone_redundancy: bool = False
    region_endpoint_enabled: bool | None = None
    region_endpoint_explicit: bool = False
    tags: dict[str, str] = Field(default_factory=dict)


class ObservedReplica(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    region: str
    provisioning_state: str
    display_status: str | None = None
    status_message: str | None = None
    region_endpoint_enabled: bool = True
    zone_redundancy: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    is_home: bool = False


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RECREATE = "recreate"
    REPLACE = "replace"
    DELETE = "delete"
    WAIT = "wait"
    SKIP_HOME = "skip-home"
    NOOP = "noop"

    @property
    def writes(self) -> bool:
        return self in WRITE_ACTIONS

    @property
    def destructive(self) -> bool:
        return self in (ActionKind.RECREATE, ActionKind.REPLACE, ActionKind.DELETE)


WRITE_ACTIONS = frozenset(
    {ActionKind.CREATE, ActionKind.UPDATE, ActionKind.RECREATE, ActionKind.REPLACE, ActionKind.DELETE}
)


class Action(BaseModel):
    """One region's step in a plan, with the reason a person reads in the plan table."""

    model_config = ConfigDict(frozen=True)

    region: str
    replication: str
    kind: ActionKind
    reason: str
    desired: ReplicaSpec | None = None
    observed: ObservedReplica | None = None
    changes: tuple[str, ...] = ()


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled-back"


class RegionOutcome(BaseModel):
    """What happened to one region: a row of the result table and of the checkpoint."""

    model_config = ConfigDict(frozen=True)

    region: str
    replication: str
    action: ActionKind
    result: Result
    provisioning_state: str | None = None
    display_status: str | None = None
    seconds: float = 0.0
    arm_requests: int = 0
    error_code: str | None = None
    error_message: str | None = None
    resumed: bool = False

    @property
    def failed(self) -> bool:
        return self.result is Result.FAILED
