"""The LRO engine against the emulator, through the real SDK and its pollers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from georep.checkpoint import CheckpointStore
from georep.config import Settings
from georep.emulator.client import EmulatorControl
from georep.lro import Engine, EngineConfig
from georep.model import Action, ActionKind, ObservedReplica, RegistryRef, ReplicaSpec, Result
from tests.conftest import RegistryRef as EmulatedRegistry

PLAN = "plan0001"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CheckpointStore]:
    s = CheckpointStore(tmp_path / "checkpoints.db")
    yield s
    s.close()


@pytest.fixture
def engine(settings: Settings, store: CheckpointStore) -> Engine:
    return Engine(settings, store, EngineConfig.fast(deadline_seconds=20))


@pytest.fixture
def ref(registry: EmulatedRegistry) -> RegistryRef:
    return RegistryRef(
        subscription_id=registry.subscription, resource_group=registry.resource_group, name=registry.name
    )


def create(region: str, **spec: object) -> Action:
    return Action(
        region=region,
        replication=region,
        kind=ActionKind.CREATE,
        reason="test",
        desired=ReplicaSpec(region=region, name=region, **spec),
    )  # type: ignore[arg-type]


def writes(control: EmulatorControl, ref: RegistryRef, method: str) -> int:
    return sum(1 for r in control.requests(method=method, registry=ref.name) if r["status"] < 500)


def test_create_reports_state_and_requests(engine: Engine, ref: RegistryRef, control: EmulatorControl) -> None:
    out = engine.run(ref, PLAN, create("westeurope", tags={"env": "prod"}))
    assert out.result is Result.SUCCEEDED, out
    assert (out.provisioning_state, out.display_status) == ("Succeeded", "Syncing")
    # PUT, the SDK's immediate poll, the poll that sees Succeeded, the final GET: the SDK's minimum
    assert out.arm_requests == len(control.requests(registry=ref.name, replication="westeurope")) >= 3
    assert writes(control, ref, "PUT") == 1


def test_rerun_of_a_finished_region_sends_nothing(engine: Engine, ref: RegistryRef, control: EmulatorControl) -> None:
    engine.run(ref, PLAN, create("westeurope"))
    before = len(control.requests(registry=ref.name))
    again = engine.run(ref, PLAN, create("westeurope"))
    assert again.result is Result.SUCCEEDED and again.resumed and again.arm_requests == 0
    assert len(control.requests(registry=ref.name)) == before


def test_dry_run_sends_nothing(engine: Engine, ref: RegistryRef, control: EmulatorControl) -> None:
    out = engine.run(ref, PLAN, create("westeurope"), dry_run=True)
    assert out.result is Result.DRY_RUN
    assert control.requests(registry=ref.name, method="PUT") == []


def test_update_patches_tags_and_endpoint(engine: Engine, ref: RegistryRef, control: EmulatorControl) -> None:
    engine.run(ref, PLAN, create("eastus", tags={"keep": "me"}))
    observed = ObservedReplica(name="eastus", region="eastus", provisioning_state="Succeeded", tags={"keep": "me"})
    action = Action(
        region="eastus",
        replication="eastus",
        kind=ActionKind.UPDATE,
        reason="tags",
        observed=observed,
        desired=ReplicaSpec(region="eastus", name="eastus", tags={"env": "prod"}, region_endpoint_enabled=False),
    )
    out = engine.run(ref, "plan0002", action)
    assert out.result is Result.SUCCEEDED, out
    state = {
        r["name"]: r for r in control.state()["replications"] if r["id"].endswith(f"{ref.name}/replications/eastus")
    }
    rep = state["eastus"]
    assert rep["tags"] == {"keep": "me", "env": "prod"}
    assert rep["properties"]["regionEndpointEnabled"] is False


def test_recreate_waits_out_the_settle_window(engine: Engine, ref: RegistryRef, control: EmulatorControl) -> None:
    control.settings(settle_seconds=0.6)
    engine.run(ref, PLAN, create("westus2"))
    observed = ObservedReplica(name="westus2", region="westus2", provisioning_state="Failed")
    action = Action(
        region="westus2",
        replication="westus2",
        kind=ActionKind.RECREATE,
        reason="Failed",
        observed=observed,
        desired=ReplicaSpec(region="westus2", name="westus2"),
    )
    out = engine.run(ref, "plan0003", action)
    assert out.result is Result.SUCCEEDED, out
    assert writes(control, ref, "DELETE") == 1
    # the recreate PUT may meet the settle window (409 Conflict) and be retried, but only one PUT was accepted
    accepted = [r for r in control.requests(method="PUT", registry=ref.name) if r["status"] == 201]
    assert len(accepted) == 2  # the original create and the recreate


def test_failed_lro_fails_the_region_with_the_arm_code(
    engine: Engine, ref: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault(
        "lro_fail",
        method="PUT",
        path="replications/southeastasia$",
        code="ReplicationQuotaExceeded",
        message="quota exceeded in southeastasia",
    )
    out = engine.run(ref, PLAN, create("southeastasia"))
    assert out.result is Result.FAILED
    assert out.error_code == "ReplicationQuotaExceeded"
    assert "quota exceeded" in (out.error_message or "")
    assert writes(control, ref, "PUT") == 1  # a Failed LRO is terminal: no blind retry


def test_never_ending_lro_is_stopped_by_the_deadline(
    settings: Settings, store: CheckpointStore, ref: RegistryRef, control: EmulatorControl
) -> None:
    control.add_fault("lro_never", method="PUT", path="replications/japaneast$")
    engine = Engine(settings, store, EngineConfig.fast(deadline_seconds=1.5))
    started = time.monotonic()
    out = engine.run(ref, PLAN, create("japaneast"))
    assert out.result is Result.FAILED and out.error_code == "DeadlineExceeded"
    assert time.monotonic() - started < 4
    cp = store.get(str(ref), "japaneast", PLAN)
    assert cp is not None and cp.token  # kept, so a rerun resumes the same operation


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(429, 1), (500, None), (503, None), (409, None)],
    ids=["429", "500", "503", "409-another-operation"],
)
def test_transient_write_errors_are_retried_once_at_our_layer(
    engine: Engine, ref: RegistryRef, control: EmulatorControl, status: int, retry_after: int | None
) -> None:
    control.add_fault(
        "status", method="PUT", path="replications/uksouth$", status=status, count=2, retry_after=retry_after
    )
    out = engine.run(ref, PLAN, create("uksouth"))
    assert out.result is Result.SUCCEEDED, out
    puts = control.requests(method="PUT", registry=ref.name)
    assert [r["status"] for r in puts] == [status, status, 201]  # azure-core added no attempts of its own


def test_poll_errors_resume_the_poller_without_a_second_write(
    engine: Engine, ref: RegistryRef, control: EmulatorControl
) -> None:
    control.settings(create_seconds=0.6)
    control.add_fault("status", method="GET", path="operationStatuses", status=503, count=2)
    out = engine.run(ref, PLAN, create("francecentral"))
    assert out.result is Result.SUCCEEDED, out
    assert writes(control, ref, "PUT") == 1


def test_connection_reset_on_put_adopts_instead_of_writing_twice(
    engine: Engine, ref: RegistryRef, control: EmulatorControl
) -> None:
    # the PUT is processed... no: a reset before the handler means ARM never saw it; the engine must look first
    control.add_fault("reset", method="PUT", path="replications/centralus$", count=1)
    out = engine.run(ref, PLAN, create("centralus"))
    assert out.result is Result.SUCCEEDED, out
    gets_before_put = [r for r in control.requests(registry=ref.name, replication="centralus")]
    assert [r["method"] for r in gets_before_put][:3] == ["PUT", "GET", "PUT"]  # reset, look, write
    assert writes(control, ref, "PUT") == 2 and len([r for r in gets_before_put if r["status"] == 201]) == 1


def test_unknown_auth_failure_is_terminal(
    settings: Settings, store: CheckpointStore, ref: RegistryRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    engine = Engine(settings, store, EngineConfig.fast(deadline_seconds=10))
    out = engine.run(ref, PLAN, create("koreacentral"))
    assert out.result is Result.FAILED
    assert "not-the-secret" not in (out.error_message or "")


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from georep.checkpoint import CheckpointStore
    from georep.config import Settings
    from georep.lro import Engine, EngineConfig
    from georep.model import Action, ActionKind, RegistryRef, ReplicaSpec
    sub, rg, name, db = sys.argv[1:5]
    engine = Engine(Settings(polling_interval=0.05), CheckpointStore(Path(db)), EngineConfig.fast(deadline_seconds=60))
    ref = RegistryRef(subscription_id=sub, resource_group=rg, name=name)
    spec = ReplicaSpec(region="swedencentral", name="swedencentral")
    engine.run(ref, "plancrash", Action(region="swedencentral", replication="swedencentral",
               kind=ActionKind.CREATE, reason="crash test", desired=spec))
    """
)


