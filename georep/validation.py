"""Every check that can refuse a plan, run before the first ARM write.

A rollout that fails half-way because region 7 of 12 was misspelt leaves a registry in a state nobody planned,
so all the rules live here and run up front: the static ones on the plan alone, the registry ones against what
``observe`` read. Every problem names a dotted field path (``regions[2].region``) and a rule id, and all of them
are reported together so one edit fixes the file.
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from georep import regions
from georep.model import ObservedReplica, RegistryInfo, RegistryRef

if TYPE_CHECKING:  # planfile imports this module to validate what it loads
    from georep.planfile import Plan, RegionEntry, RegistrySection

MAX_REGIONS = 200
MAX_PLAN_BYTES = 1024 * 1024
MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
TAG_NAME_FORBIDDEN = frozenset("<>%&\\?/")
#: "all remaining regions" in a wave
WILDCARD = "*"

REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")


@dataclass(frozen=True)
class Problem:
    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field} [{self.rule}]: {self.message}"


class PlanError(Exception):
    """Raised with *all* the problems found, never just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"the plan is invalid ({count} problem{'s' if count != 1 else ''}):"]
        lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


def raise_for(problems: Sequence[Problem]) -> None:
    if problems:
        raise PlanError(problems)


def field_path(loc: Sequence[int | str]) -> str:
    """pydantic's ``('regions', 2, 'region')`` as ``regions[2].region``: the form people search their YAML for."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "plan"


_PYDANTIC_RULES = {"extra_forbidden": "unknown_key", "missing": "required"}


def from_pydantic(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if isinstance(p, (int, str))]
        rule = _PYDANTIC_RULES.get(err["type"], err["type"])
        if rule == "unknown_key":
            message = f"unknown key '{loc[-1]}'" if loc else "unknown key"
        else:
            message = f"{err['msg']} (got {err['input']!r})" if rule != "required" else "is required"
        problems.append(Problem(field_path(loc), rule, message))
    return problems


def check_text(text: str) -> list[Problem]:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_PLAN_BYTES:
        return [Problem("plan", "too_large", f"plan text is {size} bytes; the limit is {MAX_PLAN_BYTES}")]
    return []


# ---------------------------------------------------------------------------------------------- static checks


def check_plan(plan: Plan) -> list[Problem]:
    """The rules that need nothing but the plan. The returned list is empty for a valid plan."""
    problems = _registry_section(plan)
    if len(plan.regions) > MAX_REGIONS:
        # per-region checks on thousands of entries would bury the one message that matters
        problems.append(Problem("regions", "too_large", f"{len(plan.regions)} regions; the limit is {MAX_REGIONS}"))
        return problems
    if not plan.regions and not plan.prune:
        problems.append(
            Problem("regions", "empty", "no regions and prune is off: the plan would do nothing; list regions")
        )
    problems += _tags("defaults.tags", plan.defaults.tags, None)
    problems += _tag_name("protection_tag", plan.protection_tag)
    problems += _region_entries(plan)
    problems += _waves(plan)
    return problems


def _registry_section(plan: Plan) -> list[Problem]:
    return check_registry_section(plan.registry)


def check_registry_section(reg: RegistrySection | RegistryRef, prefix: str = "registry.") -> list[Problem]:
    """The registry's coordinates alone: flows that take them as parameters (cleanup, status) check them
    before any ARM call, with ``prefix=""`` so the problems name the parameters."""
    problems = []
    if not REGISTRY_NAME.match(reg.name):
        problems.append(Problem(f"{prefix}name", "pattern", f"'{reg.name}' must be 5-50 letters or digits"))
    if not RESOURCE_GROUP.match(reg.resource_group) or reg.resource_group.endswith("."):
        problems.append(
            Problem(
                f"{prefix}resource_group",
                "pattern",
                f"'{reg.resource_group}' must be 1-90 of letters, digits, - _ . ( ) and not end in '.'",
            )
        )
    try:
        uuid.UUID(reg.subscription_id)
        valid_uuid = len(reg.subscription_id) == 36
    except ValueError:
        valid_uuid = False
    if not valid_uuid:
        problems.append(Problem(f"{prefix}subscription_id", "uuid", f"'{reg.subscription_id}' is not a UUID"))
    return problems


def _region_entries(plan: Plan) -> list[Problem]:
    problems: list[Problem] = []
    seen_regions: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for i, entry in enumerate(plan.regions):
        at = f"regions[{i}]"
        region = regions.normalize(entry.region)
        if not regions.is_known(region):
            hint = difflib.get_close_matches(region, list(regions.DISPLAY_NAMES), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(
                Problem(f"{at}.region", "known_region", f"'{entry.region}' is not an Azure region{suggestion}")
            )
        elif regions.is_restricted(region):
            problems.append(
                Problem(
                    f"{at}.region",
                    "restricted_region",
                    f"'{region}' is access-restricted: the subscription needs an approved access request first",
                )
            )
        if region in seen_regions:
            problems.append(
                Problem(
                    f"{at}.region",
                    "duplicate",
                    f"'{entry.region}' is the same region as regions[{seen_regions[region]}]",
                )
            )
        else:
            seen_regions[region] = i
        zr = plan.defaults.zone_redundancy if entry.zone_redundancy is None else entry.zone_redundancy
        if zr and regions.is_known(region) and not regions.has_zones(region):
            origin = " (from defaults)" if entry.zone_redundancy is None else ""
            problems.append(
                Problem(
                    f"{at}.zone_redundancy",
                    "zones",
                    f"zone_redundancy is true{origin} but '{region}' has no availability zones; set it to false here",
                )
            )
        name = entry.name if entry.name is not None else region
        if entry.name is not None and not REGISTRY_NAME.match(entry.name):
            problems.append(Problem(f"{at}.name", "pattern", f"'{entry.name}' must be 5-50 letters or digits"))
        key = name.lower()  # ARM resource names are case-insensitive
        if key in seen_names:
            problems.append(
                Problem(f"{at}.name", "duplicate", f"replica name '{name}' is also used by regions[{seen_names[key]}]")
            )
        else:
            seen_names[key] = i
        problems += _tags(f"{at}.tags", entry.tags, plan.defaults.tags)
    return problems


def _tags(at: str, tags: dict[str, str], inherited: dict[str, str] | None) -> list[Problem]:
    problems = []
    merged = {**(inherited or {}), **tags}
    if len(merged) > MAX_TAGS:
        origin = " (defaults included)" if inherited else ""
        problems.append(Problem(at, "tag_count", f"{len(merged)} tags{origin}; Azure allows {MAX_TAGS}"))
    for name, value in tags.items():
        problems += _tag_name(_tag_field(at, name), name)
        if len(value) > MAX_TAG_VALUE:
            problems.append(
                Problem(
                    _tag_field(at, name), "tag_value", f"value is {len(value)} characters; the limit is {MAX_TAG_VALUE}"
                )
            )
    return problems


_PLAIN_TAG = re.compile(r"^[-\w.]{1,40}$")


def _tag_field(at: str, name: str) -> str:
    """``tags.env`` for ordinary names; quoted (and cut short) when the name itself is the problem."""
    if _PLAIN_TAG.match(name):
        return f"{at}.{name}"
    shown = name if len(name) <= 40 else name[:40] + "..."
    return f"{at}[{json.dumps(shown)}]"


def _tag_name(at: str, name: str) -> list[Problem]:
    if not 1 <= len(name) <= MAX_TAG_NAME:
        return [Problem(at, "tag_name", f"tag name must be 1-{MAX_TAG_NAME} characters (got {len(name)})")]
    bad = sorted(TAG_NAME_FORBIDDEN.intersection(name))
    if bad:
        return [Problem(at, "tag_name", f"tag name '{name}' contains {' '.join(bad)}, which Azure forbids")]
    return []


def _waves(plan: Plan) -> list[Problem]:
    if plan.waves is None:
        return []
    problems: list[Problem] = []
    planned = {regions.normalize(e.region) for e in plan.regions}
    placed: dict[str, str] = {}
    wildcard = False
    for w, wave in enumerate(plan.waves):
        if not wave:
            problems.append(Problem(f"waves[{w}]", "wave_empty", "a wave must list at least one region or '*'"))
        for j, item in enumerate(wave):
            at = f"waves[{w}][{j}]"
            region = regions.normalize(item)
            if item.strip() == WILDCARD:
                if wildcard:
                    problems.append(Problem(at, "wave_duplicate", "'*' may appear only once"))
                wildcard = True
                continue
            if region not in planned:
                problems.append(Problem(at, "wave_region", f"'{item}' is not one of the plan's regions"))
            elif region in placed:
                problems.append(Problem(at, "wave_duplicate", f"'{item}' is already in {placed[region]}"))
            else:
                placed[region] = at
    missing = sorted(planned - set(placed))
    if missing and not wildcard:
        problems.append(
            Problem(
                "waves",
                "wave_coverage",
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} in no wave; add them or a '*' wave",
            )
        )
    return problems


# -------------------------------------------------------------------------------------------- registry checks


def check_registry(plan: Plan, info: RegistryInfo | None, observed: Sequence[ObservedReplica] = ()) -> list[Problem]:
    """Rules that need what ``observe`` read. ``info=None`` means the registry was not found."""
    ref = plan.ref
    if info is None:
        return [
            Problem(
                "registry.name",
                "exists",
                f"registry '{ref.name}' not found in resource group '{ref.resource_group}' "
                f"of subscription {ref.subscription_id}",
            )
        ]
    problems = []
    if info.sku.lower() != "premium":
        problems.append(
            Problem("registry.name", "premium", f"'{ref.name}' is {info.sku}; geo-replication needs the Premium SKU")
        )
    home = regions.normalize(info.home)
    home_replica = next((o for o in observed if o.is_home or regions.normalize(o.region) == home), None)
    for i, entry in enumerate(plan.regions):
        at = f"regions[{i}]"
        name = entry.name if entry.name is not None else regions.normalize(entry.region)
        if regions.normalize(entry.region) == home:
            problems += _home_entry(at, entry, home, home_replica)
        elif home_replica is not None and name.lower() == home_replica.name.lower():
            problems.append(
                Problem(f"{at}.name", "name_conflict", f"'{name}' is the name of the home replica (in {home})")
            )
    return problems


def _home_entry(at: str, entry: RegionEntry, home: str, home_replica: ObservedReplica | None) -> list[Problem]:
    """The home replica comes with the registry and goes only with it, so a plan may PATCH it (tags, endpoint)
    but never ask for anything that needs a delete + create. Defaults do not apply here: they describe replicas
    georep creates, and georep never creates the home one."""
    if home_replica is None:
        return []
    problems = []
    if entry.zone_redundancy is not None and entry.zone_redundancy != home_replica.zone_redundancy:
        problems.append(
            Problem(
                f"{at}.zone_redundancy",
                "home_region",
                f"'{home}' is the home region: its zone redundancy ({home_replica.zone_redundancy}) cannot be changed",
            )
        )
    if entry.name is not None and entry.name.lower() != home_replica.name.lower():
        problems.append(
            Problem(
                f"{at}.name",
                "home_region",
                f"'{home}' is the home region: its replica is '{home_replica.name}' and cannot be renamed",
            )
        )
    return problems


def validate_options(prune: bool, confirm: bool, dry_run: bool) -> None:
    """A prune deletes replicas (and the images' regional copies): a real one needs an explicit confirmation."""
    if prune and not dry_run and not confirm:
        raise PlanError(
            [Problem("prune", "confirm", "a prune deletes replicas not in the plan: pass confirm, or run a dry run")]
        )
