"""Many concurrent LROs in one process (issue #5): peak RSS and wall time against the ideal (not a test).

    .venv/bin/python bench/many_lros.py [--registries 25] [--subscriptions 5] [--regions 20] [--lro 10]
                                        [--mode engine|flow|both]

The emulator runs in its own process (its CPU and memory are not ours) with ARM's real token buckets, so the
process under test must also stay inside the per-subscription budgets: 429s are counted and reported.

* engine: every replica created through georep's LRO engine from one thread pool (the engine's cost alone).
* flow:   the same fleet through ``fleet_rollout`` in subflows mode: one Prefect flow process, one global rollout
          subflow per registry, one task per region (Prefect's ephemeral API server runs in its own process).
          Wall time is the fleet flow run's own, from its start to its end state.

Ideal wall time is the emulator's LRO duration (every LRO started at once and seen the moment it ends).
``measure()`` is imported by bench/fleet.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.regions import REGIONS  # noqa: E402

HOME = "northeurope"
#: flow mode: the fleet run's own duration (start to end state), without the temporary server's start-up
FLOW_WALL: list[float] = []


class Peak:
    """Samples this process's resident set and thread count while the measured work runs."""

    def __init__(self) -> None:
        self.rss_kb = 0
        self.threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS"):
                        self.rss_kb = max(self.rss_kb, int(line.split()[1]))
            self.threads = max(self.threads, threading.active_count())
            self._stop.wait(0.05)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fleet_layout(registries: int, subscriptions: int, prefix: str) -> list[dict[str, str]]:
    subs = [str(uuid.UUID(int=(0xB0 << 96) + i + 1)) for i in range(subscriptions)]
    return [
        {"subscription": subs[i % subscriptions], "resource_group": "georep-bench", "name": f"{prefix}{i:03d}"}
        for i in range(registries)
    ]


