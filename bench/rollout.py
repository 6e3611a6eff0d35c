"""Rollout benchmark: ratios measured side by side in one run against one emulator (not a test).

    .venv/bin/python bench/rollout.py [--regions 20] [--lro 3] [--skip-seed]

1. fan-out: a 20-region rollout (one wave, LRO 3 s, no Retry-After) through the real flow, run the way
   `georep apply` runs it on its temporary Prefect server (``flows.apply.local_run``: no flow-run heartbeat, which
   nothing reads there); wall time of the flow run divided by the slowest single LRO in it (target <= 1.10).
   ``fanout_default_settings`` is the same with Prefect's defaults (heartbeat on: its thread is joined when the
   run ends, up to 1 s).
2. the seed's example-1 loop (sequential begin_create().result(), SDK defaults: 30 s polling) against
   `georep apply` on the same four regions and emulator settings, both timed as whole processes, Prefect start-up
   included (target: georep >= 10x faster).
3. ARM requests per created replica against the minimum the SDK needs for an LRO of that length.
4. Prefect overhead per region task (target <= 10 ms): the same no-op region actions through Prefect tasks and
   straight through the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.regions import REGIONS  # noqa: E402
from georep.emulator.client import EmulatorControl  # noqa: E402
from georep.emulator.server import DEMO_SUBSCRIPTION, EmulatorServer  # noqa: E402
from georep.emulator.settings import EmulatorSettings  # noqa: E402

SEED_FOUR = ["westus2", "eastus", "westeurope", "southeastasia"]
RG = "georep-bench"

SEED_LOOP = textwrap.dedent(
    """
    # The seed's example 1, as users write it: sequential, result() on each, SDK defaults (30 s polling).
    # Only the endpoint, the scope and the CA differ from real Azure (as georep's own client factory).
    import os, sys
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient
    client = ContainerRegistryManagementClient(
        DefaultAzureCredential(), os.environ["GEOREP_SUBSCRIPTION_ID"], base_url=os.environ["GEOREP_ENDPOINT"],
        credential_scopes=["https://management.azure.com/.default"], connection_verify=os.environ["GEOREP_CA_BUNDLE"])
    for region in sys.argv[2:]:
        r = client.replications.begin_create(sys.argv[1].split("/")[0], sys.argv[1].split("/")[1], region,
                                             {"location": region, "tags": {"env": "prod"}}).result()
        print(region, r.provisioning_state)
    """
)


def plan_text(registry: str, regions: list[str], waves: str = "") -> str:
    items = "\n".join(f"  - {r}" for r in regions)
    return (
        f"registry:\n  subscription_id: {DEMO_SUBSCRIPTION}\n  resource_group: {RG}\n  name: {registry}\n"
        f"defaults:\n  tags: {{env: prod}}\nregions:\n{items}\n{waves}"
    )


def new_registry(control: EmulatorControl, prefix: str) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    control.declare_registry(DEMO_SUBSCRIPTION, RG, name, "northeurope")
    return name


def requests_per_replica(control: EmulatorControl, registry: str) -> tuple[float, int]:
    rows = control.requests(registry=registry)
    per = [r for r in rows if r["replication"] and r["route"] != "replications.list"]
    lists = sum(1 for r in rows if r["route"] == "replications.list")
    created = {r["replication"] for r in rows if r["method"] == "PUT" and r["status"] == 201}
    ops = {r["replication"]: 0 for r in per if r["replication"] in created}
    for r in per:
        if r["replication"] in ops:
            ops[r["replication"]] += 1
    # delete polls of a create are never attributed: the status URLs carry the replica name
    return (sum(ops.values()) / len(ops) if ops else 0.0), lists


def _apply_against_server(georep_bin: str, control: EmulatorControl, plan_file: Path, tmp: Path) -> float:
    """Time `georep apply` as a whole process against a `prefect server` that is already up (started and stopped
    here by PID, not timed)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp / "prefect-server-home"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen(
        [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        reg = new_registry(control, "benchserver")
        plan_file.write_text(plan_text(reg, SEED_FOUR))
        georep_env = {**env, "PREFECT_API_URL": api}
        t = time.monotonic()
        subprocess.run(
            [georep_bin, "apply", str(plan_file)],
            check=True,
            env=georep_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.monotonic() - t
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--lro", type=float, default=3.0)
    parser.add_argument("--skip-seed", action="store_true", help="skip the ~2 min seed-loop comparison")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="georep-bench-"))
    settings = EmulatorSettings(create_seconds=args.lro, delete_seconds=args.lro, sync_seconds=5, settle_seconds=1)
    server = EmulatorServer(tmp / "emulator", port=0, identity_port=0, settings=settings).start()
    env = server.env()
    env.update(
        {
            "GEOREP_STATE_DIR": str(tmp / "state"),
            "GEOREP_WATCH_INTERVAL": "0.1",
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        }
    )
    os.environ.update(env)
    control = EmulatorControl(server.base_url, server.secrets.admin_key, str(server.tls.ca))
    control.declare_registry(DEMO_SUBSCRIPTION, RG, "benchwarmup", "northeurope")
    results: dict[str, object] = {"lro_seconds": args.lro, "regions": args.regions}
    try:
        from flows.global_rollout import global_rollout
        from flows.params import RolloutParams

        # warm-up: start Prefect's ephemeral server, import everything, fetch a token (not measured)
        global_rollout(RolloutParams(plan_yaml=plan_text("benchwarmup", ["westus2"]), dry_run=True))

        # 1a. fan-out ratio of the engine alone (no Prefect): what the LRO waiting itself costs
        from concurrent.futures import ThreadPoolExecutor

        from georep.model import Action, ActionKind, RegistryRef, ReplicaSpec
        from tasks.engine import get_engine

        engine = get_engine()
        reg0 = new_registry(control, "benchengine")
        ref0 = RegistryRef(subscription_id=DEMO_SUBSCRIPTION, resource_group=RG, name=reg0)
        creates = [
            Action(
                region=r,
                replication=r,
                kind=ActionKind.CREATE,
                reason="bench",
                desired=ReplicaSpec(region=r, name=r, tags={"env": "prod"}),
            )
            for r in REGIONS[: args.regions]
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(args.regions) as pool:
            engine_out = list(pool.map(lambda a: engine.run(ref0, "bench-engine", a), creates))
        engine_wall = time.monotonic() - started
        engine_slowest = max(o.seconds for o in engine_out)
        results["fanout_engine"] = {
            "wall_s": round(engine_wall, 3),
            "slowest_lro_s": round(engine_slowest, 3),
            "ratio": round(engine_wall / engine_slowest, 3),
            "ratio_to_emulator_lro": round(engine_wall / args.lro, 3),
        }

        # 1b. fan-out ratio through the real flow (observe, plan artifacts, locks, waves, result artifacts)
        from flows.apply import local_run

        def fanout(as_cli: bool) -> tuple[str, list[Any], dict[str, float]]:
            reg = new_registry(control, "benchfan")
            text = plan_text(reg, REGIONS[: args.regions])
            started = time.monotonic()
            with local_run() if as_cli else contextlib.nullcontext():
                state = global_rollout(RolloutParams(plan_yaml=text, max_parallel=args.regions), return_state=True)
            wall = time.monotonic() - started
            outcomes = [o for o in state.result() if o.action.value == "create"]
            slowest = max(o.seconds for o in outcomes)
            return (
                reg,
                outcomes,
                {
                    "flow_wall_s": round(wall, 3),
                    "slowest_lro_s": round(slowest, 3),
                    "ratio": round(wall / slowest, 3),
                    "ratio_to_emulator_lro": round(wall / args.lro, 3),
                    "created": len(outcomes),
                },
            )

        reg, outcomes, results["fanout"] = fanout(as_cli=True)
        per_replica, lists = requests_per_replica(control, reg)
        results["fanout_default_settings"] = fanout(as_cli=False)[2]
        results["requests"] = {
            "per_created_replica": round(per_replica, 2),
            "sdk_minimum": 4,
            "shared_list_calls": lists,
            "list_calls_per_replica": round(lists / len(outcomes), 2),
        }

        # 4. Prefect overhead per region task: no-op actions through tasks vs straight through the engine
        from prefect import flow

        from flows.apply import _window
        from georep.model import ObservedReplica
        from georep.progress import Broadcast

        ref = RegistryRef(subscription_id=DEMO_SUBSCRIPTION, resource_group=RG, name=reg)
        noops = [
            Action(
                region=f"r{i}",
                replication=f"r{i}",
                kind=ActionKind.NOOP,
                reason="bench",
                observed=ObservedReplica(name=f"r{i}", region=f"r{i}", provisioning_state="Succeeded"),
            )
            for i in range(200)
        ]

        @flow(name="bench-task-overhead")
        def through_prefect(parallel: int) -> float:
            t = time.monotonic()
            _window(ref, "bench", noops, False, parallel, None, Broadcast(), None)
            return time.monotonic() - t

        t = time.monotonic()
        for a in noops:
            engine.run(ref, "bench", a)
        direct = time.monotonic() - t
        seq = through_prefect(1)
        par = through_prefect(16)
        results["prefect_overhead"] = {
            "tasks": len(noops),
            "direct_s": round(direct, 4),
            "sequential_ms_per_task": round((seq - direct) / len(noops) * 1000, 2),
            "parallel16_ms_per_task": round((par - direct) / len(noops) * 1000, 2),
        }

        # 2. the seed's loop vs georep apply, whole processes, same emulator settings
        if not args.skip_seed:
            seed_reg = new_registry(control, "benchseed")
            t = time.monotonic()
            subprocess.run(
                [sys.executable, "-c", SEED_LOOP, f"{RG}/{seed_reg}", *SEED_FOUR],
                check=True,
                env={**os.environ},
                stdout=subprocess.DEVNULL,
            )
            seed_wall = time.monotonic() - t
            apply_reg = new_registry(control, "benchapply")
            plan_file = tmp / "seed-plan.yaml"
            plan_file.write_text(plan_text(apply_reg, SEED_FOUR))
            georep_bin = str(Path(sys.executable).parent / "georep")
            apply_env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect-apply")}
            t = time.monotonic()
            subprocess.run(
                [georep_bin, "apply", str(plan_file)],
                check=True,
                env=apply_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            apply_cold = time.monotonic() - t
            apply_reg2 = new_registry(control, "benchapply")
            plan_file.write_text(plan_text(apply_reg2, SEED_FOUR))
            t = time.monotonic()
            subprocess.run(
                [georep_bin, "apply", str(plan_file)],
                check=True,
                env=apply_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            apply_warm = time.monotonic() - t
            # the same apply against a running Prefect server (the deployed setup): no ephemeral server to boot
            apply_server = _apply_against_server(georep_bin, control, plan_file, tmp)
            results["seed_vs_apply"] = {
                "seed_loop_s": round(seed_wall, 2),
                "apply_fresh_prefect_home_s": round(apply_cold, 2),
                "apply_s": round(apply_warm, 2),
                "speedup": round(seed_wall / apply_warm, 2),
                "speedup_fresh_home": round(seed_wall / apply_cold, 2),
                "apply_running_server_s": round(apply_server, 2),
                "speedup_running_server": round(seed_wall / apply_server, 2),
            }
    finally:
        control.close()
        server.stop()

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rollout.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
