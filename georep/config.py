"""georep settings, read from ``GEOREP_*`` environment variables (pydantic-settings).

The only difference between real Azure and the emulator is here: the endpoint, the token scope and the CA to
trust. The credential is DefaultAzureCredential in both cases; against the emulator it finds the emulator's
managed-identity endpoint through IDENTITY_ENDPOINT / IDENTITY_HEADER, exactly as on an App Service host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AZURE_PUBLIC_ENDPOINT = "https://management.azure.com"
AZURE_PUBLIC_SCOPE = "https://management.azure.com/.default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOREP_", extra="ignore")

    target: Literal["azure", "emulator"] = Field(
        "emulator", description="where ARM calls go: the public cloud, or a georep emulator"
    )
    subscription_id: str | None = Field(None, description="default subscription for commands that need one")
    endpoint: str | None = Field(None, description="ARM base URL; defaults to the public cloud for azure")
    credential_scope: str | None = Field(None, description="token scope; defaults to the ARM audience")
    ca_bundle: Path | None = Field(None, description="extra CA to trust (the emulator's); never disables TLS")
    polling_interval: float = Field(
        15.0,
        gt=0,
        le=60,
        description="seconds between a poller's own polls when its registry watcher has not woken it",
    )
    watch_interval: float = Field(
        1.0, gt=0, le=60, description="seconds between a registry watcher's LIST calls while LROs are in flight"
    )
    settle_probe_interval: float = Field(
        2.0, gt=0, le=60, description="seconds between the GETs that must all answer 404 before a re-create"
    )
    shared_arm_budget: bool = Field(
        True,
        description="back this process's ARM budget with the one all georep processes share (Prefect rate limits)",
    )
    max_connections: int = Field(64, ge=1, le=1024, description="HTTP connection pool size per client")
    sdk_retry_total: int = Field(
        0,
        ge=0,
        le=10,
        description="azure-core's own retries; 0 because georep retries once, with tenacity, at its own layer",
    )
    state_dir: Path = Field(Path(".georep"), description="checkpoints, the embedded emulator's state")

    @model_validator(mode="after")
    def _emulator_needs_endpoint(self) -> Settings:
        if self.target == "emulator" and not self.endpoint:
            raise ValueError(
                "GEOREP_ENDPOINT is required when GEOREP_TARGET=emulator "
                "(run `georep emulator env` to print the variables for a running emulator)"
            )
        if self.target == "emulator" and self.ca_bundle is None:
            raise ValueError("GEOREP_CA_BUNDLE is required when GEOREP_TARGET=emulator (the emulator's ca.pem)")
        return self

    @property
    def base_url(self) -> str:
        return (self.endpoint or AZURE_PUBLIC_ENDPOINT).rstrip("/")

    @property
    def scope(self) -> str:
        return self.credential_scope or AZURE_PUBLIC_SCOPE

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build from an explicit mapping (tests, worker job variables) instead of os.environ."""
        prefix = "GEOREP_"
        values = {k[len(prefix) :].lower(): v for k, v in environ.items() if k.startswith(prefix)}
        return cls.model_validate(values)
