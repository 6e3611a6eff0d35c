"""What people read: the cells of the plan and result tables, in rows, markdown and rich."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from georep import report
from georep.model import Action, ActionKind, ObservedReplica, RegionOutcome, Result

ACTIONS = [
    Action(
        region="eastus",
        replication="eastus",
        kind=ActionKind.UPDATE,
        reason="tags or endpoint differ",
        observed=ObservedReplica(name="eastus", region="eastus", provisioning_state="Succeeded"),
        changes=("tags.env: dev → prod", "regionEndpointEnabled: true → false"),
    ),
    Action(region="northeurope", replication="northeurope", kind=ActionKind.SKIP_HOME, reason="home region"),
    Action(region="westus2", replication="westus2", kind=ActionKind.CREATE, reason="no replica | in westus2"),
]

OUTCOMES = [
    RegionOutcome(
        region="westus2",
        replication="westus2",
        action=ActionKind.CREATE,
        result=Result.SUCCEEDED,
        provisioning_state="Succeeded",
        display_status="Syncing",
        seconds=12.345,
        arm_requests=5,
    ),
    RegionOutcome(
        region="eastus",
        replication="eastus",
        action=ActionKind.RECREATE,
        result=Result.FAILED,
        provisioning_state="Failed",
        seconds=3.0,
        arm_requests=7,
        error_code="ReplicationProvisioningFailed",
        error_message="The replication failed\nto provision.",
    ),
    RegionOutcome(
        region="japaneast", replication="japaneast", action=ActionKind.UPDATE, result=Result.SKIPPED, resumed=True
    ),
]


def test_plan_rows() -> None:
    rows = report.as_rows(ACTIONS)
    assert list(rows[0]) == ["region", "replication", "action", "changes", "reason"]
    assert rows[0] == {
        "region": "eastus",
        "replication": "eastus",
        "action": "update",
        "changes": "tags.env: dev → prod; regionEndpointEnabled: true → false",
        "reason": "tags or endpoint differ",
    }
    assert rows[1]["action"] == "skip-home"


def test_outcome_rows() -> None:
    rows = report.as_rows(OUTCOMES)
    assert list(rows[0]) == [
        "region",
        "action",
        "result",
        "provisioningState",
        "displayStatus",
        "seconds",
        "ARM requests",
        "error",
    ]
    assert rows[0]["seconds"] == 12.3 and rows[0]["ARM requests"] == 5 and rows[0]["displayStatus"] == "Syncing"
    assert rows[1]["error"].startswith("ReplicationProvisioningFailed: The replication failed")
    assert rows[2]["result"] == "skipped (resumed)"


def test_as_rows_rejects_a_mix() -> None:
    assert report.as_rows([]) == []
    with pytest.raises(TypeError):
        report.as_rows([ACTIONS[0], OUTCOMES[0]])  # type: ignore[arg-type]


def test_plan_markdown_is_a_valid_github_table() -> None:
    md = report.plan_markdown(ACTIONS)
    lines = md.splitlines()
    assert lines[0] == "| region | replication | action | changes | reason |"
    assert lines[1] == "| --- | --- | --- | --- | --- |"
    assert len(lines) == 2 + len(ACTIONS)
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines)  # no indentation, no stray lines
    assert "| eastus | eastus | update | tags.env: dev → prod<br>regionEndpointEnabled: true → false |" in md
    assert "no replica \\| in westus2" in md  # a pipe in a reason does not split the cell


def test_outcome_markdown_keeps_one_row_per_region() -> None:
    md = report.outcome_markdown(OUTCOMES)
    lines = md.splitlines()
    assert len(lines) == 2 + len(OUTCOMES)
    assert "| westus2 | create | succeeded | Succeeded | Syncing | 12.3 | 5 |  |" in md
    assert "The replication failed<br>to provision." in md


def test_markdown_escapes_html() -> None:
    md = report.markdown_table([{"a": "tag <name> & co"}], ["a"])
    assert "tag &lt;name&gt; &amp; co" in md


def test_outcome_summary() -> None:
    summary = report.outcome_summary(OUTCOMES)
    assert "3 regions; 1 failed, 1 skipped, 1 succeeded" in summary
    assert "1 create, 1 recreate, 1 update" in summary
    assert "**Failures (1):**" in summary
    assert (
        "- `eastus` (recreate `eastus`): **ReplicationProvisioningFailed**: The replication failed to provision."
        in summary
    )


def test_plan_summary() -> None:
    summary = report.plan_summary(
        [*ACTIONS, Action(region="uksouth", replication="uksouth", kind=ActionKind.DELETE, reason="prune")]
    )
    assert "4 regions, 3 with writes: 1 create, 1 delete, 1 skip-home, 1 update." in summary
    assert "**Destructive:** uksouth (delete)." in summary
    assert "nothing to do" in report.plan_summary([])


def test_rich_tables_render_every_cell() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(report.plan_table(ACTIONS))
    console.print(report.outcome_table(OUTCOMES))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    for cell in ("eastus", "skip-home", "tags.env: dev → prod", "ReplicationProvisioningFailed", "Syncing", "12.3"):
        assert cell in out
