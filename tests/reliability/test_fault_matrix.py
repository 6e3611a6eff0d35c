"""The fault matrix (tests/reliability/matrix.py), one global rollout of ten regions per row.

Every row must end with 0 lost regions, 0 stuck runs, only the targeted regions failed (with their code), and
exactly one accepted PUT per region: retries resume or re-check, they never write twice.
"""

from __future__ import annotations

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from tests.conftest import RegistryRef
from tests.reliability.conftest import Recorder
from tests.reliability.matrix import ROWS, Row, run_row


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fault_row(
    row: Row,
    registry: RegistryRef,
    control: EmulatorControl,
    client: ContainerRegistryManagementClient,
    record: Recorder,
) -> None:
    result = run_row(row, control, client, registry.subscription, registry.resource_group, registry.name)
    record("matrix", **result.as_dict())

    assert result.stuck == 0, f"flow still running after {result.wall_limit} s"
    assert result.lost == [], result.detail
    assert result.failed == row.expect_failed
    assert len(result.succeeded) == result.regions - len(row.expect_failed)
    assert result.flow_state == ("FAILED" if row.expect_failed else "COMPLETED")
    assert result.writes_accepted == result.writes_minimum, "a region was written twice"
    assert result.writes_attempted >= result.writes_accepted
    assert all(n > 0 for n in result.faults_fired), "a fault never fired: the row tested less than it says"
