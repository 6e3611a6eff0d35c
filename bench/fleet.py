"""Fleet benchmark: one table, measured side by side in one run (not a test).

    .venv/bin/python bench/fleet.py [--registries 10] [--regions 20] [--lro 3] [--worker-limit 6] [--skip-lros]

(a) a fleet of REGISTRIES registries (two subscriptions) x REGIONS regions, rolled out by the fleet-rollout
    deployment in deployments mode on a local stack (scripts/stack: PostgreSQL, prefect server, emulator, process
    workers) with 2 workers, under ARM's request budgets as the emulator enforces them (throttle on: reads 250 burst
    + 25/s, writes 200 + 10/s per subscription): wall time, ARM requests (the emulator's request log), 429s
    (target 0).
(b) the same fleet on a fresh stack with 1 worker: wall time, and the ratio to 2 workers. Each worker runs at most
    WORKER_LIMIT flow runs at once (`prefect worker start --limit`), like a machine of fixed size; the parent
    fleet run takes one of those slots.
(c) 500 concurrent LROs in one process (25 registries in 5 subscriptions x 20 regions, through georep's engine):
    peak RSS and wall against the ideal (one LRO's length, at least 10 s so that start-up is not the whole
    figure), from bench/many_lros.py's measure().

The emulator runs the `real` profile (throttle on, no Retry-After) with LROs shortened to --lro seconds so the
whole bench takes minutes; georep's own settings are the defaults (fallback poll 15 s, watch 1 s, write limits 20
per registry and 100 per subscription, shared ARM budgets on). Each stack is started, used once and stopped by PID (scripts/stack down).
Writes bench/out/fleet.json; the stacks' logs stay in bench/out/fleet/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "scripts" / "stack"
OUT = ROOT / "bench" / "out" / "fleet.json"
SUBSCRIPTIONS = ("6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21", "3f1c2b7a-8d4e-4f60-9b1a-2c3d4e5f6a7b")
sys.path.insert(0, str(ROOT))

from bench.many_lros import measure  # noqa: E402
from bench.regions import REGIONS  # noqa: E402


def fleet_yaml(registries: int, regions: int) -> str:
    members = [
        {
            "subscription_id": SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)],
            "resource_group": f"georep-bench-{i % len(SUBSCRIPTIONS)}",
            "name": f"georepbench{i:03d}",
        }
        for i in range(registries)
    ]
    chosen = REGIONS[:regions]
    template: dict[str, Any] = {
        "defaults": {"zone_redundancy": False, "tags": {"env": "bench"}},
        "regions": chosen,
        "failure_budget": 0,
    }
    if len(chosen) > 1:
        template["waves"] = [[chosen[0]], ["*"]]
    spec = {"template": template, "registries": members}
    return yaml.safe_dump(spec, sort_keys=False)


def stack(step: str, workdir: Path, *args: str, timeout: float = 1800) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GEOREP_"))}
    env["GEOREP_BIN"] = str(Path(sys.executable).parent)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(STACK), step, "--dir", str(workdir), *args],
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
    return proc.returncode, out, time.monotonic() - started


def fleet_on_stack(
    workers: int, fleet: Path, tmp: Path, worker_limit: int, emulator_sets: list[str], prefect_file: str | None
) -> dict[str, Any]:
    """Start a stack with WORKERS workers, roll the fleet out once, stop the stack."""
    workdir = tmp / f"stack-{workers}w"
    sets = [x for s in emulator_sets for x in ("--emulator-set", s)]
    rc, out, up_seconds = stack(
        "up",
        workdir,
        *("--workers", str(workers), "--fleet", str(fleet), "--profile", "real", "--worker-limit", str(worker_limit)),
        *sets,
        *(("--prefect-file", prefect_file) if prefect_file else ()),
        timeout=600,
    )
    print(out, file=sys.stderr, end="")
    if rc == 77:
        raise SystemExit("bench/fleet.py: PostgreSQL server binaries not found (scripts/stack up exit 77)")
    try:
        if rc != 0:
            raise SystemExit(f"bench/fleet.py: scripts/stack up failed ({rc}); logs in {workdir / 'logs'}")
        result_file = workdir / "result.json"
        rc, out, _ = stack(
            "run-fleet", workdir, "--mode", "deployments", "--json", str(result_file), "--timeout", "3000"
        )
        print(out, file=sys.stderr, end="")
        result: dict[str, Any] = json.loads(result_file.read_text()) if result_file.exists() else {}
        result.update({"exit": rc, "workers_started": workers, "up_seconds": round(up_seconds, 1)})
        return result
    finally:
        rc, out, _ = stack("down", workdir, timeout=120)
        print(out, file=sys.stderr, end="")


def child_stats(result: dict[str, Any]) -> str:
    children = result.get("children", [])
    done = sum(c["state"] == "COMPLETED" for c in children)
    used = ", ".join(result.get("workers_used", [])) or "-"
    return f"{done}/{len(children)} children completed; workers {used}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registries", type=int, default=10)
    parser.add_argument("--regions", type=int, default=20, choices=range(1, len(REGIONS) + 1), metavar="N")
    parser.add_argument("--lro", type=float, default=3.0, help="emulator create/delete LRO seconds (real: ~11)")
    parser.add_argument("--worker-limit", type=int, default=3, help="flow runs per worker at once")
    parser.add_argument("--prefect-file", help="deploy from this file instead of prefect.yaml (scripts/stack up)")
    parser.add_argument("--skip-lros", action="store_true", help="skip (c), the 500-LRO in-process row")
    args = parser.parse_args()

    emulator_sets = [
        f"create_seconds={args.lro}",
        f"delete_seconds={args.lro}",
        f"update_seconds={min(args.lro, 2.0)}",
        "sync_seconds=2",
        "sync_seconds_per_gb=0",
        "settle_seconds=2",
    ]
    print(
        f"fleet bench: {args.registries} registries in {len(SUBSCRIPTIONS)} subscriptions x {args.regions} regions "
        f"(waves: 1 canary, then the rest); emulator profile real (throttle on) with {', '.join(emulator_sets)}; "
        f"worker limit {args.worker_limit}; georep defaults",
        file=sys.stderr,
    )
    rows: list[tuple[str, str, str, str, str]] = []
    report: dict[str, Any] = {
        "settings": {
            "registries": args.registries,
            "subscriptions": len(SUBSCRIPTIONS),
            "regions": args.regions,
            "lro_seconds": args.lro,
            "emulator": ["profile=real", *emulator_sets],
            "worker_limit": args.worker_limit,
        }
    }
    # each stack's logs (server, emulator, PostgreSQL, one per worker) stay in bench/out/fleet/stack-<n>w/logs
    tmp = OUT.parent / "fleet"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fleet = tmp / "fleet.yaml"
    fleet.write_text(fleet_yaml(args.registries, args.regions))
    two = fleet_on_stack(2, fleet, tmp, args.worker_limit, emulator_sets, args.prefect_file)
    one = fleet_on_stack(1, fleet, tmp, args.worker_limit, emulator_sets, args.prefect_file)
    report["two_workers"], report["one_worker"] = two, one
    lros = args.registries * args.regions
    for label, res in (("2 workers", two), ("1 worker", one)):
        state = (res.get("parent") or {}).get("state_name", "?")
        rows.append(
            (
                f"(a/b) {args.registries} reg x {args.regions} regions ({lros} LROs), {label}",
                f"{res.get('wall_seconds', float('nan')):.1f} s",
                str(res.get("arm_requests", "?")),
                str(res.get("arm_429", "?")),
                f"parent {state}; {child_stats(res)}; writes {res.get('arm_writes', '?')}",
            )
        )
    completed = all((res.get("parent") or {}).get("state") == "COMPLETED" for res in (one, two))
    if two.get("wall_seconds") and one.get("wall_seconds"):
        ratio = one["wall_seconds"] / two["wall_seconds"]
        report["ratio_1w_over_2w"] = round(ratio, 2)
        note = "wall time ratio (>1: 2 workers faster)"
        if not completed:
            note += "; NOT COMPARABLE: a fleet run failed (see its children above)"
        rows.append(("(b) 1 worker / 2 workers", f"{ratio:.2f}x", "", "", note))
    for label, res in (("2 workers", two), ("1 worker", one)):
        for child in res.get("children", []):
            if child["state"] != "COMPLETED":
                print(
                    f"{label}: {child['registry']} {child['state_name']}: {(child['message'] or '')[:300]}",
                    file=sys.stderr,
                )

    if args.skip_lros:
        rows.append(("(c) 500 concurrent LROs in one process", "skipped", "", "", "--skip-lros"))
    else:
        # 25 registries x 20 regions in 5 subscriptions = 500 LROs
        measured = measure(registries=25, subscriptions=5, lro_seconds=max(args.lro, 10.0))
        report["many_lros"] = measured
        rows.append(
            (
                f"(c) {measured['lros']} concurrent LROs in one process ({measured['mode']})",
                f"{measured['wall']:.1f} s",
                str(measured["arm_requests"]),
                str(measured["arm_429"]),
                f"ideal {measured['ideal']} s, wall/ideal {measured['ratio']}, ok {measured['succeeded']}/{measured['lros']}, "
                f"peak RSS {measured['peak_rss_mb']} MB, threads {measured['peak_threads']}",
            )
        )

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, default=str))
    headers = ("measurement", "wall", "ARM requests", "429s", "notes")
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    print(f"\nsettings: {json.dumps(report['settings'])}")
    print("  ".join(h.ljust(w) for h, w in zip(headers[:4], widths, strict=True)) + "  " + headers[4])
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    print(f"(JSON: {OUT.relative_to(ROOT)})")
    ok = two.get("exit") == 0 and one.get("exit") == 0 and two.get("arm_429") == 0 and one.get("arm_429") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
