"""The plan file as people write it: strict pydantic models loaded from YAML, and what the plan asks for
(desired replicas, resolved waves, its hash) before any registry is looked at.

The models only know the *shape* of a plan (types, unknown keys, defaults); whether the values make sense for
Azure is ``georep.validation``'s job, run by ``load_plan`` so that a ``Plan`` in hand is a valid one. What the
plan means for a live registry is ``georep.plan.diff``'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from georep import regions
from georep.model import Action, RegionOutcome, RegistryRef, ReplicaSpec
from georep.validation import WILDCARD, PlanError, Problem, check_plan, check_text, from_pydantic, raise_for

DEFAULT_PROTECTION_TAG = "georep-protected"


class _Strict(BaseModel):
    # forbid: a misspelt key ("zone_redundant") silently ignored is worse than a refused plan
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegistrySection(_Strict):
    subscription_id: str
    resource_group: str
    name: str

    def ref(self) -> RegistryRef:
        return RegistryRef(subscription_id=self.subscription_id, resource_group=self.resource_group, name=self.name)


class Defaults(_Strict):
    zone_redundancy: bool = False
    region_endpoint_enabled: bool = True
    tags: dict[str, str] = Field(default_factory=dict)


class RegionEntry(_Strict):
    """One ``regions`` item. Optional fields stay ``None`` when absent, because "not said" and "said the default"
    differ: an implicit ``region_endpoint_enabled`` never re-enables routing, an explicit ``true`` does."""

    region: str
    name: str | None = None
    zone_redundancy: bool | None = None
    region_endpoint_enabled: bool | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _bare_string(cls, data: Any) -> Any:
        # `- westeurope` is the common case; spelling it `- region: westeurope` every time is noise
        if isinstance(data, str):
            return {"region": data}
        return data


class Plan(_Strict):
    registry: RegistrySection
    defaults: Defaults = Field(default_factory=Defaults)
    regions: list[RegionEntry] = Field(default_factory=list)
    waves: list[list[str]] | None = None
    failure_budget: int = Field(0, ge=0)
    lro_deadline_seconds: float = Field(1800, gt=0)
    allow_replace: bool = False
    prune: bool = False
    protection_tag: str = Field(DEFAULT_PROTECTION_TAG, min_length=1)

    @property
    def ref(self) -> RegistryRef:
        return self.registry.ref()


#: a YAML alias bomb is a few hundred bytes; bound the expanded document, not only the text
MAX_NODES = 100_000


# -------------------------------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML keeps the last one silently, so two ``prune:`` lines
    would decide a delete by their order in the file."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _too_big(data: Any) -> bool:
    stack, count = [data], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_NODES:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _names_a_file(text: str) -> bool:
    if "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a long one-line YAML is no file name (ENAMETOOLONG, NUL)
        return False


def _read(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path) or _names_a_file(path_or_text):
        path = Path(path_or_text)
        try:
            if path.stat().st_size > 2 * 1024 * 1024:  # do not read a huge file just to refuse it
                raise PlanError([Problem("plan", "too_large", f"{path} is larger than the plan size limit")])
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanError([Problem("plan", "readable", f"cannot read {path}: {exc}")]) from exc
    return path_or_text


def load_plan(path_or_text: str | Path) -> Plan:
    """Parse and statically validate a plan: a file path (``Path``, or a one-line ``str`` naming a file) or the
    YAML text itself. Raises ``PlanError`` listing every problem found."""
    text = _read(path_or_text)
    raise_for(check_text(text))
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise PlanError([Problem("plan", "yaml", " ".join(str(exc).split()))]) from exc
    if _too_big(data):
        raise PlanError([Problem("plan", "too_large", f"the document expands to more than {MAX_NODES} nodes")])
    if not isinstance(data, dict):
        raise PlanError([Problem("plan", "type", f"a plan is a YAML mapping, not {type(data).__name__}")])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(from_pydantic(exc)) from exc
    raise_for(check_plan(plan))
    return plan


# ------------------------------------------------------------------------------------------ desired state


def desired(plan: Plan) -> list[ReplicaSpec]:
    """The plan's replicas, normalized and merged with the defaults, sorted by region."""
    return sorted((_spec(plan.defaults, entry) for entry in plan.regions), key=lambda s: s.region)


def _spec(defaults: Defaults, entry: RegionEntry) -> ReplicaSpec:
    region = regions.normalize(entry.region)
    explicit = entry.region_endpoint_enabled is not None
    return ReplicaSpec(
        region=region,
        name=entry.name or region,
        zone_redundancy=defaults.zone_redundancy if entry.zone_redundancy is None else entry.zone_redundancy,
        region_endpoint_enabled=entry.region_endpoint_enabled if explicit else defaults.region_endpoint_enabled,
        region_endpoint_explicit=explicit,
        tags={**defaults.tags, **entry.tags},
    )


def resolve_waves(plan: Plan) -> list[list[str]]:
    """Waves as normalized region names with ``*`` expanded to the regions no other wave names."""
    planned = sorted({regions.normalize(e.region) for e in plan.regions})
    if plan.waves is None:
        return [planned] if planned else []
    named = {regions.normalize(r) for wave in plan.waves for r in wave if r.strip() != WILDCARD}
    rest = [r for r in planned if r not in named]
    out: list[list[str]] = []
    for wave in plan.waves:
        resolved: list[str] = []
        for item in wave:
            resolved.extend(rest if item.strip() == WILDCARD else [regions.normalize(item)])
        if resolved:
            out.append(sorted(set(resolved)))
    return out


def group_by_wave(plan: Plan, actions: Sequence[Action]) -> list[list[Action]]:
    """Actions in the order the rollout runs them. Regions outside the plan (prunes, home, leftovers) form a
    last wave of their own: removing capacity comes after every planned region got its chance, and is skipped
    when the failure budget stopped the rollout."""
    waves = resolve_waves(plan)
    placed = {r for wave in waves for r in wave}
    out = [[a for a in actions if a.region in wave] for wave in waves]
    rest = [a for a in actions if a.region not in placed]
    return [w for w in [*out, rest] if w]


def budget_exhausted(plan: Plan, outcomes: Sequence[RegionOutcome]) -> bool:
    """True when more regions failed than the plan tolerates: later waves must not start."""
    return sum(1 for o in outcomes if o.failed) > plan.failure_budget


def plan_hash(plan: Plan) -> str:
    """A short, stable key for checkpoints: the same intent hashes the same however the file spells it (display
    names, entry order, defaults written out or not); any change of intent gives a new key."""
    canonical = {
        "registry": {
            # ARM ids are case-insensitive
            "subscription_id": plan.registry.subscription_id.lower(),
            "resource_group": plan.registry.resource_group.lower(),
            "name": plan.registry.name.lower(),
        },
        "replicas": [s.model_dump(mode="json") for s in desired(plan)],
        "waves": resolve_waves(plan),
        "failure_budget": plan.failure_budget,
        "lro_deadline_seconds": float(plan.lro_deadline_seconds),
        "allow_replace": plan.allow_replace,
        "prune": plan.prune,
        "protection_tag": plan.protection_tag,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
