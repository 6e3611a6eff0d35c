"""Flows run for real under one Prefect test harness for the whole session, against the session emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from georep.emulator.server import EmulatorServer
from tests.harness import harness_running, prefect_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_harness_for_flows(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer) -> Iterator[None]:
    if harness_running():  # another suite of this session started it: share it
        yield
        return
    with prefect_harness(tmp_path_factory.mktemp("prefect-home"), tmp_path_factory.mktemp("georep-state")):
        yield


@pytest.fixture
def project_dir() -> Path:
    return Path(__file__).resolve().parents[2]
