"""Conformance with Azure's official 2025-11-01 examples (fixtures/arm-examples, copied from the public
azure-rest-api-specs): for each example, the real SDK performs the operation against the emulator and every
response it received must have the example's structure: status code, header names, body keys, value types,
enum values and id/URL shapes. Values that belong to one instance (subscription, resource group, timestamps,
operation ids) are compared by shape only.

Deliberate, documented divergences (shared/reference/arm-replications.md): responses also carry systemData
(present in real output, absent from the examples); the DELETE 202 body is ``null`` and its Location is the
recorded subscription-scoped ``.../locations/{loc}/operationResults/...`` URL, so for Location only the header
name is compared here (test_delete_and_settle.py pins its exact shape)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient

from georep.emulator.client import EmulatorControl
from georep.emulator.server import DEMO_SUBSCRIPTION
from tests.emulator.conftest import Recorder, Seen

EXAMPLES_DIR = Path(__file__).parent / "fixtures" / "arm-examples"
EXAMPLE_NAMES = (
    "ReplicationCreate",
    "ReplicationCreateZoneRedundant",
    "ReplicationGet",
    "ReplicationList",
    "ReplicationUpdate",
    "ReplicationDelete",
)
HOME = "northeurope"
#: keys the emulator adds to a resource, on purpose
EXTRA_RESOURCE_KEYS = frozenset({"systemData"})
#: instance-specific values: compared by shape (regex of the example's form), not by value
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
SEGMENT = "[^/]+"
UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: ARM header names (responses) whose exact URL form follows the recorded service, not the example
RECORDED_SHAPE_HEADERS = frozenset({"location"})


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
    return data


def _id_pattern(example_id: str) -> re.Pattern[str]:
    """The example's ARM id or URL path, with subscription, resource group and uuids made variable."""
    path = urlsplit(example_id).path if example_id.startswith("https://") else example_id
    pattern = re.escape(path)
    pattern = re.sub(r"subscriptions/[^/]+", f"subscriptions/{SEGMENT}", pattern)
    pattern = re.sub(r"resourceGroups/[^/]+", f"resourceGroups/{SEGMENT}", pattern)
    pattern = pattern.replace("00000000\\-0000\\-0000\\-0000\\-000000000000", UUID_RE)
    return re.compile(f"^{pattern}$")


def assert_same_shape(example: Any, actual: Any, where: str = "body") -> None:
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        missing = set(example) - set(actual)
        assert not missing, f"{where}: missing keys {sorted(missing)}"
        extra = set(actual) - set(example)
        allowed = EXTRA_RESOURCE_KEYS if "properties" in example else frozenset({"nextLink"})
        assert extra <= allowed, f"{where}: unexpected keys {sorted(extra)}"
        for key, value in example.items():
            assert_same_shape(value, actual[key], f"{where}.{key}")
        return
    if isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected a list"
        assert len(actual) >= len(example) > 0 or example == actual == []
        for i, item in enumerate(actual):
            assert_same_shape(example[0], item, f"{where}[{i}]")
        return
    assert type(actual) is type(example), f"{where}: {type(actual).__name__} is not {type(example).__name__}"
    leaf = where.rsplit(".", 1)[-1]
    if leaf == "timestamp":
        assert TIMESTAMP_RE.match(example) and TIMESTAMP_RE.match(actual), f"{where}: {actual!r}"
    elif leaf == "id":
        assert _id_pattern(example).match(actual), f"{where}: {actual!r} is not shaped like {example!r}"
    else:
        assert actual == example, f"{where}: {actual!r} != {example!r}"


def assert_conforms(example: dict[str, Any], status: int, seen: Seen) -> None:
    """One response the SDK received against the example's response for that status."""
    expected = example["responses"][str(status)]
    assert seen.status == status
    for header, value in expected.get("headers", {}).items():
        assert header in seen.headers, f"header {header} missing"
        if header.lower() not in RECORDED_SHAPE_HEADERS:
            assert _id_pattern(value).match(urlsplit(seen.headers[header]).path), seen.headers[header]
            assert urlsplit(seen.headers[header]).query == urlsplit(value).query
    if "body" in expected:
        assert_same_shape(expected["body"], seen.json())
    else:
        assert seen.text in ("", "null"), f"status {status}: unexpected body {seen.text!r}"


@pytest.fixture
def example_registry(control: EmulatorControl) -> tuple[str, str]:
    """The examples' registry name, in a resource group of its own."""
    rg = f"myResourceGroup{uuid.uuid4().hex[:8]}"
    control.declare_registry(DEMO_SUBSCRIPTION, rg, "myRegistry", HOME)
    return rg, "myRegistry"


