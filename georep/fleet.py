"""The fleet file: many registries rolled out from one template, and the fleet's aggregate report.

A platform team runs tens to hundreds of Premium registries that should look alike. Writing one plan per registry
invites drift between copies, so a fleet file holds one ``template`` (a plan without its ``registry`` section)
and a list of registries, each optionally with ``overrides`` deep-merged into the template (mappings merge,
lists replace) or with a whole ``plan_path`` of its own.

The fleet is validated as a whole before any child run starts: one bad member would otherwise leave the fleet
half rolled out, which is exactly what validating a plan as a whole avoids for regions. Every problem of every
member is collected, with field paths people can search the file for (``registries[3].regions[1].region``); a
problem inherited unchanged from the template is reported once, as ``template...``, not once per registry.

The aggregate (registry x region matrix and totals) is pure too, so the flow only turns rows into artifacts.
No Prefect here (tests/georep/test_layering.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from georep.model import ActionKind, RegionOutcome, RegistryInfo, RegistryRef, Result
from georep.planfile import (
    MAX_NODES,
    Plan,
    _names_a_file,
    _read,
    _too_big,
    _UniqueKeyLoader,
    load_plan,
    plan_hash,
)
from georep.report import Row, markdown_table
from georep.validation import (
    PlanError,
    Problem,
    check_plan,
    check_registry,
    check_registry_section,
    check_text,
    from_pydantic,
)

#: a fleet is dispatched as one child run per registry; past this, split the fleet (one file per business unit)
MAX_REGISTRIES = 1000
#: stands in for the registry when the template is checked alone: only its problems that members inherit count
_TEMPLATE_REGISTRY = {
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group": "template",
    "name": "template0",
}


class FleetError(PlanError):
    """A fleet refused before any child run: every problem of every member, never just the first."""

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"the fleet is invalid ({count} problem{'s' if count != 1 else ''}):"]
        lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ file model

#: a plan without ``registry``: derived from Plan so a new plan field is a template field without an edit here
PlanTemplate: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PlanTemplate",
    __config__=ConfigDict(frozen=True, extra="forbid"),
    **{name: (info.annotation, info) for name, info in Plan.model_fields.items() if name != "registry"},
)


class MemberEntry(BaseModel):
    """One ``registries`` item as written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subscription_id: str
    resource_group: str
    name: str
    overrides: dict[str, Any] | None = None
    plan_path: str | None = None

    @property
    def ref(self) -> RegistryRef:
        return RegistryRef(subscription_id=self.subscription_id, resource_group=self.resource_group, name=self.name)


class FleetMember(BaseModel):
    """A registry of the fleet and its fully validated plan. ``index`` is its position in ``registries``, so
    every later report can point back at the file."""

    model_config = ConfigDict(frozen=True)

    index: int
    ref: RegistryRef
    plan: Plan
    source: str = Field(description="template, overrides, or the plan file it came from")


class Fleet(BaseModel):
    model_config = ConfigDict(frozen=True)

    members: tuple[FleetMember, ...]


# --------------------------------------------------------------------------------------------------- loading


def load_fleet(path_or_text: str | Path, base: Path | None = None) -> Fleet:
    """Parse and validate a whole fleet: a file path (``Path``, or a one-line ``str`` naming a file) or the YAML
    text. A member's ``plan_path`` is relative to the fleet file's directory, or to ``base`` (default: the
    working directory) for inline text. Raises ``FleetError`` listing every problem found."""
    from_file = isinstance(path_or_text, Path) or _names_a_file(path_or_text)
    try:
        text = _read(path_or_text)
        _raise(_renamed(check_text(text)))
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except PlanError as exc:
        raise FleetError(_renamed(exc.problems)) from exc
    except yaml.YAMLError as exc:
        raise FleetError([Problem("fleet", "yaml", " ".join(str(exc).split()))]) from exc
    if _too_big(data):
        raise FleetError([Problem("fleet", "too_large", f"the document expands to more than {MAX_NODES} nodes")])
    if not isinstance(data, dict):
        raise FleetError([Problem("fleet", "type", f"a fleet is a YAML mapping, not {type(data).__name__}")])
    plans_dir = Path(path_or_text).resolve().parent if from_file else (base or Path.cwd())
    return _validate(data, plans_dir)


