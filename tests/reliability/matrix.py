"""The fault matrix, defined once: the rows, and how one row is run and measured.

``tests/reliability/test_fault_matrix.py`` asserts every row; ``bench/reliability.py`` runs the same rows (with
longer LROs if asked) and writes the measured numbers into RELIABILITY.md. A row is one global rollout of ten
regions through the real flow, against the emulator, with one kind of fault injected. What a row measures is
what an operator needs to trust a rollout under that fault:

* regions **succeeded** (the flow says so *and* ARM lists the replica ``Succeeded``),
* regions **failed with their ARM code** (only those the fault targets may fail),
* regions **lost**: neither of the above (reported succeeded but absent, failed without a code, missing from
  the result). Must be 0.
* runs **stuck**: the flow did not return within the row's wall bound. Must be 0.
* ARM **writes**: PUT/PATCH/DELETE accepted by the emulator (its request log, status < 400) against the minimum,
  one accepted PUT per created region; attempted writes include the refused and reset ones.

This module imports the flow lazily, so importing it needs neither Prefect nor a harness.
"""

from __future__ import annotations

import contextvars
import json
import textwrap
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl

#: ten regions: none restricted, none the home region (northeurope) of the test registries
REGIONS: tuple[str, ...] = (
    "westus2",
    "eastus",
    "westeurope",
    "southeastasia",
    "japaneast",
    "uksouth",
    "francecentral",
    "centralus",
    "australiaeast",
    "canadacentral",
)
WRITE_METHODS = ("PUT", "PATCH", "DELETE")
#: the wall bound of a row is its per-region deadline plus this much for Prefect, observe and reporting
WALL_SLACK_SECONDS = 30.0
PUT_PATH = "{registry}/replications/[a-z0-9]+$"
POLL_PATH = "{registry}/replications/[a-z0-9]+/operationStatuses/"


@dataclass(frozen=True)
class Row:
    """One fault scenario. ``faults`` are EmulatorControl.add_fault arguments; ``{registry}`` in a path is
    replaced by the row's registry name, so a fault never touches another test's registry."""

    id: str
    title: str
    faults: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    #: region -> the ARM (or georep) error code it must fail with; every other region must succeed
    expect_failed: dict[str, str] = field(default_factory=dict)
    deadline_seconds: float = 45.0
    max_parallel: int = 8

    def wall_limit(self, deadline: float | None = None) -> float:
        return (deadline or self.deadline_seconds) + WALL_SLACK_SECONDS


ROWS: tuple[Row, ...] = (
    Row(
        "429-storm",
        "429 storm with Retry-After: 1 on 60 % of PUTs and polls (up to 8 each)",
        (
            {
                "action": "status",
                "method": "PUT",
                "path": PUT_PATH,
                "status": 429,
                "retry_after": 1,
                "count": 8,
                "probability": 0.6,
            },
            {
                "action": "status",
                "method": "GET",
                "path": POLL_PATH,
                "status": 429,
                "retry_after": 1,
                "count": 8,
                "probability": 0.6,
            },
        ),
    ),
    Row(
        "500-burst",
        "500 bursts: 4 PUTs and 6 polls answer InternalServerError",
        (
            {"action": "status", "method": "PUT", "path": PUT_PATH, "status": 500, "count": 4},
            {"action": "status", "method": "GET", "path": POLL_PATH, "status": 500, "count": 6},
        ),
    ),
    Row(
        "503-burst",
        "503 bursts (Retry-After: 1): 4 PUTs and 6 polls answer ServiceUnavailable",
        (
            {"action": "status", "method": "PUT", "path": PUT_PATH, "status": 503, "count": 4},
            {"action": "status", "method": "GET", "path": POLL_PATH, "status": 503, "count": 6},
        ),
    ),
    Row(
        "reset-put",
        "connection reset on 4 PUTs (no response: did ARM get it?)",
        ({"action": "reset", "method": "PUT", "path": PUT_PATH, "count": 4},),
    ),
    Row(
        "reset-poll",
        "connection reset on 6 status polls",
        ({"action": "reset", "method": "GET", "path": POLL_PATH, "count": 6},),
    ),
    Row(
        "409-in-progress",
        "409 AnotherOperationInProgress on half the PUTs (up to 8)",
        (
            {
                "action": "status",
                "method": "PUT",
                "path": PUT_PATH,
                "status": 409,
                "code": "AnotherOperationInProgress",
                "count": 8,
                "probability": 0.5,
            },
        ),
    ),
    Row(
        "lro-failed",
        "the LRO of one region (japaneast) ends Failed with QuotaExceeded",
        (
            {
                "action": "lro_fail",
                "method": "PUT",
                "path": "{registry}/replications/japaneast$",
                "code": "QuotaExceeded",
            },
        ),
        expect_failed={"japaneast": "QuotaExceeded"},
    ),
    Row(
        "lro-never",
        "the LRO of one region (eastus) never ends; per-region deadline 3 s",
        ({"action": "lro_never", "method": "PUT", "path": "{registry}/replications/eastus$"},),
        expect_failed={"eastus": "DeadlineExceeded"},
        deadline_seconds=3.0,
    ),
    Row(
        "slow-emulator",
        "slow emulator: 1.5 s of latency on 25 % of the registry's requests (up to 16)",
        ({"action": "latency", "path": "{registry}/", "latency_seconds": 1.5, "probability": 0.25, "count": 16},),
    ),
    Row(
        "inflight-limit",
        "at most 3 LROs in flight per registry (409 TooManyInFlightOperations), max_parallel 8",
        settings={"max_inflight_per_registry": 3},
    ),
    Row(
        "arm-write-throttle",
        "ARM write bucket of 4, refilled 2/s (429 SubscriptionRequestsThrottled with Retry-After)",
        settings={"throttle": {"writes": {"burst": 4, "refill_per_second": 2}}},
    ),
)


