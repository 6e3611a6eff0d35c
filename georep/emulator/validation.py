"""Server-side request rules: names, bodies, locations. Each error names the field, as ARM does in ``target``."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from georep import regions
from georep.emulator.exceptions import (
    InvalidRequestContent,
    InvalidResourceName,
    LocationNotAvailableForResourceType,
    LocationRequired,
    PropertyChangeNotAllowed,
    ZoneRedundancyNotSupported,
)
from georep.emulator.resources import REPLICATION_TYPE

NAME_RE = re.compile(r"^[a-zA-Z0-9]{5,50}$")
RESOURCE_GROUP_RE = re.compile(r"^[-\w._()]{1,90}$")
MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256


@dataclass(frozen=True)
class ReplicationBody:
    location: str
    tags: dict[str, str]
    region_endpoint_enabled: bool
    zone_redundancy: str


@dataclass(frozen=True)
class ReplicationPatch:
    tags: dict[str, str] | None
    region_endpoint_enabled: bool | None


def check_subscription(subscription: str) -> None:
    try:
        uuid.UUID(subscription)
    except ValueError:
        raise InvalidRequestContent(
            f"The provided subscription identifier '{subscription}' is malformed or invalid.",
            target="subscriptionId",
            code="InvalidSubscriptionId",
        ) from None


def check_names(resource_group: str, registry: str, replication: str | None = None) -> None:
    if not RESOURCE_GROUP_RE.match(resource_group) or resource_group.endswith("."):
        raise InvalidResourceName(
            f"Resource group name '{resource_group}' is invalid: 1-90 characters of letters, digits, "
            "'-', '_', '.', '(' and ')', not ending in '.'.",
            target="resourceGroupName",
        )
    for field_name, value in (("registryName", registry), ("replicationName", replication)):
        if value is not None and not NAME_RE.match(value):
            raise InvalidResourceName(
                f"Resource name '{value}' is invalid for {field_name}: it must be 5-50 characters, "
                "letters and digits only (^[a-zA-Z0-9]*$).",
                target=field_name,
            )


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidRequestContent(
            f"The request content was invalid and could not be deserialized: '{exc}'."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestContent(
            "The request content was invalid and could not be deserialized: the body must be a JSON object."
        )
    return data


def _tags(data: dict[str, Any]) -> dict[str, str] | None:
    if "tags" not in data or data["tags"] is None:
        return None
    tags = data["tags"]
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidRequestContent(
            "The request content was invalid: 'tags' must be an object of string values.", target="tags"
        )
    if len(tags) > MAX_TAGS:
        raise InvalidRequestContent(f"At most {MAX_TAGS} tags are allowed; got {len(tags)}.", target="tags")
    for name, value in tags.items():
        if not name or len(name) > MAX_TAG_NAME or len(value) > MAX_TAG_VALUE:
            raise InvalidRequestContent(
                f"Tag '{name[:40]}' is invalid: names are 1-{MAX_TAG_NAME} characters, values at most {MAX_TAG_VALUE}.",
                target=f"tags.{name[:40]}",
            )
    return dict(tags)


def _properties(data: dict[str, Any]) -> dict[str, Any]:
    props = data.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise InvalidRequestContent("'properties' must be an object.", target="properties")
    endpoint = props.get("regionEndpointEnabled")
    if endpoint is not None and not isinstance(endpoint, bool):
        raise InvalidRequestContent(
            f"'properties.regionEndpointEnabled' must be a boolean; got {json.dumps(endpoint)}.",
            target="properties.regionEndpointEnabled",
        )
    return props


def _zone_redundancy(props: dict[str, Any]) -> str:
    value = props.get("zoneRedundancy", "Disabled")
    if value is None:
        return "Disabled"
    if not isinstance(value, str) or value.lower() not in ("enabled", "disabled"):
        raise InvalidRequestContent(
            f"'properties.zoneRedundancy' must be 'Enabled' or 'Disabled'; got {json.dumps(value)}.",
            target="properties.zoneRedundancy",
        )
    return "Enabled" if value.lower() == "enabled" else "Disabled"


def check_location(location: str, granted: set[str]) -> str:
    normalized = regions.normalize(location)
    if not regions.is_known(normalized) or (regions.is_restricted(normalized) and normalized not in granted):
        allowed = ",".join(regions.DISPLAY_NAMES[r] for r in regions.available(frozenset(granted)))
        raise LocationNotAvailableForResourceType(
            f"The provided location '{location}' is not available for resource type '{REPLICATION_TYPE}'. "
            f"List of available regions for the resource type is '{allowed}'.",
            target="location",
        )
    return normalized


def parse_replication(raw: bytes, granted: set[str]) -> ReplicationBody:
    data = parse_json(raw)
    location = data.get("location")
    if location is None or location == "":
        raise LocationRequired("The location property is required for this definition.", target="location")
    if not isinstance(location, str):
        raise InvalidRequestContent("'location' must be a string.", target="location")
    normalized = check_location(location, granted)
    props = _properties(data)
    zone_redundancy = _zone_redundancy(props)
    if zone_redundancy == "Enabled" and not regions.has_zones(normalized):
        raise ZoneRedundancyNotSupported(
            f"Zone redundancy is not supported in location '{normalized}': the region has no availability zones.",
            target="properties.zoneRedundancy",
        )
    endpoint = props.get("regionEndpointEnabled")
    return ReplicationBody(
        location=normalized,
        tags=_tags(data) or {},
        region_endpoint_enabled=True if endpoint is None else endpoint,
        zone_redundancy=zone_redundancy,
    )


def parse_patch(raw: bytes) -> ReplicationPatch:
    data = parse_json(raw)
    if "location" in data:
        raise PropertyChangeNotAllowed(
            "Changing property 'location' is not allowed: move a replica by deleting and recreating it.",
            target="location",
        )
    props = _properties(data)
    if "zoneRedundancy" in props:
        raise PropertyChangeNotAllowed(
            "Changing property 'properties.zoneRedundancy' is not allowed: it is set at creation only.",
            target="properties.zoneRedundancy",
        )
    return ReplicationPatch(tags=_tags(data), region_endpoint_enabled=props.get("regionEndpointEnabled"))