def _renamed(problems: Sequence[Problem]) -> list[Problem]:
    # the planfile helpers name the document "plan"; here it is the fleet file
    return [Problem("fleet", p.rule, p.message.replace("plan", "fleet")) if p.field == "plan" else p for p in problems]


def _raise(problems: Sequence[Problem]) -> None:
    if problems:
        raise FleetError(problems)


def _prefixed(prefix: str, problems: Iterable[Problem]) -> list[Problem]:
    return [Problem(f"{prefix}.{p.field}" if p.field else prefix, p.rule, p.message) for p in problems]


def _shape(model: type[BaseModel], data: Any, at: str) -> tuple[BaseModel | None, list[Problem]]:
    if "registry" in (data if isinstance(data, dict) else {}):
        rest = {k: v for k, v in data.items() if k != "registry"}
        model_or_none, problems = _shape(model, rest, at)
        problem = Problem(
            f"{at}.registry", "unknown_key", "the template names no registry: each registries[] entry does"
        )
        return model_or_none, [problem, *problems]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _prefixed(at, from_pydantic(exc))


def _validate(data: dict[str, Any], plans_dir: Path) -> Fleet:
    problems: list[Problem] = [
        Problem(str(key), "unknown_key", f"unknown key '{key}' (a fleet has template and registries)")
        for key in data
        if key not in ("template", "registries")
    ]
    raw_template = data.get("template") or {}
    template, template_problems = _shape(PlanTemplate, raw_template, "template")
    problems += template_problems
    raw_members = data.get("registries")
    if raw_members is None or raw_members == []:
        problems.append(Problem("registries", "empty", "the fleet lists no registries"))
        raise FleetError(problems)
    if not isinstance(raw_members, list):
        problems.append(Problem("registries", "type", f"a list of registries, not {type(raw_members).__name__}"))
        raise FleetError(problems)
    if len(raw_members) > MAX_REGISTRIES:
        # per-member checks on thousands of entries would bury the one message that matters
        problems.append(
            Problem("registries", "too_large", f"{len(raw_members)} registries; the limit is {MAX_REGISTRIES}")
        )
        raise FleetError(problems)

    entries: dict[int, MemberEntry] = {}
    for i, raw in enumerate(raw_members):
        at = f"registries[{i}]"
        try:
            entry = MemberEntry.model_validate(raw)
        except ValidationError as exc:
            problems += _prefixed(at, from_pydantic(exc))
            continue
        section_problems = check_registry_section(entry.ref, prefix=f"{at}.")
        problems += section_problems
        if entry.overrides is not None and entry.plan_path is not None:
            problems.append(
                Problem(f"{at}.plan_path", "conflict", "give overrides or plan_path, not both (a plan file is whole)")
            )
            continue
        if entry.overrides is not None:
            _, override_problems = _shape(PlanTemplate, entry.overrides, f"{at}.overrides")
            if override_problems:
                problems += override_problems
                continue
        if not section_problems:
            entries[i] = entry
    problems += _duplicates(entries)

    template_own = _template_problems(raw_template) if template is not None else set()
    inherited: dict[tuple[str, str, str], Problem] = {}
    members: list[FleetMember] = []
    for i, entry in entries.items():
        at = f"registries[{i}]"
        if entry.plan_path is not None:
            member, found = _from_plan_file(i, entry, plans_dir)
            problems += found
        elif template is not None:  # else the template's own shape problems are already reported
            member, found = _from_template(i, entry, raw_template)
            for p in found:
                key = (p.field, p.rule, p.message)
                top = re.split(r"[.\[]", p.field, maxsplit=1)[0]
                if key in template_own and top not in (entry.overrides or {}):
                    inherited.setdefault(key, Problem(f"template.{p.field}", p.rule, p.message))
                else:
                    problems.append(Problem(_member_field(at, p.field), p.rule, p.message))
        else:
            member = None
        if member is not None:
            members.append(member)
    problems += inherited.values()
    _raise(problems)
    return Fleet(members=tuple(members))


