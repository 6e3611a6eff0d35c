"""Reliability suite: real flows under a Prefect harness, against the session emulator (tests/conftest.py).

``record`` lets a test publish what it measured: ``bench/reliability.py`` runs these tests with
``GEOREP_RELIABILITY_OUT`` set and writes RELIABILITY.md from the records, so the document shows numbers the
tests asserted rather than numbers typed by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from georep.emulator.server import EmulatorServer
from tests.harness import harness_running, prefect_harness

Recorder = Callable[..., None]


@pytest.fixture(scope="session", autouse=True)
def reliability_harness(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer) -> Iterator[None]:
    if harness_running():  # tests/flows started one for this session: share it
        yield
        return
    with prefect_harness(tmp_path_factory.mktemp("prefect-home"), tmp_path_factory.mktemp("georep-state")):
        yield


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Recorder:
    """Append one JSON record (``kind`` + measured values) to $GEOREP_RELIABILITY_OUT, if set."""

    def write(kind: str, **data: Any) -> None:
        out = os.environ.get("GEOREP_RELIABILITY_OUT")
        if not out:
            return
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, "test": request.node.nodeid, **data}, default=str) + "\n")

    return write
