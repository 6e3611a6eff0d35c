"""A small client for the emulator's control API (faults, settings, registries, the request log).

It verifies TLS against the emulator's own CA, like every other client of the emulator.
"""

from __future__ import annotations

from typing import Any

import requests


class EmulatorControl:
    def __init__(self, base_url: str, admin_key: str, ca_bundle: str) -> None:
        self._base = base_url.rstrip("/") + "/_emulator"
        self._session = requests.Session()
        self._session.headers["X-Georep-Admin-Key"] = admin_key
        # per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override a session's verify
        self._verify = ca_bundle

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(method, f"{self._base}/{path}", timeout=30, verify=self._verify, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def close(self) -> None:
        self._session.close()

    def health(self) -> bool:
        return bool(self._call("GET", "health")["ok"])

    def reset(self) -> None:
        self._call("POST", "reset")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def declare_registry(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        location: str,
        sku: str = "Premium",
        size_gb: float = 0.0,
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "subscription": subscription,
            "resource_group": resource_group,
            "name": name,
            "location": location,
            "sku": sku,
            "size_gb": size_gb,
            "tags": tags or {},
        }
        result: dict[str, Any] = self._call("POST", "registries", json=body)
        return result

    def settings(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH" if changes else "GET", "settings", json=changes or None)
        return result

    def add_fault(self, action: str, **rule: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "faults", json={"action": action, **rule})
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self, since_id: int = 0, **filters: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "requests", params={"since_id": since_id, **filters})
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def counters(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "counters")
        return result

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "clock", json={"advance": seconds})["offset"])