def _create(
    client: ContainerRegistryManagementClient, control: EmulatorControl, where: tuple[str, str], example: dict[str, Any]
) -> Recorder:
    """Create the example's replication through the SDK with the example's body, and let it reach Ready."""
    params = (
        load(example["title"])["parameters"] if "replication" not in example["parameters"] else example["parameters"]
    )
    recorder = Recorder()
    client.replications.begin_create(
        *where, params["replicationName"], params["replication"], raw_response_hook=recorder
    ).result()
    control.advance_clock(60)  # past the sync phase: the examples show Ready
    return recorder


CREATE = load("ReplicationCreate")


@pytest.mark.parametrize("name", ["ReplicationCreate", "ReplicationCreateZoneRedundant"])
def test_create_conforms(
    client: ContainerRegistryManagementClient,
    control: EmulatorControl,
    example_registry: tuple[str, str],
    name: str,
) -> None:
    example = load(name)
    params = example["parameters"]
    # given the example's registry; when the SDK PUTs the example's body (new), then again (existing)
    first = _create(client, control, example_registry, example)
    again = Recorder()
    client.replications.begin_create(
        *example_registry, params["replicationName"], params["replication"], raw_response_hook=again
    ).result()
    # then the 201 (with Azure-AsyncOperation) and the 200 match the example's
    assert_conforms(example, 201, first.seen[0])
    assert_conforms(example, 200, again.seen[0])
    assert again.statuses == [200]


def test_get_conforms(
    client: ContainerRegistryManagementClient, control: EmulatorControl, example_registry: tuple[str, str]
) -> None:
    example = load("ReplicationGet")
    _create(client, control, example_registry, CREATE)
    recorder = Recorder()
    # when the SDK reads the replication; then 200 like the example
    client.replications.get(*example_registry, example["parameters"]["replicationName"], raw_response_hook=recorder)
    assert_conforms(example, 200, recorder.seen[0])


def test_list_conforms(
    client: ContainerRegistryManagementClient, control: EmulatorControl, example_registry: tuple[str, str]
) -> None:
    example = load("ReplicationList")
    _create(client, control, example_registry, CREATE)
    recorder = Recorder()
    # when the SDK lists (the home replica included), then 200 with a value list of example-shaped items
    items = list(client.replications.list(*example_registry, raw_response_hook=recorder))
    assert {i.name for i in items} == {HOME, "myReplication"}
    (page,) = recorder.seen
    body = page.json()
    ours = [v for v in body["value"] if v["name"] == "myReplication"]
    assert_conforms(example, 200, Seen(page.method, page.url, page.status, page.headers, json.dumps({"value": ours})))
    assert set(body) <= {"value", "nextLink"}


@pytest.mark.parametrize(("patch_async", "status"), [(False, 200), (True, 201)], ids=["sync-200", "async-201"])
def test_update_conforms(
    client: ContainerRegistryManagementClient,
    control: EmulatorControl,
    example_registry: tuple[str, str],
    patch_async: bool,
    status: int,
) -> None:
    example = load("ReplicationUpdate")
    params = example["parameters"]
    _create(client, control, example_registry, CREATE)
    control.settings(patch_async=patch_async)
    recorder = Recorder()
    # when the SDK PATCHes the example's body; then the first response matches the example's for that status
    updated = client.replications.begin_update(
        *example_registry, params["replicationName"], params["replicationUpdateParameters"], raw_response_hook=recorder
    ).result()
    assert_conforms(example, status, recorder.seen[0])
    assert updated.tags == params["replicationUpdateParameters"]["tags"]


def test_delete_conforms(
    client: ContainerRegistryManagementClient, control: EmulatorControl, example_registry: tuple[str, str]
) -> None:
    example = load("ReplicationDelete")
    name = example["parameters"]["replicationName"]
    _create(client, control, example_registry, CREATE)
    recorder, absent = Recorder(), Recorder()
    # when the SDK deletes the replication, then deletes it again once gone
    client.replications.begin_delete(*example_registry, name, raw_response_hook=recorder).result()
    client.replications.begin_delete(*example_registry, name, raw_response_hook=absent).result()
    # then 202 with Location, a final 200 without body, then 204: the example's three statuses
    assert_conforms(example, 202, recorder.seen[0])
    assert_conforms(example, 200, recorder.seen[-1])
    assert_conforms(example, 204, absent.seen[0])


def test_shape_check_catches_a_divergence() -> None:
    # given the Get example; when a field changes type or an enum value drifts; then the check fails
    body = load("ReplicationGet")["responses"]["200"]["body"]
    wrong_type = json.loads(json.dumps(body))
    wrong_type["properties"]["regionEndpointEnabled"] = "true"
    wrong_enum = json.loads(json.dumps(body))
    wrong_enum["properties"]["zoneRedundancy"] = "enabled"
    missing = json.loads(json.dumps(body))
    del missing["properties"]["status"]["message"]
    for bad in (wrong_type, wrong_enum, missing):
        with pytest.raises(AssertionError):
            assert_same_shape(body, bad)
    assert_same_shape(body, body)