def start_emulator(
    tmp: Path, registries: list[dict[str, str]], lro: float
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    config = {
        "settings": {"create_seconds": lro, "delete_seconds": lro, "sync_seconds": 1.0, "sync_seconds_per_gb": 0.0},
        "registries": [{**r, "location": HOME, "sku": "Premium"} for r in registries],
    }
    (tmp / "emulator.yaml").write_text(yaml.safe_dump(config))
    georep = [sys.executable, "-m", "flows.cli"]
    state = tmp / "emulator"
    log = open(tmp / "emulator.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [*georep, "emulator", "serve", "--state-dir", str(state), "--port", "0", "--identity-port", "0",
         "--config", str(tmp / "emulator.yaml")],
        cwd=ROOT, stdout=log, stderr=log, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (state / "endpoint.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"emulator did not start; see {tmp / 'emulator.log'}")
        time.sleep(0.1)
    time.sleep(0.5)
    out = subprocess.check_output([*georep, "emulator", "env", "--state-dir", str(state), "--json"], cwd=ROOT)
    return proc, json.loads(out)


def _engine_run(registries: list[dict[str, str]], tmp: Path) -> list[Any]:
    from georep.checkpoint import CheckpointStore
    from georep.config import Settings
    from georep.lro import Engine, EngineConfig
    from georep.model import Action, ActionKind, RegistryRef, ReplicaSpec

    settings = Settings()
    engine = Engine(settings, CheckpointStore(tmp / "checkpoints.db"), EngineConfig.from_settings(settings))
    jobs = []
    for reg in registries:
        ref = RegistryRef(subscription_id=reg["subscription"], resource_group=reg["resource_group"], name=reg["name"])
        for region in REGIONS[: reg["regions"]]:  # type: ignore[misc]
            spec = ReplicaSpec(region=region, name=region)
            jobs.append(
                (ref, Action(region=region, replication=region, kind=ActionKind.CREATE, reason="new", desired=spec))
            )
    with ThreadPoolExecutor(len(jobs)) as pool:
        outcomes = list(pool.map(lambda job: engine.run(job[0], "bench", job[1]), jobs))
    engine.close()
    return outcomes


def _flow_run(registries: list[dict[str, str]], regions: int) -> list[Any]:
    from prefect.client.orchestration import get_client

    from flows.fleet_rollout import fleet_rollout
    from flows.params import FleetParams

    fleet = {
        "template": {"regions": REGIONS[:regions], "defaults": {"tags": {"env": "bench"}}},
        "registries": [
            {"subscription_id": r["subscription"], "resource_group": r["resource_group"], "name": r["name"]}
            for r in registries
        ],
    }
    params = FleetParams(
        fleet_yaml=yaml.safe_dump(fleet),
        mode="subflows",
        max_parallel_registries=len(registries),
        max_parallel=min(64, regions),
    )
    state = fleet_rollout(params, return_state=True)
    runs = state.result(raise_on_failure=False)
    outcomes = [o for run in runs for o in run.outcomes] if isinstance(runs, list) else []
    if not state.is_completed():
        print(f"fleet run ended {state.type}: {state.message}", file=sys.stderr)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    if flow_run.start_time and flow_run.end_time:
        # the flow run itself: Prefect's temporary server starting up before it is not the process's LRO work
        FLOW_WALL.append((flow_run.end_time - flow_run.start_time).total_seconds())
    return outcomes


def _spread(times: list[float], origin: float) -> list[float]:
    """When the writes went out, relative to the first request: p50, p90, max."""
    rel = sorted(t - origin for t in times)
    if not rel:
        return []
    return [round(rel[len(rel) // 2], 2), round(rel[int(len(rel) * 0.9)], 2), round(rel[-1], 2)]


def measure(
    registries: int = 25, subscriptions: int = 5, lro_seconds: float = 10.0, regions: int = 20, mode: str = "engine"
) -> dict[str, Any]:
    """Run ``registries x regions`` creates at once in this process; return the figures as a dict."""
    from georep.emulator.client import EmulatorControl

    tmp = Path(tempfile.mkdtemp(prefix="georep-many-"))
    layout = fleet_layout(registries, subscriptions, prefix=f"m{uuid.uuid4().hex[:5]}")
    proc, env = start_emulator(tmp, layout, lro_seconds)
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        os.environ["GEOREP_STATE_DIR"] = str(tmp / "state")
        os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
        for reg in layout:
            reg["regions"] = regions  # type: ignore[assignment]
        cpu0, started = _cpu(), time.monotonic()
        with Peak() as peak:
            outcomes = _engine_run(layout, tmp) if mode == "engine" else _flow_run(layout, regions)
        wall = time.monotonic() - started
        cpu = _cpu() - cpu0
        if mode == "flow" and FLOW_WALL:
            wall = FLOW_WALL.pop()
        control = EmulatorControl(env["GEOREP_ENDPOINT"], env["GEOREP_EMULATOR_ADMIN_KEY"], env["GEOREP_CA_BUNDLE"])
        sent = control.requests()
        control.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        proc.terminate()
        proc.wait(30)
    created = [o for o in outcomes if str(getattr(o.action, "value", o.action)) == "create"]
    ok = sum(1 for o in created if str(getattr(o.result, "value", o.result)) == "succeeded")
    return {
        "mode": mode,
        "lros": registries * regions,
        "succeeded": ok,
        "subscriptions": subscriptions,
        "lro_seconds": lro_seconds,
        "wall": round(wall, 2),
        "ideal": lro_seconds,
        "ratio": round(wall / lro_seconds, 3),
        "peak_rss_mb": round(peak.rss_kb / 1024, 1),
        "peak_threads": peak.threads,
        "cpu_seconds": round(cpu, 2),
        "arm_requests": len([r for r in sent if not r["route"].startswith("identity")]),
        "arm_429": sum(1 for r in sent if r["status"] == 429),
        "by_route": dict(Counter(f"{r['method']} {r['route']}" for r in sent if not r["route"].startswith("identity"))),
        "puts_sent_p50_p90_max": _spread([r["ts"] for r in sent if r["method"] == "PUT"], sent[0]["ts"] if sent else 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registries", type=int, default=25)
    parser.add_argument("--subscriptions", type=int, default=5)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--lro", type=float, default=10.0)
    parser.add_argument("--mode", choices=["engine", "flow", "both"], default="both")
    args = parser.parse_args()
    modes = ["engine", "flow"] if args.mode == "both" else [args.mode]
    rows = [measure(args.registries, args.subscriptions, args.lro, args.regions, mode) for mode in modes]
    print(
        f"{args.registries} registries x {args.regions} regions in {args.subscriptions} subscriptions, LRO {args.lro:g} s"
    )
    print(
        "| mode | LROs | succeeded | wall s | ideal s | wall/ideal | peak RSS MB | threads | CPU s | ARM requests | 429s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['lros']} | {r['succeeded']} | {r['wall']} | {r['ideal']:g} | {r['ratio']} | "
            f"{r['peak_rss_mb']} | {r['peak_threads']} | {r['cpu_seconds']} | {r['arm_requests']} | {r['arm_429']} |"
        )
    print(json.dumps(rows))
    bad = any(r["succeeded"] != r["lros"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
