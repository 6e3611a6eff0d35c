"""Secrets never leak, TLS is never turned off, destructive runs need an explicit yes.

After a rollout that succeeds and one that fails, everything an operator (or an attacker with read access to
the Prefect UI, the state directory or the emulator's log) can read is scanned for the bearer token (any
JWT-shaped string, and the exact token the identity endpoint hands out), the IDENTITY_HEADER secret and the
emulator's admin key: captured stdout/stderr and log records, the run logs stored by the Prefect API, every
artifact, the failed state's message, the checkpoint database file, and the emulator's request-log rows.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import tokenize
from pathlib import Path
from typing import Any

import pytest
import requests

from georep.emulator.client import EmulatorControl
from georep.emulator.server import EmulatorServer
from tests.conftest import RegistryRef
from tests.reliability.conftest import Recorder
from tests.reliability.matrix import WRITE_METHODS, write_counts

ROOT = Path(__file__).resolve().parents[2]
#: three base64url segments, the first two JSON objects ("eyJ" = '{"'): a JWT. Continuation tokens are base64
#: JSON too ("eyJ2ZXJzaW9uIj..."), but one segment without dots: they are checked by decoding them instead.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")


def _plan(reg: RegistryRef, regions: str) -> str:
    return (
        f"registry: {{subscription_id: {reg.subscription}, resource_group: {reg.resource_group}, "
        f"name: {reg.name}}}\nregions: {regions}\n"
    )


def _fetch_token(emulator: EmulatorServer) -> str:
    """A token exactly as DefaultAzureCredential gets it (App Service managed-identity protocol)."""
    response = requests.get(
        emulator.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": emulator.settings.audience},
        headers={"X-IDENTITY-HEADER": emulator.secrets.identity_header, "Metadata": "true"},
        timeout=10,
    )
    response.raise_for_status()
    token = str(response.json()["access_token"])
    assert JWT.fullmatch(token), "the emulator's tokens are JWTs: the scan pattern must match them"
    return token


def _prefect_texts(flow_run_ids: list[Any]) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # run logs are shipped in the background: make them readable now
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
        texts += [log.message for log in logs]
        for artifact in client.read_artifacts():
            texts.append(
                json.dumps(artifact.data, default=str) if not isinstance(artifact.data, str) else artifact.data
            )
            texts.append(artifact.description or "")
    assert logs, "no run logs reached the API: the scan would prove nothing"
    return texts


def _checkpoint_texts(state_dir: Path) -> tuple[list[str], list[str]]:
    """The checkpoint database as raw bytes (WAL included) and the continuation tokens decoded."""
    raw = [p.read_bytes().decode("latin-1") for p in state_dir.glob("checkpoints.db*")]
    assert raw, f"no checkpoint database in {state_dir}"
    decoded: list[str] = []
    with sqlite3.connect(state_dir / "checkpoints.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, str) and value.startswith("eyJ") and "." not in value:
                        decoded.append(base64.b64decode(value + "==").decode("utf-8", "replace"))
    return raw, decoded


def test_no_secret_in_logs_artifacts_states_checkpoints_or_request_log(
    registry: RegistryRef,
    control: EmulatorControl,
    emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    record: Recorder,
) -> None:
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams

    caplog.set_level("DEBUG")
    token = _fetch_token(emulator)
    secrets = {"bearer token": token, "IDENTITY_HEADER": os.environ["IDENTITY_HEADER"]}
    secrets["emulator admin key"] = emulator.secrets.admin_key
    # given a rollout that succeeds and one that fails (one region's LRO ends Failed)
    ok = global_rollout(RolloutParams(plan_yaml=_plan(registry, "[westus2, eastus]")), return_state=True)
    control.add_fault("lro_fail", method="PUT", path=f"{registry.name}/replications/uksouth$")
    bad = global_rollout(RolloutParams(plan_yaml=_plan(registry, "[westus2, eastus, uksouth]")), return_state=True)
    assert ok.is_completed() and bad.is_failed()
    # when everything readable afterwards is collected
    captured = capsys.readouterr()
    sources: dict[str, list[str]] = {
        "captured output": [captured.out, captured.err],
        "captured log records": [caplog.text] + [str(r.args) for r in caplog.records],
        "Prefect API logs and artifacts": _prefect_texts([ok.state_details.flow_run_id, bad.state_details.flow_run_id]),
        "failed state": [str(bad.message), str(bad.result(raise_on_failure=False))],
        "emulator request log": [json.dumps(control.requests(registry=registry.name))],
    }
    raw, tokens = _checkpoint_texts(Path(os.environ["GEOREP_STATE_DIR"]))
    sources["checkpoint database"] = raw + tokens
    # then no secret and no JWT appears anywhere, and continuation tokens carry no Authorization header
    leaks = [
        f"{what} in {where}"
        for where, texts in sources.items()
        for text in texts
        for what, secret in {**secrets, "a JWT": None}.items()
        if (secret is not None and secret in text) or (secret is None and JWT.search(text))
    ]
    record(
        "secrets",
        sources=sorted(sources),
        texts=sum(len(t) for t in sources.values()),
        characters=sum(len(x) for t in sources.values() for x in t),
        continuation_tokens=len(tokens),
        leaks=leaks,
    )
    assert tokens, "no continuation token was checkpointed: the token check would prove nothing"
    assert all("authorization" not in t.lower() for t in tokens)
    assert leaks == []


# ------------------------------------------------------------------------------------------------- TLS

FORBIDDEN = (
    "verify" + "=False",
    "enforce_https" + "=False",
    "connection_verify" + "=False",
    "CERT" + "_NONE",
    "check_hostname" + "=False",
    "_create_unverified" + "_context",
)


def _code_of(path: Path) -> str:
    """The file's code with comments and strings removed and no whitespace: docs may *mention* the flags (to
    say they are never used); only code that sets them counts."""
    kept = [
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        if tok.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE)
    ]
    return "".join(kept)


def test_no_code_path_disables_tls_verification() -> None:
    files = [p for top in ("georep", "flows", "tasks", "tests", "bench", "scripts") for p in (ROOT / top).rglob("*.py")]
    assert len(files) > 30
    hits = [f"{p.relative_to(ROOT)}: {flag}" for p in files for flag in FORBIDDEN if flag in _code_of(p)]
    assert hits == []


# --------------------------------------------------------------------------------------------- confirm


def test_destructive_runs_are_refused_without_confirm_and_write_nothing(
    registry: RegistryRef, control: EmulatorControl, record: Recorder
) -> None:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient  # noqa: F401

    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams

    # given a registry with a replica that a prune would delete
    seed = global_rollout(RolloutParams(plan_yaml=_plan(registry, "[eastus]")), return_state=True)
    assert seed.is_completed()
    before = write_counts(control, registry.name)
    prune = _plan(registry, "[westus2]") + "prune: true\n"
    # when a prune runs without confirm, then it is refused: no write at all, not even the create
    assert RolloutParams().confirm is False
    refused = global_rollout(RolloutParams(plan_yaml=prune), return_state=True)
    assert refused.is_failed() and "confirm" in str(refused.message)
    # and as a dry run it only plans
    dry = global_rollout(RolloutParams(plan_yaml=prune, dry_run=True), return_state=True)
    assert dry.is_completed()
    assert {o.region: o.result.value for o in dry.result()}["eastus"] == "dry-run"
    after = write_counts(control, registry.name)
    attempted = [r for r in control.requests(registry=registry.name) if r["method"] in WRITE_METHODS]
    record("confirm", refused=refused.is_failed(), writes=after[1] - before[1])
    assert after == before, attempted