def _member_field(at: str, field: str) -> str:
    # the plan's registry section is the member's own entry: registry.name -> registries[3].name
    if field.startswith("registry."):
        return f"{at}.{field.removeprefix('registry.')}"
    return f"{at}.{field}" if field not in ("plan", "") else at


def _template_problems(raw_template: dict[str, Any]) -> set[tuple[str, str, str]]:
    plan = Plan.model_validate({**copy.deepcopy(raw_template), "registry": _TEMPLATE_REGISTRY})
    return {(p.field, p.rule, p.message) for p in check_plan(plan)}


def _duplicates(entries: Mapping[int, MemberEntry]) -> list[Problem]:
    """The same registry twice would run two rollouts of different intent on it; two registries of one name
    cannot both exist either (a registry name is its global DNS name, <name>.azurecr.io), and georep keys its
    artifacts by name."""
    problems: list[Problem] = []
    by_id: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for i, entry in entries.items():
        arm_id = str(entry.ref).lower()  # ARM ids are case-insensitive
        name = entry.name.lower()
        if arm_id in by_id:
            problems.append(
                Problem(
                    f"registries[{i}].name",
                    "duplicate",
                    f"'{entry.name}' is the same registry as registries[{by_id[arm_id]}]",
                )
            )
        elif name in by_name:
            problems.append(
                Problem(
                    f"registries[{i}].name",
                    "duplicate",
                    f"'{entry.name}' is also the name of registries[{by_name[name]}]: registry names are global "
                    "(<name>.azurecr.io), so both cannot exist",
                )
            )
        else:
            by_id[arm_id] = i
            by_name[name] = i
    return problems


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) is replaced: a region list that merged item by
    item could not drop a region."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _from_template(
    i: int, entry: MemberEntry, raw_template: dict[str, Any]
) -> tuple[FleetMember | None, list[Problem]]:
    merged = deep_merge(raw_template, entry.overrides or {})
    merged["registry"] = {
        "subscription_id": entry.subscription_id,
        "resource_group": entry.resource_group,
        "name": entry.name,
    }
    try:
        plan = Plan.model_validate(merged)
    except ValidationError as exc:  # both parts were fine alone, but the merge is not (e.g. a mapping over a list)
        return None, [Problem(p.field, p.rule, p.message) for p in from_pydantic(exc)]
    found = check_plan(plan)
    if found:
        return None, found
    return FleetMember(index=i, ref=entry.ref, plan=plan, source="overrides" if entry.overrides else "template"), []


def _from_plan_file(i: int, entry: MemberEntry, plans_dir: Path) -> tuple[FleetMember | None, list[Problem]]:
    at = f"registries[{i}]"
    assert entry.plan_path is not None
    path = Path(entry.plan_path)
    if not path.is_absolute():
        path = plans_dir / path
    if not path.is_file():
        return None, [Problem(f"{at}.plan_path", "exists", f"no plan file {path}")]
    try:
        plan = load_plan(path)
    except PlanError as exc:
        return None, [
            Problem(_member_field(at, p.field), p.rule, f"{entry.plan_path}: {p.message}") for p in exc.problems
        ]
    if str(plan.ref).lower() != str(entry.ref).lower():
        return None, [
            Problem(
                f"{at}.plan_path",
                "registry_mismatch",
                f"{entry.plan_path} is the plan of registry {plan.ref}, this entry names {entry.ref}",
            )
        ]
    return FleetMember(index=i, ref=entry.ref, plan=plan, source=entry.plan_path), []


# ------------------------------------------------------------------------------------------------ identity


def fleet_hash(fleet: Fleet) -> str:
    """A short, stable key for the fleet's artifacts and its children's idempotency: the same registries with
    the same intent hash the same whatever order or spelling the file uses."""
    canonical = sorted((str(m.ref).lower(), plan_hash(m.plan)) for m in fleet.members)
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def subscriptions(fleet: Fleet) -> list[str]:
    """The fleet's subscriptions, each once (subscription ids are case-insensitive), in file order."""
    seen: dict[str, str] = {}
    for m in fleet.members:
        seen.setdefault(m.ref.subscription_id.lower(), m.ref.subscription_id)
    return list(seen.values())


