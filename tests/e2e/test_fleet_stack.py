"""A fleet on the local stack (scripts/stack): 10 registries in two subscriptions x 3 regions, rolled out by the
fleet-rollout deployment in deployments mode, one registry-rollout child flow run per registry, on 2 process
workers of a PostgreSQL-backed `prefect server`. Every child and the parent must complete, the emulator must have
answered no 429, every planned replica must exist, and the children must have run on both workers.

One `scripts/stack up` / `run-fleet` / `down` per module; skipped (exit 77) without PostgreSQL server binaries."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from georep.emulator.client import EmulatorControl

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(540)]

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"
SKIP = 77
SUBSCRIPTIONS = ("6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21", "3f1c2b7a-8d4e-4f60-9b1a-2c3d4e5f6a7b")
REGIONS = ("westus2", "eastus", "westeurope")
WORKERS = ("stack-worker-1", "stack-worker-2")
#: each worker runs at most this many flow runs at once, so neither can take all ten children (and the parent)
WORKER_LIMIT = 3
#: seconds for each step; the whole module takes about 1.5-3 minutes on 2 busy cores
UP_TIMEOUT, RUN_TIMEOUT, DOWN_TIMEOUT = 240, 180, 90


def fleet_spec() -> dict[str, Any]:
    registries: list[dict[str, Any]] = []
    for s, subscription in enumerate(SUBSCRIPTIONS):
        for i in range(5):
            registries.append(
                {"subscription_id": subscription, "resource_group": f"georep-fleet-{s}", "name": f"georepfleet{s}{i}"}
            )
    # one member with overrides: its own tags, the same regions
    registries[7]["overrides"] = {"defaults": {"tags": {"env": "e2e", "team": "blue"}}}
    return {
        "template": {
            "defaults": {"zone_redundancy": False, "tags": {"env": "e2e"}},
            "regions": list(REGIONS),
            "waves": [["westus2"], ["*"]],
            "failure_budget": 0,
        },
        "registries": registries,
    }


@dataclass
class FleetStackRun:
    dir: Path
    log: list[str] = field(default_factory=list)
    up_rc: int | None = None
    run_rc: int | None = None
    down_rc: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    emulator_state: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.log)[-8000:]


def read_env(path: Path) -> dict[str, str]:
    """stack.env: `export KEY=VALUE` lines, values shell-quoted."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, _, value = parts[1].partition("=")
            env[key] = value
    return env


def stack(run: FleetStackRun, step: str, timeout: float, *args: str) -> int:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GEOREP_"))},
        "GEOREP_BIN": str(Path(sys.executable).parent),
    }
    started = time.monotonic()
    # its own session: on timeout the whole group gets SIGTERM, and `up`'s trap stops what it started
    proc = subprocess.Popen(
        [str(STACK), step, "--dir", str(run.dir), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        out += f"\n(scripts/stack {step} did not finish within {timeout} s)"
    run.seconds[step] = round(time.monotonic() - started, 1)
    run.log.append(f"$ scripts/stack {step} ({run.seconds[step]} s, exit {proc.returncode})\n{out}")
    return proc.returncode


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStackRun]:
    run = FleetStackRun(tmp_path_factory.mktemp("fleet-stack"))
    fleet = run.dir / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(fleet_spec(), sort_keys=False))
    run.up_rc = stack(
        run,
        "up",
        UP_TIMEOUT,
        *("--fleet", str(fleet), "--workers", str(len(WORKERS)), "--profile", "fast"),
        *("--worker-limit", str(WORKER_LIMIT), "--query-seconds", "1"),
        # the parent polls its children every second, not every 5 s
        *("--env", "GEOREP_FLEET_POLL_SECONDS=1"),
    )
    if run.up_rc == SKIP:
        pytest.skip(f"PostgreSQL server binaries not found (scripts/stack up exit 77): {run.log[-1].splitlines()[-1]}")
    try:
        if run.up_rc == 0:
            run.env = read_env(run.dir / "stack.env")
            out = run.dir / "result.json"
            run.run_rc = stack(
                run,
                "run-fleet",
                RUN_TIMEOUT,
                *("--mode", "deployments", "--json", str(out), "--max-parallel-registries", "10"),
                *("--timeout", str(RUN_TIMEOUT - 30)),
            )
            if out.exists():
                run.result = json.loads(out.read_text())
            control = EmulatorControl(
                run.env["GEOREP_ENDPOINT"], run.env["GEOREP_EMULATOR_ADMIN_KEY"], run.env["GEOREP_CA_BUNDLE"]
            )
            try:
                run.requests = control.requests()
                run.emulator_state = control.state()
            finally:
                control.close()
    finally:
        if (run.dir / "stack.env").exists():
            run.down_rc = stack(run, "down", DOWN_TIMEOUT)
        (run.dir / "stack-test.log").write_text("\n".join(run.log))
        sys.stderr.write(f"\nscripts/stack: {run.seconds} s; logs in {run.dir}\n")
    yield run


