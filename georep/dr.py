"""A disaster-recovery layout as an ordinary georep plan: primary regions serve, DR regions stand by.

DR setup is not a second engine: it is a plan built from two region lists, so it goes through the same
validation, diff, checkpoints and report as any rollout, and ``georep plan`` can show it. The tiers differ in
what costs money and what serves traffic:

* primary: zone-redundant, endpoint enabled (in global routing), tagged ``dr-tier: primary``;
* DR: no zone redundancy, endpoint disabled (the replica syncs but takes no traffic until failover), tagged
  ``dr-tier: dr``.

Both endpoint values are written on the region entries, because only an explicit ``region_endpoint_enabled``
changes the endpoint of an existing replica (a primary whose endpoint someone disabled is switched back on, a DR
replica's is switched off). Nothing outside the two lists is touched: removing replicas is the cleanup flow's job.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from georep import regions
from georep.planfile import DEFAULT_PROTECTION_TAG, Defaults, Plan, RegionEntry, RegistrySection
from georep.validation import PlanError, Problem, check_plan, from_pydantic, raise_for

DR_TIER_TAG = "dr-tier"
PRIMARY = "primary"
DR = "dr"


def check_tiers(primary_regions: Sequence[str], dr_regions: Sequence[str]) -> list[Problem]:
    """Problems with the two lists, named after the parameters a person typed (``dr_regions[1]``) rather than
    the ``regions[5]`` of the plan built from them."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    if not primary_regions:
        problems.append(Problem("primary_regions", "empty", "a DR layout needs at least one primary region"))
    for field, items in (("primary_regions", primary_regions), ("dr_regions", dr_regions)):
        for i, item in enumerate(items):
            at = f"{field}[{i}]"
            region = regions.normalize(item)
            if not regions.is_known(region):
                hint = difflib.get_close_matches(region, list(regions.DISPLAY_NAMES), n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                problems.append(Problem(at, "known_region", f"'{item}' is not an Azure region{suggestion}"))
                continue
            if region in seen:
                problems.append(Problem(at, "duplicate", f"'{item}' is already listed as {seen[region]}"))
                continue
            seen[region] = at
            if field == "primary_regions" and not regions.has_zones(region):
                problems.append(
                    Problem(
                        at,
                        "zones",
                        f"'{region}' has no availability zones, so it cannot be a zone-redundant primary; "
                        "make it a DR region or pick a region with zones",
                    )
                )
    return problems


def dr_plan(
    registry: RegistrySection,
    primary_regions: Sequence[str],
    dr_regions: Sequence[str],
    *,
    tags: Mapping[str, str] | None = None,
    failure_budget: int = 0,
    lro_deadline_seconds: float = 1800,
    protection_tag: str = DEFAULT_PROTECTION_TAG,
) -> Plan:
    """The plan for a DR layout. Pure; raises ``PlanError`` with every problem of the lists and the plan.

    Zone redundancy of the primaries comes from the plan's *defaults*, not from each entry: defaults never apply
    to the home replica, so naming the home region as a primary stays valid (its zone redundancy came with the
    registry and cannot change), while its endpoint and tier tag are still managed. DR entries say
    ``zone_redundancy: false`` themselves. Primaries form the first wave: serving capacity is in place before
    the standby regions are touched. ``prune`` is off: a DR setup never deletes.
    """
    raise_for(check_tiers(primary_regions, dr_regions))
    entries = [
        RegionEntry(region=r, region_endpoint_enabled=True, tags={DR_TIER_TAG: PRIMARY}) for r in primary_regions
    ] + [
        RegionEntry(region=r, zone_redundancy=False, region_endpoint_enabled=False, tags={DR_TIER_TAG: DR})
        for r in dr_regions
    ]
    waves = [[regions.normalize(r) for r in primary_regions]]
    if dr_regions:
        waves.append([regions.normalize(r) for r in dr_regions])
    try:
        plan = Plan(
            registry=registry,
            defaults=Defaults(zone_redundancy=True, region_endpoint_enabled=True, tags=dict(tags or {})),
            regions=entries,
            waves=waves,
            failure_budget=failure_budget,
            lro_deadline_seconds=lro_deadline_seconds,
            allow_replace=False,
            prune=False,
            protection_tag=protection_tag,
        )
    except ValidationError as exc:  # a negative failure budget, say
        raise PlanError(from_pydantic(exc)) from exc
    raise_for(check_plan(plan))
    return plan