def plan_yaml(plan: Plan) -> str:
    """A member's plan as plan-file YAML for its child run. ``None`` fields are left out, not written as
    ``null``: "not said" is meaningful (an endpoint not said is never re-enabled), and must survive the trip."""
    return yaml.safe_dump(plan.model_dump(mode="json", exclude_none=True), sort_keys=False)


def member_rows(fleet: Fleet) -> list[Row]:
    """The fleet plan, one row per registry, for the plan artifact that is published before any child starts."""
    from georep.planfile import resolve_waves

    return [
        {
            "registry": m.ref.name,
            "subscription": m.ref.subscription_id,
            "resource group": m.ref.resource_group,
            "regions": ", ".join(w for wave in resolve_waves(m.plan) for w in wave),
            "waves": len(resolve_waves(m.plan)),
            "prune": m.plan.prune,
            "from": m.source,
            "plan hash": plan_hash(m.plan),
        }
        for m in fleet.members
    ]


# ------------------------------------------------------------------------------------------------ aggregate

COMPLETED = "COMPLETED"


class RegistryRun(BaseModel):
    """What one child run did to one registry: its final state and its regions' outcomes. A child that ended
    without outcomes (refused, crashed, cancelled, timed out) keeps its state and message, and counts as failed."""

    model_config = ConfigDict(frozen=True)

    ref: RegistryRef
    state: str
    message: str = ""
    outcomes: tuple[RegionOutcome, ...] = ()
    flow_run_id: str | None = None
    url: str | None = None

    @property
    def failed(self) -> bool:
        return self.state.upper() != COMPLETED or any(o.failed for o in self.outcomes)


class FleetTotals(BaseModel):
    model_config = ConfigDict(frozen=True)

    registries: int
    registries_ok: int
    registries_failed: int
    regions: Mapping[str, int]
    arm_requests: int


def _cell(o: RegionOutcome) -> str:
    if o.action is ActionKind.SKIP_HOME:
        return "home"
    return o.result.value


def matrix_regions(runs: Sequence[RegistryRun]) -> list[str]:
    return sorted({o.region for r in runs for o in r.outcomes})


def fleet_rows(runs: Sequence[RegistryRun]) -> list[Row]:
    """The registry x region matrix, one row per registry: a column per region (empty where the registry has
    no such replica in its plan), then its counts, its ARM requests and its child run's state and link."""
    regions = matrix_regions(runs)
    rows: list[Row] = []
    for run in runs:
        by_region = {o.region: o for o in run.outcomes}
        counts = Counter(o.result.value for o in run.outcomes if o.action is not ActionKind.SKIP_HOME)
        row: Row = {"registry": run.ref.name, "subscription": run.ref.subscription_id}
        row.update({region: _cell(by_region[region]) if region in by_region else "" for region in regions})
        row.update(
            {
                "succeeded": counts[Result.SUCCEEDED.value],
                "failed": counts[Result.FAILED.value],
                "unchanged": counts[Result.UNCHANGED.value],
                "ARM requests": sum(o.arm_requests for o in run.outcomes),
                "state": run.state.lower(),
                "run": f"[{run.state.lower()}]({run.url})" if run.url else "",
                "error": "" if not run.failed else _failure(run),
            }
        )
        rows.append(row)
    return rows


def _failure(run: RegistryRun) -> str:
    failed = [o for o in run.outcomes if o.failed]
    if failed:
        return ", ".join(f"{o.region} ({o.error_code or 'failed'})" for o in failed)
    return " ".join((run.message or run.state.lower()).split())[:300]


def fleet_totals(runs: Sequence[RegistryRun]) -> FleetTotals:
    regions = Counter(o.result.value for r in runs for o in r.outcomes if o.action is not ActionKind.SKIP_HOME)
    failed = sum(1 for r in runs if r.failed)
    return FleetTotals(
        registries=len(runs),
        registries_ok=len(runs) - failed,
        registries_failed=failed,
        regions=dict(sorted(regions.items())),
        arm_requests=sum(o.arm_requests for r in runs for o in r.outcomes),
    )


