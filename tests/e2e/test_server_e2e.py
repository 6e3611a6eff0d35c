"""The product on a real Prefect server: prefect.yaml deployed with `prefect deploy`, a process worker, a flow run
triggered through the API, its artifacts read back through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import E2eRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(360)]

ROOT = Path(__file__).resolve().parents[2]


def test_rollout_deployment_completes_on_a_real_server(e2e_run: E2eRun) -> None:
    assert e2e_run.returncode == 0, e2e_run.log[-6000:]
    result = e2e_run.result
    assert result["state"] == "COMPLETED", result["state_message"]
    assert result["artifact_key"] == "georep-result-georepe2e"
    assert result["artifact_id"], "no result table artifact on the flow run"
    rows = {row["region"]: row for row in result["rows"]}
    for region in result["regions"]:
        assert rows[region]["result"] == "succeeded", rows[region]
        assert rows[region]["action"] == "create"
    for kind in ("plan", "plan-summary", "progress", "result", "summary"):
        assert f"georep-{kind}-georepe2e" in result["artifact_keys"]


def test_prefect_deploy_all_creates_every_deployment_with_its_schedule(e2e_run: E2eRun) -> None:
    assert e2e_run.returncode == 0, e2e_run.log[-6000:]
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert set(e2e_run.result["deployments"]) == {d["name"] for d in spec["deployments"]}
    schedules = e2e_run.result["schedules"]
    assert schedules["status-report"] == [{"active": True, "interval": 900.0, "timezone": "UTC"}]
    assert schedules["weekly-dr-drill"] == [{"active": True, "cron": "0 6 * * 1", "timezone": "UTC"}]
    for name in ("global-rollout", "dr-setup", "cleanup"):
        assert schedules[name] == []


def test_prefect_yaml_declares_the_deployments() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {
        "status-report",
        "weekly-dr-drill",
        "global-rollout",
        "dr-setup",
        "cleanup",
        "registry-rollout",
        "fleet-rollout",
    }
    for dep in by_name.values():
        assert dep["work_pool"]["name"] == "georep-pool"
    assert by_name["status-report"]["schedules"][0]["interval"] == 900
    assert by_name["weekly-dr-drill"]["schedules"][0]["cron"]
    assert by_name["weekly-dr-drill"]["parameters"] == {"params": {"preset": "weekly-failover"}}
    for name in ("weekly-dr-drill", "global-rollout"):
        assert by_name[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    for name in ("global-rollout", "dr-setup", "cleanup", "registry-rollout", "fleet-rollout"):
        assert not by_name[name].get("schedules")
    # the fleet's child must not queue behind a deployment limit: the registry lock already allows one writer
    assert "concurrency_limit" not in by_name["registry-rollout"]
    assert by_name["registry-rollout"]["entrypoint"] == "flows/global_rollout.py:global_rollout"
    assert by_name["fleet-rollout"]["entrypoint"] == "flows/fleet_rollout.py:fleet_rollout"
    for name in ("registry-rollout", "fleet-rollout"):
        assert by_name[name]["tags"] == ["georep", "write", "fleet"]
    step = spec["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == "{{ $GEOREP_PROJECT_DIR }}"
