"""Observe a registry: what ARM says exists, read-only, as plain ``ObservedReplica`` values for the pure diff.

The order of reads follows the ARO-HCP reconciler's hard-won lessons: the registry GET gives the home region
and the SKU (which no replica list can tell); the replication LIST is for *discovery* only, because list and get
can disagree right after a write; each replica's state comes from its own GET, and a 404 between the list and
that GET means the replica is gone (a delete finished in between), not an error.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep import regions, retry
from georep.errors import Kind, classify
from georep.model import ObservedReplica, RegistryInfo, RegistryRef
from georep.retry import RetryPolicy


class RegistryNotFound(LookupError):
    """The registry itself does not exist: ``validation.check_registry(plan, None)`` turns this into a Problem
    on ``registry.name`` so it is reported with the plan's other problems."""

    def __init__(self, ref: RegistryRef) -> None:
        self.ref = ref
        super().__init__(f"registry {ref} not found")


def _plain(value: Any) -> str | None:
    """SDK enums are ``str`` subclasses whose ``str()`` is ``Enum.MEMBER``; unknown values arrive as bare str.
    Downstream code (diff, checkpoints, artifacts) compares and serialises plain strings only."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _short_name(name: str | None) -> str:
    # nested resources sometimes report "<registry>/<replication>" as their name
    return (name or "").rsplit("/", 1)[-1]


def to_observed(replica: Any, home: str) -> ObservedReplica:
    """One SDK ``Replication`` as an ``ObservedReplica``; ``home`` is a normalized region name."""
    region = regions.normalize(str(replica.location or ""))
    status = getattr(replica, "status", None)
    endpoint = getattr(replica, "region_endpoint_enabled", None)
    return ObservedReplica(
        name=_short_name(replica.name),
        region=region,
        # ARM's async contract: a missing provisioningState means Succeeded
        provisioning_state=_plain(getattr(replica, "provisioning_state", None)) or "Succeeded",
        display_status=_plain(getattr(status, "display_status", None)) if status is not None else None,
        status_message=_plain(getattr(status, "message", None)) if status is not None else None,
        region_endpoint_enabled=True if endpoint is None else bool(endpoint),
        zone_redundancy=(_plain(getattr(replica, "zone_redundancy", None)) or "").lower() == "enabled",
        tags=dict(replica.tags or {}),
        is_home=region == home,
    )


def read_registry(client: ContainerRegistryManagementClient, ref: RegistryRef, policy: RetryPolicy) -> RegistryInfo:
    try:
        registry = retry.call(lambda: client.registries.get(ref.resource_group, ref.name), policy)
    except ResourceNotFoundError as exc:
        raise RegistryNotFound(ref) from exc
    sku = getattr(registry, "sku", None)
    tier = _plain(getattr(sku, "tier", None)) or _plain(getattr(sku, "name", None)) or "unknown"
    return RegistryInfo(ref=ref, home=regions.normalize(str(registry.location)), sku=tier)


def read_replica(
    client: ContainerRegistryManagementClient, ref: RegistryRef, name: str, home: str, policy: RetryPolicy
) -> ObservedReplica | None:
    """The authoritative state of one replica, or ``None`` if it no longer exists."""
    try:
        replica = retry.call(lambda: client.replications.get(ref.resource_group, ref.name, name), policy)
    except HttpResponseError as exc:
        if classify(exc).kind is Kind.NOT_FOUND:
            return None
        raise
    return to_observed(replica, home)


def observe(
    client: ContainerRegistryManagementClient, ref: RegistryRef, policy: RetryPolicy
) -> tuple[RegistryInfo, list[ObservedReplica]]:
    """Read the registry and its replicas (home included, flagged ``is_home``), sorted by region.

    ``client`` must be bound to ``ref.subscription_id``. Raises ``RegistryNotFound`` when the registry is
    missing; any other ARM error propagates after the retry policy gave up.
    """
    info = read_registry(client, ref, policy)
    # the whole listing is one retried unit: a throttled second page restarts from the first
    listed = retry.call(lambda: list(client.replications.list(ref.resource_group, ref.name)), policy)
    names = sorted({_short_name(r.name) for r in listed if r.name})
    observed = [o for name in names if (o := read_replica(client, ref, name, info.home, policy)) is not None]
    return info, sorted(observed, key=lambda o: (o.region, o.name))
