"""The emulator's rules without HTTP: a Backend on an in-memory (or file) Store, driven by its own clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from georep.emulator.exceptions import (
    AnotherOperationInProgress,
    Conflict,
    HomeReplicationCannotBeDeleted,
    InvalidResourceLocation,
    InvalidResourceName,
    LocationNotAvailableForResourceType,
    PropertyChangeNotAllowed,
    RegistrySkuNotSupported,
    ResourceGroupNotFound,
    ResourceNotFound,
    SubscriptionNotFound,
    TooManyInFlightOperations,
)
from georep.emulator.faults import FaultRule
from georep.emulator.models import Backend
from georep.emulator.settings import EmulatorSettings
from georep.emulator.store import Store

SUB = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"
OTHER_SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-units"
REG = "regunits"
HOME = "northeurope"
REPLICA = "westeurope"
PRINCIPAL = "tester"
FAST = EmulatorSettings.fast()
#: more than any fast duration (LROs 0.2 s, sync 0.3 s, settle 0.3 s)
PAST_ANY_FAST_DURATION = 1.0
#: a phase a test looks into: far longer than the test itself, skipped with the clock
LONG = 100.0


def body(location: str = REPLICA, **extra: object) -> bytes:
    return json.dumps({"location": location, **extra}).encode()


def make(**overrides: object) -> Backend:
    """A backend with one registry; durations whose middle a test observes are long (the clock skips them)."""
    b = Backend(EmulatorSettings.fast(**overrides), Store(None))
    b.declare_registry(SUB, RG, REG, HOME)
    return b


@pytest.fixture
def backend() -> Backend:
    return make()


def create(b: Backend, name: str = REPLICA, raw: bytes | None = None, faults: list[FaultRule] | None = None) -> int:
    return b.create_replication(SUB, RG, REG, name, raw or body(name), PRINCIPAL, faults).status


def state(b: Backend, name: str = REPLICA) -> tuple[str, str]:
    rep = b.get_replication(SUB, RG, REG, name)
    return rep.provisioning_state, rep.display_status(b.now())[0]


def finish(b: Backend, seconds: float = PAST_ANY_FAST_DURATION) -> None:
    b.advance_clock(seconds)
    b.settle()


# ------------------------------------------------------------------------------------------------ registries
def test_declaring_a_registry_creates_its_ready_home_replica(backend: Backend) -> None:
    # given a declared registry; then its home replica exists, named after the region, Ready
    assert [r.name for r in backend.list_replications(SUB, RG, REG)] == [HOME]
    assert state(backend, HOME) == ("Succeeded", "Ready")


def test_redeclaring_a_registry_never_moves_its_home(backend: Backend) -> None:
    # given a registry homed in northeurope; when declared again elsewhere with another SKU
    reg = backend.declare_registry(SUB, RG, REG, "eastus", sku="Standard")
    # then the SKU changes but the home and its replica stay
    assert (reg.location, reg.sku) == (HOME, "Standard")
    assert [r.name for r in backend.list_replications(SUB, RG, REG)] == [HOME]


def test_registry_declaration_validates_its_inputs(backend: Backend) -> None:
    with pytest.raises(InvalidResourceName):
        backend.declare_registry(SUB, RG, "bad-name", HOME)
    with pytest.raises(LocationNotAvailableForResourceType):
        backend.declare_registry(SUB, RG, "goodname", "germanynorth")


def test_scope_errors_name_the_missing_level(backend: Backend) -> None:
    # given one registry; then a missing registry, group and subscription each get their own 404 code
    with pytest.raises(ResourceNotFound):
        backend.get_replication(SUB, RG, "missingreg", REPLICA)
    with pytest.raises(ResourceGroupNotFound):
        backend.get_replication(SUB, "rg-missing", REG, REPLICA)
    with pytest.raises(SubscriptionNotFound):
        backend.get_replication(OTHER_SUB, RG, REG, REPLICA)


def test_names_are_case_insensitive(backend: Backend) -> None:
    # given a replica; when read with other casing; then it is the same resource, stored casing kept
    create(backend)
    assert backend.get_replication(SUB, RG.upper(), REG.upper(), REPLICA.upper()).name == REPLICA


# ------------------------------------------------------------------------------------------------ create
def test_create_runs_creating_then_succeeded_syncing_then_ready() -> None:
    # given a new replica
    backend = make(create_seconds=LONG, sync_seconds=LONG)
    result = backend.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL)
    # then 201 with an operation; Creating / Provisioning
    assert result.status == 201 and result.operation is not None
    assert state(backend) == ("Creating", "Provisioning")
    # when the create time passes: Succeeded but still Syncing
    finish(backend, LONG)
    assert state(backend) == ("Succeeded", "Syncing")
    # when the sync time passes: Ready
    finish(backend, LONG)
    assert state(backend) == ("Succeeded", "Ready")


def test_sync_time_depends_on_registry_size() -> None:
    # given 100 s + 100 s per GB, and a 2 GB registry
    b = Backend(EmulatorSettings.fast(sync_seconds=LONG, sync_seconds_per_gb=LONG), Store(None))
    b.declare_registry(SUB, RG, REG, HOME, size_gb=2)
    create(b)
    finish(b, FAST.create_seconds)
    # then Syncing lasts 100 + 2 * 100 s after provisioning
    finish(b, 2.5 * LONG)
    assert state(b)[1] == "Syncing"
    finish(b, LONG)
    assert state(b)[1] == "Ready"


def test_put_for_the_home_location_is_answered_and_ignored(backend: Backend) -> None:
    # given the home region under another name; when PUT; then 200 Succeeded and nothing stored
    result = backend.create_replication(SUB, RG, REG, "homealias", body(HOME), PRINCIPAL)
    assert (result.status, result.operation, result.replication.provisioning_state) == (200, None, "Succeeded")
    with pytest.raises(ResourceNotFound):
        backend.get_replication(SUB, RG, REG, "homealias")


def test_put_of_an_existing_replica_updates_in_place(backend: Backend) -> None:
    # given a finished replica; when PUT again with tags and endpoint off
    create(backend)
    finish(backend)
    result = backend.create_replication(
        SUB, RG, REG, REPLICA, body(tags={"k": "v"}, properties={"regionEndpointEnabled": False}), "other"
    )
    # then a synchronous 200 with the new values and the modifier recorded
    assert (result.status, result.operation) == (200, None)
    rep = backend.get_replication(SUB, RG, REG, REPLICA)
    assert (rep.tags, rep.region_endpoint_enabled, rep.modified_by, rep.created_by) == (
        {"k": "v"},
        False,
        "other",
        PRINCIPAL,
    )


def test_put_of_an_existing_replica_cannot_move_or_change_zone_redundancy(backend: Backend) -> None:
    create(backend)
    finish(backend)
    with pytest.raises(InvalidResourceLocation):
        create(backend, raw=body("eastus"))
    with pytest.raises(PropertyChangeNotAllowed):
        create(backend, raw=body(properties={"zoneRedundancy": "Enabled"}))


def test_writes_during_a_running_operation_conflict(backend: Backend) -> None:
    # given a create still running; then PUT, PATCH and DELETE are refused
    create(backend)
    with pytest.raises(AnotherOperationInProgress):
        create(backend)
    with pytest.raises(AnotherOperationInProgress):
        backend.update_replication(SUB, RG, REG, REPLICA, b'{"tags": {}}', PRINCIPAL)
    with pytest.raises(AnotherOperationInProgress):
        backend.delete_replication(SUB, RG, REG, REPLICA)


def test_non_premium_registry_refuses_replications() -> None:
    b = Backend(EmulatorSettings.fast(), Store(None))
    b.declare_registry(SUB, RG, REG, HOME, sku="Basic")
    with pytest.raises(RegistrySkuNotSupported):
        create(b)


def test_in_flight_limit_counts_running_operations_per_registry() -> None:
    # given at most one running operation per registry, and two registries
    b = make(max_inflight_per_registry=1, create_seconds=LONG)
    b.declare_registry(SUB, RG, "otherreg", HOME)
    create(b)
    # then a second create on the same registry is refused, on another registry it is not
    with pytest.raises(TooManyInFlightOperations):
        create(b, "eastus")
    assert b.create_replication(SUB, RG, "otherreg", "eastus", body("eastus"), PRINCIPAL).status == 201
    # and once the first ends the registry accepts again
    finish(b, LONG)
    assert create(b, "eastus") == 201


# ------------------------------------------------------------------------------------------------ update
def test_patch_is_synchronous_by_default(backend: Backend) -> None:
    create(backend)
    finish(backend)
    result = backend.update_replication(SUB, RG, REG, REPLICA, b'{"tags": {"a": "b"}}', PRINCIPAL)
    assert (result.status, result.operation, result.replication.tags) == (200, None, {"a": "b"})


def test_async_patch_runs_updating_and_keeps_the_sync_clock() -> None:
    # given async PATCH and a long sync phase
    b = make(patch_async=True, sync_seconds=LONG)
    create(b)
    finish(b, FAST.create_seconds)
    synced_from = b.get_replication(SUB, RG, REG, REPLICA).succeeded_at
    # when a PATCH runs
    result = b.update_replication(SUB, RG, REG, REPLICA, b'{"properties": {"regionEndpointEnabled": false}}', PRINCIPAL)
    assert (result.status, state(b)) == (201, ("Updating", "Provisioning"))
    finish(b)
    # then it ends Succeeded, still Syncing from the original provisioning time
    assert state(b) == ("Succeeded", "Syncing")
    assert b.get_replication(SUB, RG, REG, REPLICA).succeeded_at == synced_from


def test_patch_of_create_only_fields_is_refused(backend: Backend) -> None:
    create(backend)
    finish(backend)
    for raw in (b'{"location": "eastus"}', b'{"properties": {"zoneRedundancy": "Disabled"}}'):
        with pytest.raises(PropertyChangeNotAllowed):
            backend.update_replication(SUB, RG, REG, REPLICA, raw, PRINCIPAL)


# ------------------------------------------------------------------------------------------------ delete and settle
def test_delete_runs_deleting_then_gone_then_settles() -> None:
    # given a finished replica
    backend = make(delete_seconds=LONG, settle_seconds=LONG)
    create(backend)
    finish(backend)
    # when deleted: 202 and Deleting
    assert backend.delete_replication(SUB, RG, REG, REPLICA).status == 202
    assert state(backend)[0] == "Deleting"
    # then after the delete time: gone (404) but a PUT conflicts until settle_seconds pass
    finish(backend, LONG)
    with pytest.raises(ResourceNotFound):
        backend.get_replication(SUB, RG, REG, REPLICA)
    with pytest.raises(Conflict):
        create(backend)
    finish(backend, LONG)
    assert create(backend) == 201
    assert backend.tombstones == {}


def test_delete_of_absent_replica_is_204(backend: Backend) -> None:
    assert backend.delete_replication(SUB, RG, REG, REPLICA).status == 204


def test_home_replica_cannot_be_deleted_but_can_be_patched(backend: Backend) -> None:
    with pytest.raises(HomeReplicationCannotBeDeleted):
        backend.delete_replication(SUB, RG, REG, HOME)
    result = backend.update_replication(SUB, RG, REG, HOME, b'{"properties": {"regionEndpointEnabled": false}}', "x")
    assert result.replication.region_endpoint_enabled is False


# ------------------------------------------------------------------------------------------------ LRO faults
def test_lro_fail_ends_the_create_failed(backend: Backend) -> None:
    # given a create with an lro_fail rule
    rule = FaultRule(action="lro_fail", code="Boom", message="boom")
    result = backend.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL, [rule])
    finish(backend)
    # then its operation is Failed with the rule's error, and so is the replica
    op = backend.get_operation(result.operation.id)
    status = op.status_body(backend.now(), "https://x", "2025-11-01")
    assert status["status"] == "Failed"
    assert status["error"] == {"code": "Boom", "message": "boom"}
    assert state(backend) == ("Failed", "Failed")
    assert backend.get_replication(SUB, RG, REG, REPLICA).display_status(backend.now())[1] == "boom"


def test_lro_fail_on_delete_leaves_the_replica_failed(backend: Backend) -> None:
    create(backend)
    finish(backend)
    backend.delete_replication(SUB, RG, REG, REPLICA, [FaultRule(action="lro_fail")])
    finish(backend)
    assert state(backend)[0] == "Failed"


def test_lro_never_stays_in_progress(backend: Backend) -> None:
    # given a create with an lro_never rule; when a long time passes; then it is still running
    result = backend.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL, [FaultRule(action="lro_never")])
    finish(backend, 10_000)
    assert backend.get_operation(result.operation.id).status(backend.now()) == "InProgress"
    assert state(backend)[0] == "Creating"


def test_operations_are_found_only_through_their_own_kind_of_url(backend: Backend) -> None:
    # given a create and a delete operation
    create_op = backend.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL).operation
    finish(backend)
    delete_op = backend.delete_replication(SUB, RG, REG, REPLICA).operation
    # then the async-operation URL serves only the create, the operation-results URL only the delete
    assert backend.get_operation(create_op.id, kind="async") is not None
    assert backend.get_operation(delete_op.id, kind="delete") is not None
    with pytest.raises(ResourceNotFound):
        backend.get_operation(delete_op.id, kind="async")
    with pytest.raises(ResourceNotFound):
        backend.get_operation(create_op.id, kind="delete")
    # and the delete's status path is subscription-scoped, keyed by location
    assert delete_op.status_path().startswith(f"/subscriptions/{SUB}/providers/Microsoft.ContainerRegistry/locations/")
    assert f"/locations/{REPLICA}/operationResults/replications-" in delete_op.status_path()


def test_jitter_is_seeded() -> None:
    # given two backends with the same seed and jitter; then their LRO durations are identical and jittered
    durations = []
    for _ in range(2):
        b = Backend(EmulatorSettings.fast(jitter=0.5, seed=7), Store(None))
        b.declare_registry(SUB, RG, REG, HOME)
        durations.append(
            [
                b.create_replication(SUB, RG, REG, n, body(n), PRINCIPAL).operation.duration
                for n in ("eastus", "westus2")
            ]
        )
    assert durations[0] == durations[1]
    assert all(0.1 <= d <= 0.3 for d in durations[0]) and durations[0][0] != FAST.create_seconds


# ------------------------------------------------------------------------------------------------ list
def test_list_lag_hides_new_replicas_from_list_only() -> None:
    b = make(list_lag_seconds=LONG)
    create(b)
    assert [r.name for r in b.list_replications(SUB, RG, REG)] == [HOME]
    assert b.get_replication(SUB, RG, REG, REPLICA).name == REPLICA
    finish(b, LONG)
    assert len(b.list_replications(SUB, RG, REG)) == 2


def test_list_order_sorted_or_stable_arbitrary(backend: Backend) -> None:
    for name in ("eastus", "westus2", "uksouth", "japaneast"):
        create(backend, name)
    arbitrary = [r.name for r in backend.list_replications(SUB, RG, REG)]
    assert arbitrary == [r.name for r in backend.list_replications(SUB, RG, REG)]
    backend.configure(backend.settings.model_copy(update={"list_order": "sorted"}))
    assert [r.name for r in backend.list_replications(SUB, RG, REG)] == sorted(arbitrary)


def test_list_is_scoped_to_the_registry(backend: Backend) -> None:
    backend.declare_registry(SUB, RG, "otherreg", "eastus")
    create(backend)
    assert {r.name for r in backend.list_replications(SUB, RG, "otherreg")} == {"eastus"}


# ------------------------------------------------------------------------------------------------ store and clock
def test_state_survives_a_new_backend_on_the_same_store(tmp_path: Path) -> None:
    # given a file store with a registry, a running create, a settling delete and an advanced clock
    db = tmp_path / "emulator.db"
    b = Backend(EmulatorSettings.fast(settle_seconds=LONG), Store(db))
    b.declare_registry(SUB, RG, REG, HOME)
    create(b, "eastus")
    finish(b)
    b.delete_replication(SUB, RG, REG, "eastus")
    op = b.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL).operation
    finish(b, FAST.delete_seconds)
    offset = b.clock.offset
    b.store.close()
    # when a new backend opens the same store
    again = Backend(EmulatorSettings.fast(settle_seconds=LONG), Store(db))
    # then everything is back: registry, replicas, the operation, the tombstone and the clock
    assert again.clock.offset == offset
    assert again.get_registry(SUB, RG, REG).location == HOME
    assert again.get_operation(op.id).id == op.id
    assert {r.name for r in again.list_replications(SUB, RG, REG)} == {HOME, REPLICA}
    with pytest.raises(Conflict):
        create(again, "eastus")


def test_reset_forgets_everything(backend: Backend) -> None:
    create(backend)
    backend.advance_clock(5)
    backend.reset()
    assert (backend.registries, backend.replications, backend.operations, backend.clock.offset) == ({}, {}, {}, 0.0)


def test_snapshot_reports_state_and_operations(backend: Backend) -> None:
    create(backend)
    snap = backend.snapshot()
    assert {r["name"] for r in snap["replications"]} == {HOME, REPLICA}
    assert [o["status"] for o in snap["operations"]] == ["InProgress"]
    finish(backend)
    assert [o["status"] for o in backend.snapshot()["operations"]] == ["Succeeded"]


def test_a_refused_put_does_not_use_up_an_lro_fault() -> None:
    # given a deleted replica whose name is still settling, and an lro_fail fault waiting for the next PUT
    b = make(settle_seconds=LONG)
    create(b)
    finish(b)
    b.delete_replication(SUB, RG, REG, REPLICA)
    finish(b)
    taken: list[int] = []

    def faults() -> list[FaultRule]:
        taken.append(1)
        return [FaultRule(action="lro_fail")]

    # when a PUT meets the settle window, then it is refused and the fault is not taken
    with pytest.raises(Conflict):
        b.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL, faults)
    assert taken == []
    # and the next PUT that does start an operation gets it
    finish(b, LONG + 1)
    b.create_replication(SUB, RG, REG, REPLICA, body(), PRINCIPAL, faults)
    finish(b)
    assert taken == [1] and state(b)[0] == "Failed"
