"""Which replicas a cleanup removes, and why every other one stays: a pure decision, made before any write.

The seed's "delete replicas" job deleted whatever it was pointed at. Here a replica is removed only when it
matches **every** criterion given (criteria narrow, never widen, a deletion), and never when it is the home
replica or carries the protection tag, whatever the criteria say. The criteria:

* ``keep``: regions to keep (a keep list and/or a plan's regions): replicas *outside* it match;
* ``tags``: ``key=value`` pairs, all of which the replica's tags must carry;
* ``regions``: replicas *in* these regions match.

A selection with no criterion is refused: "remove everything but home" must be said explicitly (for example with
a keep list naming the regions to keep). Region names are checked against the known regions, because a typo in a
keep list would otherwise select the misspelt region's replica for deletion.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from georep import regions
from georep.model import ObservedReplica, RegionOutcome, RegistryInfo, Result
from georep.planfile import DEFAULT_PROTECTION_TAG
from georep.validation import PlanError, Problem, raise_for

TRANSITIONAL = frozenset({"creating", "updating", "deleting"})


class Decision(StrEnum):
    REMOVE = "remove"
    SKIP_HOME = "skip-home"
    SKIP_PROTECTED = "skip-protected"
    SKIP_KEPT = "skip-kept"
    SKIP_NOT_MATCHED = "skip-not-matched"
    SKIP_BUSY = "skip-busy"


class Selection(BaseModel):
    """The criteria, validated. ``keep=None`` means "no keep criterion" (an empty set would select everything)."""

    model_config = ConfigDict(frozen=True)

    keep: frozenset[str] | None = None
    keep_origin: str = "keep list"
    tags: dict[str, str] = Field(default_factory=dict)
    regions: frozenset[str] | None = None
    protection_tags: frozenset[str] = frozenset({DEFAULT_PROTECTION_TAG})

    @property
    def has_criteria(self) -> bool:
        return self.keep is not None or bool(self.tags) or self.regions is not None


class Choice(BaseModel):
    """One observed replica and what the cleanup does with it."""

    model_config = ConfigDict(frozen=True)

    region: str
    replication: str
    decision: Decision
    reason: str
    observed: ObservedReplica

    @property
    def remove(self) -> bool:
        return self.decision is Decision.REMOVE


# ------------------------------------------------------------------------------------------------ inputs


def parse_tags(items: Iterable[str], field: str = "match_tags") -> dict[str, str]:
    """``["env=staging", "team=x"]`` as a mapping. Both halves are required: ``env`` alone or ``=x`` would match
    more than the person meant."""
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for i, item in enumerate(items):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            problems.append(Problem(f"{field}[{i}]", "key_value", f"'{item}' is not key=value"))
        elif key in out and out[key] != value:
            problems.append(Problem(f"{field}[{i}]", "duplicate", f"tag '{key}' is already matched as {out[key]}"))
        else:
            out[key] = value
    raise_for(problems)
    return out


def region_set(items: Iterable[str], field: str) -> tuple[frozenset[str], list[Problem]]:
    """Normalized regions, and a problem for each name that is no Azure region."""
    found: set[str] = set()
    problems: list[Problem] = []
    for i, item in enumerate(items):
        region = regions.normalize(item)
        if not regions.is_known(region):
            hint = difflib.get_close_matches(region, list(regions.DISPLAY_NAMES), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(Problem(f"{field}[{i}]", "known_region", f"'{item}' is not an Azure region{suggestion}"))
        else:
            found.add(region)
    return frozenset(found), problems


def selection(
    *,
    keep_regions: Sequence[str] | None = None,
    plan_regions: Sequence[str] | None = None,
    match_tags: Sequence[str] = (),
    in_regions: Sequence[str] | None = None,
    extra_protection_tag: str | None = None,
) -> Selection:
    """Validate the criteria as people give them (lists of strings) and build a ``Selection``. ``plan_regions``
    are a keep plan's (already normalized) regions; they join the keep list. Raises ``PlanError`` with every
    problem."""
    problems: list[Problem] = []
    keep: frozenset[str] | None = None
    origins: list[str] = []
    if keep_regions is not None:
        keep, found = region_set(keep_regions, "keep_regions")
        problems += found
        origins.append("keep list")
    if plan_regions is not None:
        keep = (keep or frozenset()) | frozenset(regions.normalize(r) for r in plan_regions)
        origins.append("keep plan")
    where: frozenset[str] | None = None
    if in_regions is not None:
        where, found = region_set(in_regions, "regions")
        problems += found
    try:
        tags = parse_tags(match_tags)
    except PlanError as exc:
        problems += exc.problems
        tags = {}
    raise_for(problems)
    protection = {DEFAULT_PROTECTION_TAG}
    if extra_protection_tag:
        protection.add(extra_protection_tag)
    chosen = Selection(
        keep=keep,
        keep_origin=" and ".join(origins) or "keep list",
        tags=tags,
        regions=where,
        protection_tags=frozenset(protection),
    )
    if not chosen.has_criteria:
        raise PlanError(
            [
                Problem(
                    "selection",
                    "required",
                    "give at least one criterion (keep_regions, a keep plan, match_tags or regions): "
                    "a cleanup never selects every replica implicitly",
                )
            ]
        )
    return chosen


# ------------------------------------------------------------------------------------------------ decision


def _protected_by(sel: Selection, tags: Mapping[str, str]) -> str | None:
    for tag in sorted(sel.protection_tags):
        if tags.get(tag, "").strip().lower() == "true":
            return tag
    return None


def _decide(sel: Selection, home: str, obs: ObservedReplica) -> tuple[Decision, str]:
    region = regions.normalize(obs.region)
    if obs.is_home or region == home:
        return Decision.SKIP_HOME, "home region: its replica comes and goes with the registry; never deleted"
    tag = _protected_by(sel, obs.tags)
    if tag is not None:
        return Decision.SKIP_PROTECTED, f"protected ({tag}=true)"
    if sel.keep is not None and region in sel.keep:
        return Decision.SKIP_KEPT, f"kept: {region} is in the {sel.keep_origin}"
    missing = [
        f"{k}={v} (has {obs.tags[k]})" if k in obs.tags else f"{k}={v} (no such tag)"
        for k, v in sorted(sel.tags.items())
        if obs.tags.get(k) != v
    ]
    if missing:
        return Decision.SKIP_NOT_MATCHED, "tags do not match: " + ", ".join(missing)
    if sel.regions is not None and region not in sel.regions:
        return Decision.SKIP_NOT_MATCHED, f"{region} is not in the region list"
    if obs.provisioning_state.strip().lower() in TRANSITIONAL:
        return Decision.SKIP_BUSY, f"replica is {obs.provisioning_state}; left alone until it settles"
    because = []
    if sel.keep is not None:
        because.append(f"not in the {sel.keep_origin}")
    if sel.tags:
        because.append("tags " + ", ".join(f"{k}={v}" for k, v in sorted(sel.tags.items())))
    if sel.regions is not None:
        because.append("in the region list")
    return Decision.REMOVE, "selected: " + "; ".join(because)


def select(info: RegistryInfo, observed: Sequence[ObservedReplica], sel: Selection) -> list[Choice]:
    """One choice per observed replica, sorted by region. Pure: the dry run and the real run decide alike."""
    home = regions.normalize(info.home)
    out = []
    for obs in sorted(observed, key=lambda o: (regions.normalize(o.region), o.name.lower())):
        decision, reason = _decide(sel, home, obs)
        out.append(
            Choice(
                region=regions.normalize(obs.region),
                replication=obs.name,
                decision=decision,
                reason=reason,
                observed=obs,
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ report

COLUMNS = ("region", "replication", "decision", "reason", "result", "seconds", "ARM requests", "error")


def result_of(choice: Choice, outcome: RegionOutcome | None) -> str:
    """``removed`` / ``would-remove`` / ``failed`` for a selected replica, ``skipped`` for the others."""
    if not choice.remove:
        return "skipped"
    if outcome is None:
        return "not run"
    if outcome.result is Result.DRY_RUN:
        return "would-remove"
    if outcome.result is Result.SUCCEEDED:
        return "removed"
    return outcome.result.value


def rows(choices: Sequence[Choice], outcomes: Sequence[RegionOutcome]) -> list[dict[str, Any]]:
    """The cleanup table: every observed replica, whether it was touched or not."""
    by_name = {o.replication.lower(): o for o in outcomes}
    out = []
    for c in choices:
        o = by_name.get(c.replication.lower()) if c.remove else None
        error = ""
        if o is not None and o.failed:
            error = ": ".join(p for p in (o.error_code, o.error_message) if p)
        out.append(
            {
                "region": c.region,
                "replication": c.replication,
                "decision": c.decision.value,
                "reason": c.reason,
                "result": result_of(c, o),
                "seconds": round(o.seconds, 1) if o else 0.0,
                "ARM requests": o.arm_requests if o else 0,
                "error": error,
            }
        )
    return out


def summary(table: Sequence[Mapping[str, Any]], dry_run: bool) -> str:
    """A short markdown paragraph: counts by result and by decision, then the failures."""
    if not table:
        return "**Cleanup:** the registry has no replicas.\n"
    by_result = Counter(str(r["result"]) for r in table)
    by_decision = Counter(str(r["decision"]) for r in table)
    lines = [
        f"**Cleanup{' (dry run)' if dry_run else ''}:** {len(table)} replicas; "
        + ", ".join(f"{n} {k}" for k, n in sorted(by_result.items()))
        + ".",
        "",
        "**Decisions:** " + ", ".join(f"{n} {k}" for k, n in sorted(by_decision.items())) + ".",
    ]
    failed = [r for r in table if r["result"] == "failed"]
    if failed:
        lines += ["", f"**Failures ({len(failed)}):**", ""]
        lines += [f"- `{r['region']}` (`{r['replication']}`): {r['error'] or 'unknown error'}" for r in failed]
    return "\n".join(lines) + "\n"