def test_the_stack_comes_up_and_the_fleet_run_completes(fleet_run: FleetStackRun) -> None:
    assert fleet_run.up_rc == 0, fleet_run.text
    assert fleet_run.run_rc == 0, fleet_run.text
    parent = fleet_run.result["parent"]
    assert parent["state"] == "COMPLETED", (parent, fleet_run.text)


def test_every_child_flow_run_completed(fleet_run: FleetStackRun) -> None:
    assert fleet_run.result, fleet_run.text
    children = fleet_run.result["children"]
    names = {r["name"] for r in fleet_spec()["registries"]}
    assert len(children) == len(names), json.dumps(children, indent=1)
    assert {c["registry"] for c in children} == names
    not_completed = [c for c in children if c["state"] != "COMPLETED"]
    assert not not_completed, json.dumps(not_completed, indent=1)


def test_no_arm_request_was_throttled(fleet_run: FleetStackRun) -> None:
    arm = [r for r in fleet_run.requests if r["route"] != "identity.token"]
    assert arm, "the emulator logged no ARM request"
    throttled = [r for r in arm if r["status"] == 429]
    assert not throttled, f"{len(throttled)} ARM 429s, first: {throttled[0]}"
    assert fleet_run.result["arm_429"] == 0
    writes = [r for r in arm if r["method"] in ("PUT", "PATCH", "DELETE")]
    # one PUT per planned replica, no second write for any of them
    assert len([r for r in writes if r["method"] == "PUT"]) == len(fleet_spec()["registries"]) * len(REGIONS)


def test_every_planned_replica_exists(fleet_run: FleetStackRun) -> None:
    assert fleet_run.emulator_state, fleet_run.text
    found: dict[str, dict[str, str]] = {}
    for rep in fleet_run.emulator_state["replications"]:
        parts = rep["id"].split("/")
        registry = parts[parts.index("registries") + 1]
        found.setdefault(registry, {})[rep["location"]] = rep["properties"]["provisioningState"]
    for member in fleet_spec()["registries"]:
        states = found.get(member["name"], {})
        for region in REGIONS:
            assert states.get(region) == "Succeeded", (member["name"], states)


def test_children_ran_on_both_workers(fleet_run: FleetStackRun) -> None:
    assert fleet_run.result, fleet_run.text
    children = fleet_run.result["children"]
    unknown = [c["name"] for c in children if c["worker"] not in WORKERS]
    assert not unknown, f"no worker recorded for {unknown}"
    assert set(fleet_run.result["workers_used"]) == set(WORKERS), [(c["name"], c["worker"]) for c in children]


def test_down_stopped_everything(fleet_run: FleetStackRun) -> None:
    assert fleet_run.down_rc == 0, fleet_run.text
    assert not (fleet_run.dir / "stack.env").exists()
    env = read_env(fleet_run.dir / "stack.env.down")
    pids = [env["STACK_SERVER_PID"], env["STACK_EMULATOR_PID"], *env["STACK_WORKER_PIDS"].split()]
    alive = []
    for pid in pids:
        try:
            os.killpg(int(pid), 0)  # the whole group: a worker's flow-run subprocesses included
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert not alive, f"still running after down: {alive}"
    assert not Path(env["STACK_PGDATA"]).exists(), "PostgreSQL's data directory was not removed"
