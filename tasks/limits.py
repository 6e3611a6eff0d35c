"""Prefect global concurrency limits that bound ARM writes across runs, processes and workers.

Limits are created idempotently when a flow starts (``ensure``) and always taken with ``strict=True``: Prefect's
default (strict=False) silently does not limit when the limit is missing, which is the failure nobody notices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from georep.model import RegistryRef

DEFAULT_REGISTRY_LIMIT = 10
DEFAULT_SUBSCRIPTION_LIMIT = 40


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def registry_limit(ref: RegistryRef) -> str:
    return f"georep-registry-{_slug(ref.subscription_id)}-{_slug(ref.resource_group)}-{_slug(ref.name)}"


def subscription_limit(ref: RegistryRef) -> str:
    return f"georep-subscription-{_slug(ref.subscription_id)}"


def ensure(
    ref: RegistryRef,
    per_registry: int = DEFAULT_REGISTRY_LIMIT,
    per_subscription: int = DEFAULT_SUBSCRIPTION_LIMIT,
) -> tuple[str, str]:
    """Create (or resize) the registry's and the subscription's write limits; safe to call from every run."""
    names = (registry_limit(ref), subscription_limit(ref))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(names[0], per_registry)
        client.upsert_global_concurrency_limit_by_name(names[1], per_subscription)
    return names


@contextmanager
def write_slots(
    ref: RegistryRef,
    occupy: int,
    per_registry: int = DEFAULT_REGISTRY_LIMIT,
    per_subscription: int = DEFAULT_SUBSCRIPTION_LIMIT,
    timeout_seconds: float | None = None,
) -> Iterator[int]:
    """Hold ``occupy`` slots of the registry's and the subscription's limits while a wave runs that many LROs at
    once. Taken once per wave, not once per task: every acquisition is a server round trip, and on SQLite a
    burst of them meets "database is locked" retries measured in seconds. Yields the slots actually held
    (never more than a limit, or the acquisition could never succeed)."""
    slots = max(1, min(occupy, per_registry, per_subscription))
    with concurrency(
        [registry_limit(ref), subscription_limit(ref)], occupy=slots, strict=True, timeout_seconds=timeout_seconds
    ):
        yield slots
