"""The Prefect UI renders what the rollout produced: the result table artifact page lists the regions, the
global-rollout run form shows the RolloutParams fields. Screenshots are kept for humans; the assertions read the
DOM that headless Chromium rendered (scripts/ui-check, run by scripts/e2e --ui against the same server)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import E2eRun, chromium

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(360),
    pytest.mark.skipif(chromium() is None, reason="Chromium not installed (apt-get install -y chromium)"),
]


def _text(e2e_run: E2eRun, page: str) -> str:
    html = (e2e_run.out / "ui" / f"{page}.html").read_text(errors="replace")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_artifact_page_shows_the_region_rows(e2e_run: E2eRun) -> None:
    assert e2e_run.returncode == 0, e2e_run.log[-6000:]
    assert e2e_run.ui
    text = _text(e2e_run, "artifact")
    assert "georep-result-georepe2e" in text
    for region in e2e_run.result["regions"]:
        assert region in text
    assert "succeeded" in text
    assert (e2e_run.out / "ui" / "artifact.png").stat().st_size > 10_000


def test_run_form_shows_the_rollout_parameters(e2e_run: E2eRun) -> None:
    assert e2e_run.returncode == 0, e2e_run.log[-6000:]
    text = _text(e2e_run, "run-form")
    for label in ("Plan Yaml", "Plan Path", "Max Parallel", "Dry Run", "Confirm"):
        assert label in text, label
    assert "deployments/plans/global.yaml" in text or "Plan file" in text
    assert (e2e_run.out / "ui" / "run-form.png").stat().st_size > 10_000
