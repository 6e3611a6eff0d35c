"""Knobs of the emulator. Defaults reproduce the real service as recorded (see the ARM reference): ~11 s
control-plane LROs, no Retry-After on LROs, ARM's token-bucket budgets. Tests turn the durations down to a
fraction of a second through the same model, so nothing test-only hides in the rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

API_VERSION = "2025-11-01"

#: api-versions the emulator answers. The wire shape of replications has not changed across them.
SUPPORTED_API_VERSIONS = (
    "2025-11-01",
    "2025-05-01-preview",
    "2025-04-01",
    "2025-03-01-preview",
    "2024-11-01-preview",
    "2023-07-01",
    "2023-01-01-preview",
    "2022-12-01",
    "2021-09-01",
    "2019-12-01-preview",
)


class Bucket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    burst: int = Field(ge=1)
    refill_per_second: float = Field(gt=0)


class ThrottleSettings(BaseModel):
    """ARM's per-subscription, per-principal token buckets (Learn: request-limits-and-throttling, 2024)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    reads: Bucket = Bucket(burst=250, refill_per_second=25)
    writes: Bucket = Bucket(burst=200, refill_per_second=10)
    deletes: Bucket = Bucket(burst=200, refill_per_second=10)


class EmulatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    create_seconds: float = Field(11.0, ge=0, description="PUT LRO duration (recorded: ~11 s)")
    delete_seconds: float = Field(11.0, ge=0, description="DELETE LRO duration (recorded: ~11 s)")
    update_seconds: float = Field(2.0, ge=0, description="PATCH LRO duration when patch_async is on")
    patch_async: bool = Field(False, description="answer PATCH with 201 + Azure-AsyncOperation instead of 200")
    jitter: float = Field(0.0, ge=0, le=1, description="+/- fraction applied to LRO durations (seeded)")
    sync_seconds: float = Field(5.0, ge=0, description="Syncing -> Ready for an empty registry")
    sync_seconds_per_gb: float = Field(2.0, ge=0, description="extra Syncing time per GB stored in the registry")
    settle_seconds: float = Field(5.0, ge=0, description="after a delete: GET 404 but PUT 409 for this long")
    retry_after: int | None = Field(None, ge=1, description="Retry-After on LRO responses; real ACR sends none")
    page_size: int = Field(100, ge=1, description="replications per list page (nextLink beyond)")
    list_lag_seconds: float = Field(0.0, ge=0, description="new replicas are missing from list for this long")
    list_order: str = Field("arbitrary", pattern="^(arbitrary|sorted)$")
    token_ttl_seconds: int = Field(3600, ge=1)
    audience: str = "https://management.azure.com"
    throttle: ThrottleSettings = ThrottleSettings()
    max_inflight_per_registry: int | None = Field(None, ge=1, description="409 beyond this many running LROs")
    granted_restricted_regions: list[str] = Field(default_factory=list)
    seed: int = 0

    @classmethod
    def fast(cls, **overrides: object) -> EmulatorSettings:
        """Durations for tests: a few tenths of a second, still asynchronous."""
        base: dict[str, object] = {
            "create_seconds": 0.2,
            "delete_seconds": 0.2,
            "update_seconds": 0.2,
            "sync_seconds": 0.3,
            "sync_seconds_per_gb": 0.0,
            "settle_seconds": 0.3,
        }
        base.update(overrides)
        return cls.model_validate(base)