def fleet_markdown(runs: Sequence[RegistryRun], title: str) -> str:
    """Totals first (what an on-call person needs), then every failed registry with its reason, then the
    matrix."""
    totals = fleet_totals(runs)
    region_counts = ", ".join(f"{n} {k}" for k, n in totals.regions.items()) or "none"
    lines = [
        f"# {title}",
        "",
        f"**Registries:** {totals.registries}; {totals.registries_ok} ok, {totals.registries_failed} failed.",
        "",
        f"**Regions:** {region_counts}.",
        "",
        f"**ARM requests:** {totals.arm_requests}.",
        "",
    ]
    failed = [r for r in runs if r.failed]
    if failed:
        lines += [f"**Failed registries ({len(failed)}):**", ""]
        for r in failed:
            link = f" ([run]({r.url}))" if r.url else ""
            lines.append(f"- `{r.ref.name}` ({r.state.lower()}){link}: {_failure(r)}")
        lines.append("")
    columns = ["registry", *matrix_regions(runs), "succeeded", "failed", "unchanged", "ARM requests", "run"]
    rows = fleet_rows(runs)
    for row in rows:
        row["run"] = row["run"] or row["state"]
    lines.append(_markdown_with_links(rows, columns))
    return "\n".join(lines)


def _markdown_with_links(rows: Sequence[Row], columns: Sequence[str]) -> str:
    # report.markdown_table escapes cell text (a tag name may hold < >); the link cell is ours and must stay a link
    links = [row.get("run", "") for row in rows]
    table = markdown_table([{**row, "run": f"@@link{i}@@"} for i, row in enumerate(rows)], columns)
    for i, link in enumerate(links):
        table = table.replace(f"@@link{i}@@", str(link), 1)
    return table


_ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


def outcomes_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[RegionOutcome]:
    """A child's ``georep-result-<registry>`` table artifact back as outcomes: in deployments mode the child
    runs on another worker and its artifact is the only record of its regions the parent can read."""
    out: list[RegionOutcome] = []
    for row in rows:
        result = str(row.get("result", "")).split(" ")[0]
        error = str(row.get("error") or "")
        code, sep, message = error.partition(": ")
        if not (sep and _ERROR_CODE.match(code)):  # report._error writes "code: message", or either alone
            code, message = (error, "") if _ERROR_CODE.match(error) else ("", error)
        out.append(
            RegionOutcome(
                region=str(row["region"]),
                replication=str(row.get("replication") or row["region"]),
                action=ActionKind(str(row.get("action", "noop"))),
                result=Result(result),
                provisioning_state=str(row.get("provisioningState") or "") or None,
                display_status=str(row.get("displayStatus") or "") or None,
                seconds=float(row.get("seconds") or 0.0),
                arm_requests=int(row.get("ARM requests") or 0),
                error_code=code or None,
                error_message=message or None,
                resumed="(resumed)" in str(row.get("result", "")),
            )
        )
    return out


__all__ = [
    "MAX_REGISTRIES",
    "Fleet",
    "FleetError",
    "FleetMember",
    "FleetTotals",
    "RegistryRun",
    "deep_merge",
    "fleet_hash",
    "fleet_markdown",
    "fleet_rows",
    "fleet_totals",
    "load_fleet",
    "member_rows",
    "outcomes_from_rows",
    "plan_yaml",
    "subscriptions",
]


def registry_problems(member: FleetMember, info: RegistryInfo | None) -> list[Problem]:
    """``check_registry`` for one member, with paths into the fleet file (``registries[3].name [premium]``): what
    a fleet's pre-flight read of each registry can refuse before any child starts."""
    at = f"registries[{member.index}]"
    out = []
    for problem in check_registry(member.plan, info):
        field = problem.field.removeprefix("registry.")
        out.append(Problem(f"{at}.{field}", problem.rule, problem.message))
    return out
