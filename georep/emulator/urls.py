"""Route table: (name, ARM path template) -> handler methods. Data only; matching is case-insensitive, as ARM's."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUB = "/subscriptions/{subscription}"
_RG = _SUB + "/resourceGroups/{resource_group}"
_PROVIDER = "/providers/Microsoft.ContainerRegistry"
_REG = _RG + _PROVIDER + "/registries/{registry}"
_REP = _REG + "/replications/{replication}"


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    #: HTTP method -> handler name on ArmResponses
    methods: dict[str, str]
    regex: re.Pattern[str]


def _route(name: str, template: str, methods: dict[str, str]) -> Route:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.replace(".", r"\."))
    return Route(name, template, methods, re.compile(f"^{pattern}/?$", re.IGNORECASE))


ARM_ROUTES: tuple[Route, ...] = (
    _route("registries.list", _SUB + _PROVIDER + "/registries", {"GET": "list_registries"}),
    _route("registries.list_by_rg", _RG + _PROVIDER + "/registries", {"GET": "list_registries"}),
    _route("registries.get", _REG, {"GET": "get_registry"}),
    _route("replications.list", _REG + "/replications", {"GET": "list_replications"}),
    _route(
        "replications.item",
        _REP,
        {
            "GET": "get_replication",
            "PUT": "create_replication",
            "PATCH": "update_replication",
            "DELETE": "delete_replication",
        },
    ),
    _route("replications.operation_status", _REP + "/operationStatuses/{operation}", {"GET": "operation_status"}),
    _route(
        "locations.operation_results",
        _SUB + _PROVIDER + "/locations/{location}/operationResults/{operation}",
        {"GET": "operation_result"},
    ),
)

IDENTITY_PATH = "/msi/token"
ADMIN_PREFIX = "/_emulator"


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ARM_ROUTES:
        m = route.regex.match(path)
        if m:
            return route, m.groupdict()
    return None
