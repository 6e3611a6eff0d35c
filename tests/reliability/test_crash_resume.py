"""Crash and resume: whatever dies mid-LRO (the flow process, the ARM endpoint, the holder of a concurrency slot),
the next run converges without a second accepted write and without hanging.

* the flow process is SIGKILLed while its deletes (a prune) are running: the rerun waits for them, no second
  DELETE (the create side is tests/flows/test_global_rollout.py::test_kill_9_mid_rollout...);
* the emulator stops mid-LRO and starts again on the same state and ports: the engine's retries resume every
  poller from its continuation token; an outage longer than the retry budget fails the regions with a code, and
  a rerun resumes them, one accepted PUT per region either way;
* slots taken by a process georep cannot prove dead (no holding recorded, e.g. on another machine without a shared
  state directory) are not reclaimed by anyone on an ephemeral server: the next run fails within its slot wait,
  naming the runbook command, instead of hanging; after the runbook the rerun succeeds. (A georep run killed
  with SIGKILL is recovered automatically: see the prune test.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.checkpoint import CheckpointStore
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION, EmulatorServer
from georep.emulator.settings import EmulatorSettings
from georep.lro import Engine, EngineConfig
from georep.model import Action, ActionKind, RegionOutcome, RegistryRef, ReplicaSpec, Result
from georep.retry import RetryPolicy
from tests.conftest import RegistryRef as EmulatedRegistry
from tests.reliability.conftest import Recorder
from tests.reliability.matrix import write_counts


def _child_env() -> dict[str, str]:
    """The child talks to this session's Prefect API (the harness's URL) and emulator (GEOREP_* env)."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def _fresh_engines() -> None:
    """The child wrote checkpoints behind this process's back: reopen the store on the next run."""
    from tasks.engine import reset_engines

    reset_engines()


# ------------------------------------------------------------------------------------ kill -9 mid-delete

PRUNE_CHILD = textwrap.dedent(
    """
    import sys
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams
    global_rollout(RolloutParams(plan_yaml=open(sys.argv[1]).read(), confirm=True))
    """
)
DOOMED = ["eastus", "westeurope", "uksouth"]


def test_kill_9_mid_prune_then_rerun_sends_no_second_delete(
    registry: EmulatedRegistry,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    tmp_path: Path,
    record: Recorder,
) -> None:
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams

    # given three replicas outside the plan, and deletes that take 4 s
    rg, name = registry.resource_group, registry.name
    for region in DOOMED:
        client.replications.begin_create(rg, name, region, {"location": region}).result()
    control.settings(delete_seconds=4.0)
    plan = tmp_path / "prune.yaml"
    plan.write_text(
        f"registry: {{subscription_id: {registry.subscription}, resource_group: {rg}, name: {name}}}\n"
        "regions: []\nprune: true\n"
    )
    # when a confirmed prune is killed (SIGKILL) once ARM accepted all three deletes
    child = subprocess.Popen(
        [sys.executable, "-c", PRUNE_CHILD, str(plan)],
        env=_child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            accepted = [r for r in control.requests(registry=name, method="DELETE") if r["status"] == 202]
            if len(accepted) == len(DOOMED):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the child never sent its deletes")
        time.sleep(0.5)  # let it checkpoint the last token
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed_mid_lro = [r.name for r in client.replications.list(rg, name) if r.name in DOOMED]
    control.settings(delete_seconds=0.2)
    _fresh_engines()
    # then a plain rerun converges: it returns the lock and slots the dead run leaked (tasks.limits.hold) and
    # resumes its deletes, each deleted by exactly one accepted DELETE; no runbook step
    state = global_rollout(RolloutParams(plan_yaml=plan.read_text(), confirm=True), return_state=True)
    assert state.is_completed(), state.message
    left = sorted(r.name for r in client.replications.list(rg, name))
    deletes = [r for r in control.requests(registry=name, method="DELETE")]
    accepted = sorted(r["replication"] for r in deletes if r["status"] < 400)
    record(
        "crash",
        scenario="kill -9 of the flow mid-prune (3 DELETE LROs of 4 s), rerun",
        in_flight_at_kill=len(killed_mid_lro),
        converged=left == [registry.home],
        accepted_writes=len(accepted),
        minimum=len(DOOMED),
        duplicates=len(accepted) - len(set(accepted)),
        runbook_freed=[],
    )
    assert killed_mid_lro, "the deletes had already finished: the kill tested nothing"
    assert left == [registry.home]
    assert accepted == sorted(DOOMED), [(r["replication"], r["status"]) for r in deletes]
    assert write_counts(control, name)[0] == len(DOOMED) * 2  # the three seed PUTs + three DELETEs


# ------------------------------------------------------------------------------ emulator restart mid-LRO

RESTART_REGIONS = ["westus2", "eastus", "westeurope", "japaneast", "uksouth"]
RESTART_LRO_SECONDS = 3.0
RG, REGISTRY, HOME = "rg-restart", "regrestart", "northeurope"


@pytest.fixture
def own_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EmulatorServer]]:
    """An emulator of this test's own (not the session one): it is stopped and started again. A list, so the
    test can swap in the restarted server and the fixture still stops the live one."""
    settings = EmulatorSettings.fast(create_seconds=RESTART_LRO_SECONDS)
    server = EmulatorServer(tmp_path / "emulator", port=0, identity_port=0, settings=settings).start()
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)  # the engine's DefaultAzureCredential reads IDENTITY_* from here
    holder = [server]
    try:
        yield holder
    finally:
        holder[-1].stop()


