"""The emulator's backend: registries, replications and their operations, with every rule of the real service
that georep depends on. No HTTP here; responses.py translates requests into these calls.

State is kept in memory and written through to the Store at every change, so a restarted emulator resumes
in-flight operations where the clock says they are.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from georep import regions
from georep.emulator import validation
from georep.emulator.exceptions import (
    AnotherOperationInProgress,
    Conflict,
    HomeReplicationCannotBeDeleted,
    InvalidRequestContent,
    InvalidResourceLocation,
    PropertyChangeNotAllowed,
    RegistrySkuNotSupported,
    ResourceGroupNotFound,
    ResourceNotFound,
    SubscriptionNotFound,
    TooManyInFlightOperations,
)
from georep.emulator.faults import FaultBook, FaultRule
from georep.emulator.operations import Operation, OpKind, new_operation_id
from georep.emulator.resources import Registry, Replication, registry_key, replication_key
from georep.emulator.settings import EmulatorSettings
from georep.emulator.store import Store
from georep.emulator.throttling import Throttle

#: the LRO faults of a request, or a function that takes them when an operation is actually created
FaultSource = list[FaultRule] | Callable[[], list[FaultRule]]

TRANSITIONAL = frozenset({"Creating", "Updating", "Deleting"})


class Clock:
    """Wall time plus an offset that the control API can advance (e.g. to reach Ready without waiting)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


@dataclass(frozen=True)
class WriteResult:
    status: int
    replication: Replication | None
    operation: Operation | None