def test_kill_9_mid_lro_then_rerun_resumes_the_token(
    settings: Settings, tmp_path: Path, ref: RegistryRef, control: EmulatorControl
) -> None:
    control.settings(create_seconds=3.0)
    db = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, ref.subscription_id, ref.resource_group, ref.name, str(db)], env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cp = CheckpointStore(db).get(str(ref), "swedencentral", "plancrash") if db.exists() else None
            if cp is not None and cp.state == "in-flight" and cp.token:
                break
            time.sleep(0.05)
        else:
            pytest.fail("child never checkpointed its token")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    engine = Engine(settings, CheckpointStore(db), EngineConfig.fast(deadline_seconds=30))
    spec = ReplicaSpec(region="swedencentral", name="swedencentral")
    out = engine.run(
        ref,
        "plancrash",
        Action(
            region="swedencentral", replication="swedencentral", kind=ActionKind.CREATE, reason="rerun", desired=spec
        ),
    )
    assert out.result is Result.SUCCEEDED and out.resumed, out
    assert writes(control, ref, "PUT") == 1


def test_crash_between_intent_and_token_adopts_the_replica(
    engine: Engine, store: CheckpointStore, ref: RegistryRef, control: EmulatorControl, client: object
) -> None:
    from georep.checkpoint import Checkpoint

    # ARM accepted a PUT, but the process died before it saved the token: the checkpoint says "starting"
    engine.run(ref, "other", create("norwayeast"))
    store.save(Checkpoint(str(ref), "norwayeast", PLAN, "norwayeast", "create", step="create", state="starting"))
    out = engine.run(ref, PLAN, create("norwayeast"))
    assert out.result is Result.SUCCEEDED, out
    assert writes(control, ref, "PUT") == 1