def _engine(server: EmulatorServer, state: Path, policy: RetryPolicy) -> Engine:
    settings = Settings(
        endpoint=server.base_url,
        ca_bundle=server.tls.ca,
        subscription_id=DEMO_SUBSCRIPTION,
        polling_interval=0.5,
        watch_interval=0.05,
        settle_probe_interval=0.05,
        state_dir=state,
    )
    return Engine(settings, CheckpointStore(state / "checkpoints.db"), EngineConfig.fast(retry=policy))


def _creates() -> list[Action]:
    return [
        Action(region=r, replication=r, kind=ActionKind.CREATE, reason="test", desired=ReplicaSpec(region=r, name=r))
        for r in RESTART_REGIONS
    ]


def _control(server: EmulatorServer) -> EmulatorControl:
    return EmulatorControl(server.base_url, server.secrets.admin_key, str(server.tls.ca))


def _accepted_puts(server: EmulatorServer) -> list[str]:
    ctl = _control(server)
    try:
        return sorted(r["replication"] for r in ctl.requests(method="PUT") if r["status"] == 201)
    finally:
        ctl.close()


@pytest.mark.parametrize(
    ("outage", "policy"),
    [
        # retries (20 attempts, waits up to 1 s) outlast a ~2 s outage: the same run finishes
        ("within-retry-budget", RetryPolicy(attempts=20, initial_wait=0.5, max_wait=1.0)),
        # 2 attempts 50 ms apart cannot: regions fail with a code, and a rerun resumes them
        ("beyond-retry-budget", RetryPolicy(attempts=2, initial_wait=0.05, max_wait=0.05)),
    ],
)
def test_emulator_restart_mid_lro_resumes_with_one_put_per_region(
    own_emulator: list[EmulatorServer], tmp_path: Path, outage: str, policy: RetryPolicy, record: Recorder
) -> None:
    # given five creates in flight (ARM accepted every PUT) through one engine
    first = own_emulator[0]
    ctl = _control(first)
    ctl.declare_registry(DEMO_SUBSCRIPTION, RG, REGISTRY, HOME)
    ctl.close()
    ref = RegistryRef(subscription_id=DEMO_SUBSCRIPTION, resource_group=RG, name=REGISTRY)
    engine = _engine(first, tmp_path / "state", policy)
    pool = ThreadPoolExecutor(len(RESTART_REGIONS))
    futures = [pool.submit(engine.run, ref, "plan-1", a, deadline_seconds=60) for a in _creates()]
    deadline = time.monotonic() + 30
    while len(_accepted_puts(first)) < len(RESTART_REGIONS):
        assert time.monotonic() < deadline, "the creates were never accepted"
        time.sleep(0.05)
    time.sleep(0.3)  # tokens checkpointed
    # when the emulator stops mid-LRO and comes back on the same state directory and ports
    first.stop()
    if outage == "beyond-retry-budget":
        for future in futures:  # every region gives up while ARM is unreachable
            future.result(timeout=30)
    else:
        time.sleep(1.0)
    second = EmulatorServer(first.state_dir, settings=first.settings).start()
    own_emulator.append(second)
    assert second.base_url == first.base_url
    first_outcomes: list[RegionOutcome] = [f.result(timeout=60) for f in futures]
    pool.shutdown()
    # then every region ends Succeeded: in the same run, or in a rerun that resumes from the tokens
    rerun: list[RegionOutcome] = []
    if outage == "beyond-retry-budget":
        assert all(o.result is Result.FAILED and o.error_code for o in first_outcomes), first_outcomes
        with ThreadPoolExecutor(len(RESTART_REGIONS)) as again:
            rerun = list(again.map(lambda a: engine.run(ref, "plan-1", a, deadline_seconds=60), _creates()))
    final = rerun or first_outcomes
    puts = _accepted_puts(second)
    engine.store.close()
    record(
        "crash",
        scenario=f"emulator restart mid-LRO, outage {outage.replace('-', ' ')}"
        + (" (rerun)" if rerun else " (same run)"),
        in_flight_at_kill=len(RESTART_REGIONS),
        converged=all(o.result is Result.SUCCEEDED for o in final),
        accepted_writes=len(puts),
        minimum=len(RESTART_REGIONS),
        duplicates=len(puts) - len(set(puts)),
        first_run_codes=sorted({o.error_code or "" for o in first_outcomes} - {""}),
    )
    assert [o.result for o in final] == [Result.SUCCEEDED] * len(RESTART_REGIONS), final
    assert puts == sorted(RESTART_REGIONS)  # the rerun resumed from the tokens: no PUT of its own