class Backend:
    def __init__(self, settings: EmulatorSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(None)
        self.faults = FaultBook(settings.seed)
        self.throttle = Throttle(settings.throttle)
        self._rng = random.Random(settings.seed)
        self._lock = threading.RLock()
        meta = self.store.get("meta", "clock") or {}
        self.clock = Clock(float(meta.get("offset", 0.0)))
        self.registries: dict[str, Registry] = {k: Registry(**v) for k, v in self.store.items("registries")}
        self.replications: dict[str, Replication] = {k: Replication(**v) for k, v in self.store.items("replications")}
        self.operations: dict[str, Operation] = {k: Operation.from_dict(v) for k, v in self.store.items("operations")}
        self.tombstones: dict[str, float] = {k: v["until"] for k, v in self.store.items("tombstones")}

    # ----------------------------------------------------------------- control
    def configure(self, settings: EmulatorSettings) -> None:
        with self._lock:
            self.settings = settings
            self.throttle.configure(settings.throttle)
            self.faults.reseed(settings.seed)
            self._rng = random.Random(settings.seed)

    def reset(self) -> None:
        with self._lock:
            self.store.clear()
            self.registries.clear()
            self.replications.clear()
            self.operations.clear()
            self.tombstones.clear()
            self.faults.clear()
            self.clock.offset = 0.0
            self.throttle.configure(self.settings.throttle)

    def advance_clock(self, seconds: float) -> float:
        with self._lock:
            self.clock.offset += seconds
            self.store.put("meta", "clock", {"offset": self.clock.offset})
            return self.clock.offset

    def now(self) -> float:
        return self.clock.now()

    # --------------------------------------------------------------- registries
    def declare_registry(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        location: str,
        sku: str = "Premium",
        size_gb: float = 0.0,
        tags: dict[str, str] | None = None,
    ) -> Registry:
        """Create a registry and, as ACR does, its home-region replication (named after the region)."""
        validation.check_subscription(subscription)
        validation.check_names(resource_group, name)
        home = validation.check_location(location, set(self.settings.granted_restricted_regions))
        if sku not in ("Basic", "Standard", "Premium"):
            raise InvalidRequestContent(f"sku must be Basic, Standard or Premium; got '{sku}'.", target="sku.name")
        with self._lock:
            now = self.now()
            existing = self.registries.get(registry_key(subscription, resource_group, name))
            reg = Registry(subscription, resource_group, name, home, sku, size_gb, dict(tags or {}), now)
            if existing:
                reg.created_at = existing.created_at
                reg.location = existing.location  # the home region of a registry never moves
            self.registries[reg.key] = reg
            self.store.put("registries", reg.key, reg.to_dict())
            home_key = replication_key(subscription, resource_group, name, reg.location)
            if home_key not in self.replications:
                rep = Replication(
                    subscription,
                    resource_group,
                    reg.name,
                    reg.location,
                    reg.location,
                    {},
                    True,
                    "Disabled",
                    "Succeeded",
                    now,
                    "acr",
                    now,
                    "acr",
                    now,
                    succeeded_at=now - self._sync_seconds(reg),
                    sync_seconds=self._sync_seconds(reg),
                )
                self._save(rep)
            return reg

    def get_registry(self, subscription: str, resource_group: str, name: str) -> Registry:
        with self._lock:
            reg = self.registries.get(registry_key(subscription, resource_group, name))
            if reg is None:
                self._check_scope(subscription, resource_group)
                raise ResourceNotFound(
                    f"The Resource 'Microsoft.ContainerRegistry/registries/{name}' under resource group "
                    f"'{resource_group}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix"
                )
            return reg

    def list_registries(self, subscription: str, resource_group: str | None = None) -> list[Registry]:
        with self._lock:
            if resource_group is not None:
                self._check_scope(subscription, resource_group)
            else:
                self._check_scope(subscription, None)
            return [
                r
                for r in self.registries.values()
                if r.subscription.lower() == subscription.lower()
                and (resource_group is None or r.resource_group.lower() == resource_group.lower())
            ]

    def _check_scope(self, subscription: str, resource_group: str | None) -> None:
        subs = {r.subscription.lower() for r in self.registries.values()}
        if subscription.lower() not in subs:
            raise SubscriptionNotFound(f"The subscription '{subscription}' could not be found.")
        groups = {(r.subscription.lower(), r.resource_group.lower()) for r in self.registries.values()}
        if resource_group is not None and (subscription.lower(), resource_group.lower()) not in groups:
            raise ResourceGroupNotFound(f"Resource group '{resource_group}' could not be found.")

    # ------------------------------------------------------------- replications
    def get_replication(self, subscription: str, resource_group: str, registry: str, name: str) -> Replication:
        with self._lock:
            self.settle()
            self.get_registry(subscription, resource_group, registry)
            rep = self.replications.get(replication_key(subscription, resource_group, registry, name))
            if rep is None:
                raise ResourceNotFound(
                    f"The Resource 'Microsoft.ContainerRegistry/registries/{registry}/replications/{name}' "
                    f"under resource group '{resource_group}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix"
                )
            return rep

    def list_replications(self, subscription: str, resource_group: str, registry: str) -> list[Replication]:
        with self._lock:
            self.settle()
            reg = self.get_registry(subscription, resource_group, registry)
            now = self.now()
            items = [r for r in self.replications.values() if r.key.startswith(reg.key + "/") and r.listed_from <= now]
            if self.settings.list_order == "sorted":
                return sorted(items, key=lambda r: r.name.lower())
            # arbitrary but stable across pages of one listing, like the real service
            seed = str(self.settings.seed)
            return sorted(items, key=lambda r: hashlib.sha256((seed + r.name.lower()).encode()).digest())

    def create_replication(
        self,
        subscription: str,
        resource_group: str,
        registry: str,
        name: str,
        raw_body: bytes,
        principal: str,
        lro_faults: FaultSource | None = None,
    ) -> WriteResult:
        validation.check_names(resource_group, registry, name)
        with self._lock:
            self.settle()
            reg = self.get_registry(subscription, resource_group, registry)
            if reg.sku != "Premium":
                raise RegistrySkuNotSupported(
                    "Replications are only supported for managed registries in Premium SKU. "
                    f"Registry '{reg.name}' is {reg.sku}."
                )
            body = validation.parse_replication(raw_body, set(self.settings.granted_restricted_regions))
            now = self.now()
            key = replication_key(subscription, resource_group, registry, name)
            existing = self.replications.get(key)
            if existing is None and body.location == reg.location:
                # azure-rest-api-specs#10233: the service accepts a PUT for the home location and ignores it.
                ghost = Replication(
                    subscription,
                    resource_group,
                    reg.name,
                    name,
                    body.location,
                    body.tags,
                    body.region_endpoint_enabled,
                    body.zone_redundancy,
                    "Succeeded",
                    now,
                    principal,
                    now,
                    principal,
                    now,
                    succeeded_at=now,
                )
                return WriteResult(200, ghost, None)
            if existing is not None:
                return self._put_existing(existing, body, principal, now)
            until = self.tombstones.get(key)
            if until is not None and now < until:
                raise Conflict(
                    f"The replication '{name}' of registry '{registry}' is still being removed. "
                    "Retry the request later."
                )
            self._check_inflight(reg)
            op = self._new_operation(
                "create",
                subscription,
                resource_group,
                reg.name,
                name,
                body.location,
                self.settings.create_seconds,
                lro_faults,
            )
            rep = Replication(
                subscription,
                resource_group,
                reg.name,
                name,
                body.location,
                body.tags,
                body.region_endpoint_enabled,
                body.zone_redundancy,
                "Creating",
                now,
                principal,
                now,
                principal,
                now,
                sync_seconds=self._sync_seconds(reg),
                operation_id=op.id,
                listed_from=now + self.settings.list_lag_seconds,
            )
            self.tombstones.pop(key, None)
            self.store.delete("tombstones", key)
            self._save(rep)
            return WriteResult(201, rep, op)

    def _put_existing(
        self, rep: Replication, body: validation.ReplicationBody, principal: str, now: float
    ) -> WriteResult:
        if rep.provisioning_state in TRANSITIONAL:
            raise AnotherOperationInProgress(
                f"The replication '{rep.name}' is {rep.provisioning_state.lower()}; another operation is in "
                "progress. Retry after it completes."
            )
        if rep.location != body.location:
            raise InvalidResourceLocation(
                f"The resource '{rep.name}' already exists in location '{rep.location}' in resource group "
                f"'{rep.resource_group}'. A resource with the same name cannot be created in location "
                f"'{body.location}'. Please select a new resource name.",
                target="location",
            )
        if rep.zone_redundancy != body.zone_redundancy:
            raise PropertyChangeNotAllowed(
                "Changing property 'properties.zoneRedundancy' is not allowed: it is set at creation only. "
                "Delete and recreate the replication to change it.",
                target="properties.zoneRedundancy",
            )
        rep.tags = body.tags
        rep.region_endpoint_enabled = body.region_endpoint_enabled
        rep.modified_at, rep.modified_by = now, principal
        self._save(rep)
        return WriteResult(200, rep, None)

    def update_replication(
        self,
        subscription: str,
        resource_group: str,
        registry: str,
        name: str,
        raw_body: bytes,
        principal: str,
        lro_faults: FaultSource | None = None,
    ) -> WriteResult:
        with self._lock:
            rep = self.get_replication(subscription, resource_group, registry, name)
            patch = validation.parse_patch(raw_body)
            if rep.provisioning_state in TRANSITIONAL:
                raise AnotherOperationInProgress(
                    f"The replication '{rep.name}' is {rep.provisioning_state.lower()}; another operation is "
                    "in progress. Retry after it completes."
                )
            now = self.now()
            if patch.tags is not None:
                rep.tags = patch.tags
            if patch.region_endpoint_enabled is not None:
                rep.region_endpoint_enabled = patch.region_endpoint_enabled
            rep.modified_at, rep.modified_by = now, principal
            if not self.settings.patch_async:
                self._save(rep)
                return WriteResult(200, rep, None)
            self._check_inflight(self.get_registry(subscription, resource_group, registry))
            op = self._new_operation(
                "update",
                subscription,
                resource_group,
                rep.registry,
                rep.name,
                rep.location,
                self.settings.update_seconds,
                lro_faults,
            )
            op.extra["previous_state"] = rep.provisioning_state
            self._save_op(op)
            rep.provisioning_state, rep.status_changed_at, rep.operation_id = "Updating", now, op.id
            self._save(rep)
            return WriteResult(201, rep, op)

    def delete_replication(
        self,
        subscription: str,
        resource_group: str,
        registry: str,
        name: str,
        lro_faults: FaultSource | None = None,
    ) -> WriteResult:
        with self._lock:
            self.settle()
            reg = self.get_registry(subscription, resource_group, registry)
            rep = self.replications.get(replication_key(subscription, resource_group, registry, name))
            if rep is None:
                return WriteResult(204, None, None)
            if rep.location == reg.location:
                raise HomeReplicationCannotBeDeleted(
                    f"The replication '{rep.name}' is in the home region '{reg.location}' of registry "
                    f"'{reg.name}' and cannot be deleted."
                )
            if rep.provisioning_state in TRANSITIONAL:
                raise AnotherOperationInProgress(
                    f"The replication '{rep.name}' is {rep.provisioning_state.lower()}; another operation is "
                    "in progress. Retry after it completes."
                )
            self._check_inflight(reg)
            op = self._new_operation(
                "delete",
                subscription,
                resource_group,
                reg.name,
                rep.name,
                rep.location,
                self.settings.delete_seconds,
                lro_faults,
            )
            now = self.now()
            rep.provisioning_state, rep.status_changed_at, rep.operation_id = "Deleting", now, op.id
            self._save(rep)
            return WriteResult(202, rep, op)

    # --------------------------------------------------------------- operations
    def get_operation(self, op_id: str, *, kind: str | None = None) -> Operation:
        with self._lock:
            self.settle()
            op = self.operations.get(op_id)
            if op is None or (kind == "delete") != (op.kind == "delete"):
                raise ResourceNotFound(f"The operation '{op_id}' was not found.")
            return op

    def settle(self) -> None:
        """Apply the end of every operation whose time has come, and forget expired tombstones."""
        with self._lock:
            now = self.now()
            for op in list(self.operations.values()):
                if op.applied or not op.is_done(now):
                    continue
                self._finish(op, op.ends_at() or now)
            for key, until in list(self.tombstones.items()):
                if until <= now:
                    del self.tombstones[key]
                    self.store.delete("tombstones", key)

    def _finish(self, op: Operation, at: float) -> None:
        key = replication_key(op.subscription, op.resource_group, op.registry, op.replication)
        rep = self.replications.get(key)
        op.applied = True
        self._save_op(op)
        if rep is None or rep.operation_id != op.id:
            return
        rep.operation_id = None
        rep.status_changed_at = at
        if op.kind == "delete":
            if op.outcome == "Succeeded":
                del self.replications[key]
                self.store.delete("replications", key)
                until = at + self.settings.settle_seconds
                self.tombstones[key] = until
                self.store.put("tombstones", key, {"until": until})
                return
            rep.provisioning_state = "Succeeded" if op.outcome == "Canceled" else "Failed"
        elif op.outcome == "Succeeded":
            if op.kind == "create" or rep.succeeded_at is None:
                rep.succeeded_at = at
            rep.provisioning_state = "Succeeded"
        else:
            rep.provisioning_state = op.outcome
            rep.error_message = op.error_message
        self._save(rep)

    def inflight(self, reg: Registry) -> int:
        now = self.now()
        return sum(
            1
            for op in self.operations.values()
            if not op.is_done(now) and registry_key(op.subscription, op.resource_group, op.registry) == reg.key
        )

    def _check_inflight(self, reg: Registry) -> None:
        limit = self.settings.max_inflight_per_registry
        if limit is not None and self.inflight(reg) >= limit:
            raise TooManyInFlightOperations(
                f"Registry '{reg.name}' already has {limit} replication operations in progress. "
                "Retry after one completes."
            )

    def _new_operation(
        self,
        kind: OpKind,
        subscription: str,
        resource_group: str,
        registry: str,
        name: str,
        location: str,
        seconds: float,
        faults: FaultSource | None,
    ) -> Operation:
        duration: float | None = seconds
        if self.settings.jitter:
            duration = seconds * (1 + self._rng.uniform(-self.settings.jitter, self.settings.jitter))
        op = Operation(
            new_operation_id(),
            kind,
            subscription,
            resource_group,
            registry,
            name,
            location,
            self.now(),
            duration,
        )
        # taken only now: a request refused before an operation exists (409, 400) must not use up a fault
        for rule in faults() if callable(faults) else faults or []:
            if rule.action == "lro_never":
                op.duration = None
            elif rule.action == "lro_fail":
                op.outcome = "Failed"
                op.error_code, op.error_message = rule.error_code(), rule.error_message()
        self._save_op(op)
        return op

    def _sync_seconds(self, reg: Registry) -> float:
        return self.settings.sync_seconds + reg.size_gb * self.settings.sync_seconds_per_gb

    def _save(self, rep: Replication) -> None:
        self.replications[rep.key] = rep
        self.store.put("replications", rep.key, rep.to_dict())

    def _save_op(self, op: Operation) -> None:
        self.operations[op.id] = op
        self.store.put("operations", op.id, op.to_dict())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.settle()
            now = self.now()
            return {
                "registries": [r.to_arm() for r in self.registries.values()],
                "replications": [r.to_arm(now) for r in self.replications.values()],
                "operations": [
                    {"id": o.id, "kind": o.kind, "replication": o.replication, "status": o.status(now)}
                    for o in self.operations.values()
                ],
                "clock_offset": self.clock.offset,
            }


__all__ = ["Backend", "Clock", "WriteResult", "regions"]
