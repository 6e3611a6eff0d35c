"""Plans and outcomes as people read them: rich tables for a terminal, GitHub markdown for artifacts and PRs,
and plain rows for Prefect table artifacts.

Every renderer goes through the same rows, so the terminal, the markdown and the artifact never disagree about a
cell. No Prefect here: ``tasks/`` turns these rows and strings into artifacts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from georep.model import Action, RegionOutcome

PLAN_COLUMNS = ("region", "replication", "action", "changes", "reason")
OUTCOME_COLUMNS = (
    "region",
    "action",
    "result",
    "provisioningState",
    "displayStatus",
    "seconds",
    "ARM requests",
    "error",
)

Row = dict[str, Any]


def plan_rows(actions: Sequence[Action]) -> list[Row]:
    return [
        {
            "region": a.region,
            "replication": a.replication,
            "action": a.kind.value,
            "changes": "; ".join(a.changes),
            "reason": a.reason,
        }
        for a in actions
    ]


def _error(o: RegionOutcome) -> str:
    if o.error_code and o.error_message:
        return f"{o.error_code}: {o.error_message}"
    return o.error_code or o.error_message or ""


def outcome_rows(outcomes: Sequence[RegionOutcome]) -> list[Row]:
    return [
        {
            "region": o.region,
            "action": o.action.value,
            "result": o.result.value + (" (resumed)" if o.resumed else ""),
            "provisioningState": o.provisioning_state or "",
            "displayStatus": o.display_status or "",
            "seconds": round(o.seconds, 1),
            "ARM requests": o.arm_requests,
            "error": _error(o),
        }
        for o in outcomes
    ]


def as_rows(items: Sequence[Action] | Sequence[RegionOutcome]) -> list[Row]:
    """Rows for a Prefect table artifact, from either a plan or a list of outcomes."""
    if not items:
        return []
    if all(isinstance(i, Action) for i in items):
        return plan_rows([i for i in items if isinstance(i, Action)])
    if all(isinstance(i, RegionOutcome) for i in items):
        return outcome_rows([i for i in items if isinstance(i, RegionOutcome)])
    raise TypeError("as_rows takes a list of Action or a list of RegionOutcome, not a mix")


# ------------------------------------------------------------------------------------------------ markdown


def _cell(value: Any) -> str:
    """One GitHub table cell: a ``|`` or a newline would end the cell or the row, ``<`` could open an HTML tag
    (tag-name errors quote ``<>``), and leading spaces on a line would be read as indentation."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(part.strip() for part in text.splitlines()) if text else ""


def markdown_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines.extend("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def plan_markdown(actions: Sequence[Action]) -> str:
    rows = plan_rows(actions)
    for row, action in zip(rows, actions, strict=True):
        row["changes"] = "\n".join(action.changes)  # one change per line in a cell
    return markdown_table(rows, PLAN_COLUMNS)


def outcome_markdown(outcomes: Sequence[RegionOutcome]) -> str:
    return markdown_table(outcome_rows(outcomes), OUTCOME_COLUMNS)


def plan_summary(actions: Sequence[Action]) -> str:
    """A short markdown paragraph: what the plan would do, counted by action."""
    if not actions:
        return "**Plan:** nothing to do (no regions).\n"
    counts = Counter(a.kind.value for a in actions)
    writes = sum(1 for a in actions if a.kind.writes)
    destructive = [a for a in actions if a.kind.destructive]
    parts = [f"**Plan:** {len(actions)} regions, {writes} with writes: " + _counts(counts) + "."]
    if destructive:
        parts.append("**Destructive:** " + ", ".join(f"{a.region} ({a.kind.value})" for a in destructive) + ".")
    return "\n\n".join(parts) + "\n"


def outcome_summary(outcomes: Sequence[RegionOutcome]) -> str:
    """A short markdown summary: counts per action and per result, then every failure with its ARM error."""
    if not outcomes:
        return "**Result:** no regions were processed.\n"
    by_action = Counter(o.action.value for o in outcomes)
    by_result = Counter(o.result.value for o in outcomes)
    failures = [o for o in outcomes if o.failed]
    lines = [
        f"**Result:** {len(outcomes)} regions; {_counts(by_result)}.",
        "",
        f"**Actions:** {_counts(by_action)}.",
    ]
    if failures:
        lines += ["", f"**Failures ({len(failures)}):**", ""]
        for o in failures:
            code = o.error_code or "unknown error"
            message = " ".join((o.error_message or "no message").split())
            lines.append(f"- `{o.region}` ({o.action.value} `{o.replication}`): **{code}**: {message}")
    return "\n".join(lines) + "\n"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {key}" for key, n in sorted(counter.items()))


# ---------------------------------------------------------------------------------------------------- rich

_ACTION_STYLE = {
    "create": "green",
    "update": "yellow",
    "recreate": "bold red",
    "replace": "bold red",
    "delete": "bold red",
    "wait": "cyan",
    "skip-home": "dim",
    "noop": "dim",
}
_RESULT_STYLE = {"succeeded": "green", "failed": "bold red", "rolled-back": "magenta", "dry-run": "cyan"}


def _table(title: str, columns: Sequence[str], rows: Sequence[Row], style_key: str, styles: dict[str, str]) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in ("seconds", "ARM requests") else "left")
    for row in rows:
        style = styles.get(str(row.get(style_key, "")).split(" ")[0])
        table.add_row(*(str(row.get(c, "")) for c in columns), style=style)
    return table


def plan_table(actions: Sequence[Action], title: str = "Plan") -> Table:
    rows = plan_rows(actions)
    for row, action in zip(rows, actions, strict=True):
        row["changes"] = "\n".join(action.changes)
    return _table(title, PLAN_COLUMNS, rows, "action", _ACTION_STYLE)


def outcome_table(outcomes: Sequence[RegionOutcome], title: str = "Result") -> Table:
    return _table(title, OUTCOME_COLUMNS, outcome_rows(outcomes), "result", _RESULT_STYLE)