# ----------------------------------------------------------------------------- leaked concurrency slots

HOLD_CHILD = textwrap.dedent(
    """
    import sys, time
    from prefect.concurrency.sync import concurrency
    from georep.model import RegistryRef
    from tasks import limits
    ref = RegistryRef(subscription_id=sys.argv[1], resource_group=sys.argv[2], name=sys.argv[3])
    limits.ensure(ref)
    with concurrency([limits.registry_limit(ref)], occupy=limits.DEFAULT_REGISTRY_LIMIT, strict=True):
        print("held", flush=True)
        time.sleep(600)
    """
)
SLOT_WAIT_SECONDS = 3.0


def _wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float) -> None:
    box: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline() if proc.stdout else ""))
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    assert box.get("line", "").strip() == expected, f"child said {box.get('line')!r}"


def test_leaked_registry_slots_fail_the_next_run_clearly_then_the_runbook_frees_them(
    registry: EmulatedRegistry, control: EmulatorControl, monkeypatch: pytest.MonkeyPatch, record: Recorder
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams
    from tasks import limits

    ref = RegistryRef(subscription_id=registry.subscription, resource_group=registry.resource_group, name=registry.name)
    name = limits.registry_limit(ref)
    # given a process that took all of the registry's write slots and was killed holding them
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_CHILD, ref.subscription_id, ref.resource_group, ref.name],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(child, "held", timeout=90)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with get_client(sync_client=True) as api:
        leaked = api.read_global_concurrency_limit_by_name(name).active_slots
    assert leaked == limits.DEFAULT_REGISTRY_LIMIT
    # when the next rollout runs (slot wait shortened from 900 s for the test)
    monkeypatch.setenv("GEOREP_SLOT_WAIT_SECONDS", str(SLOT_WAIT_SECONDS))
    plan = (
        f"registry: {{subscription_id: {ref.subscription_id}, resource_group: {ref.resource_group}, "
        f"name: {ref.name}}}\nregions: [westus2, eastus]\n"
    )
    started = time.monotonic()
    state = global_rollout(RolloutParams(plan_yaml=plan), return_state=True)
    waited = time.monotonic() - started
    # then it fails within its wait, names the limit and the runbook command, and wrote nothing
    assert state.is_failed()
    assert f"prefect gcl update {name} --active-slots 0" in str(state.message)
    assert waited < SLOT_WAIT_SECONDS + 30
    assert write_counts(control, ref.name) == (0, 0)
    # and after the runbook (what `prefect gcl update NAME --active-slots 0` sends) the rerun goes through
    with get_client(sync_client=True) as api:
        api.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    state = global_rollout(RolloutParams(plan_yaml=plan), return_state=True)
    assert state.is_completed(), state.message
    record(
        "slots",
        leaked=leaked,
        failed_after_seconds=round(waited, 1),
        slot_wait_seconds=SLOT_WAIT_SECONDS,
        names_runbook=True,
        writes_while_blocked=0,
        rerun_after_runbook=state.type.value,
        writes_after_runbook=write_counts(control, ref.name)[0],
    )
    assert write_counts(control, ref.name)[0] == 2