@dataclass
class RowResult:
    row: str
    regions: int
    succeeded: list[str]
    failed: dict[str, str]
    lost: list[str]
    stuck: int
    wall_seconds: float
    wall_limit: float
    flow_state: str
    writes_accepted: int
    writes_attempted: int
    writes_minimum: int
    #: per fault rule of the row, in order: how many requests it hit
    faults_fired: list[int]
    detail: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_text(subscription: str, resource_group: str, registry: str, regions: tuple[str, ...]) -> str:
    items = "\n".join(f"  - {r}" for r in regions)
    return (
        textwrap.dedent(
            f"""\
        registry: {{subscription_id: {subscription}, resource_group: {resource_group}, name: {registry}}}
        defaults: {{tags: {{env: reliability}}}}
        regions:
        """
        )
        + items
        + "\n"
    )


def write_counts(control: EmulatorControl, registry: str) -> tuple[int, int]:
    """(accepted, attempted) ARM writes on ``registry`` from the emulator's request log. A reset request is
    logged with status 0: attempted, never accepted."""
    rows = [r for r in control.requests(registry=registry) if r["method"] in WRITE_METHODS]
    return sum(1 for r in rows if 0 < r["status"] < 400), len(rows)


def result_rows(registry: str) -> dict[str, dict[str, Any]]:
    """The flow's published result table (georep-result-<registry>), by region."""
    from prefect.artifacts import Artifact

    artifact = Artifact.get(f"georep-result-{registry}")
    if artifact is None:
        return {}
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["region"]: row for row in rows}


def _run_flow(plan: str, row: Row, deadline: float, wall_limit: float) -> tuple[Any, float, bool]:
    """Run the flow in a thread (with this context: the harness's API URL lives in a context variable) and
    wait at most ``wall_limit``. Returns (state or None, wall seconds, finished)."""
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams

    params = RolloutParams(plan_yaml=plan, max_parallel=row.max_parallel, deadline_seconds=deadline)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["state"] = global_rollout(params, return_state=True)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(target,), daemon=True, name=f"row-{row.id}")
    started = time.monotonic()
    thread.start()
    thread.join(wall_limit)
    wall = time.monotonic() - started
    if "error" in box:
        raise box["error"]
    return box.get("state"), wall, not thread.is_alive()


def run_row(
    row: Row,
    control: EmulatorControl,
    arm: ContainerRegistryManagementClient,
    subscription: str,
    resource_group: str,
    registry: str,
    *,
    regions: tuple[str, ...] = REGIONS,
    lro_seconds: float | None = None,
) -> RowResult:
    """Inject the row's faults on ``registry`` (a fresh Premium registry), run the rollout, measure. The caller
    clears faults and settings afterwards (the emulator is shared)."""
    settings = dict(row.settings)
    if lro_seconds is not None:
        settings.setdefault("create_seconds", lro_seconds)
    if settings:
        control.settings(**settings)
    rule_ids = [
        control.add_fault(**{**spec, "path": str(spec.get("path", ".*")).format(registry=registry)})["id"]
        for spec in row.faults
    ]
    deadline = row.deadline_seconds
    if lro_seconds is not None and row.expect_failed.get("eastus") == "DeadlineExceeded":
        deadline = max(deadline, 2 * lro_seconds + 2)  # longer LROs: the other regions must still fit
    limit = row.wall_limit(deadline)
    state, wall, finished = _run_flow(plan_text(subscription, resource_group, registry, regions), row, deadline, limit)
    fired_by_rule = {r["id"]: r["fired"] for r in control.faults() if r["id"] in rule_ids}
    fired = [fired_by_rule.get(i, 0) for i in rule_ids]

    table = result_rows(registry)
    listed = {
        r.name: str(getattr(r.provisioning_state, "value", r.provisioning_state))
        for r in arm.replications.list(resource_group, registry)
    }
    succeeded, failed, lost, detail = [], {}, [], {}
    for region in regions:
        row_out = table.get(region)
        result = str(row_out["result"]).split(" ")[0] if row_out else "missing"
        code = str(row_out.get("error", "")).split(":")[0].strip() if row_out else ""
        if result == "succeeded" and listed.get(region) == "Succeeded":
            succeeded.append(region)
        elif result == "failed" and code:
            failed[region] = code
        else:
            lost.append(region)
            detail[region] = f"result={result} arm={listed.get(region)} error={code or '-'}"
    accepted, attempted = write_counts(control, registry)
    return RowResult(
        row=row.id,
        regions=len(regions),
        succeeded=sorted(succeeded),
        failed=failed,
        lost=sorted(lost),
        stuck=0 if finished and wall <= limit else 1,
        wall_seconds=round(wall, 2),
        wall_limit=limit,
        flow_state=state.type.value if state is not None else "RUNNING",
        writes_accepted=accepted,
        writes_attempted=attempted,
        writes_minimum=len(regions),
        faults_fired=fired,
        detail=detail,
    )
