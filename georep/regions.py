"""Azure public regions as ACR geo-replication sees them.

Both the planner (validation before any write) and the emulator (the server-side rule) read this one table, so
the two can never disagree about what a valid location is. Source: MicrosoftDocs/reliability-docs regions-list
(2025-09), summarised in shared/reference/arm-replications.md section 9.
"""

from __future__ import annotations

import re
from typing import Final

#: programmatic name -> display name, for every public region that offers Microsoft.ContainerRegistry.
DISPLAY_NAMES: Final[dict[str, str]] = {
    "australiacentral": "Australia Central",
    "australiacentral2": "Australia Central 2",
    "australiaeast": "Australia East",
    "australiasoutheast": "Australia Southeast",
    "austriaeast": "Austria East",
    "belgiumcentral": "Belgium Central",
    "brazilsouth": "Brazil South",
    "brazilsoutheast": "Brazil Southeast",
    "canadacentral": "Canada Central",
    "canadaeast": "Canada East",
    "centralindia": "Central India",
    "centralus": "Central US",
    "chilecentral": "Chile Central",
    "eastasia": "East Asia",
    "eastus": "East US",
    "eastus2": "East US 2",
    "francecentral": "France Central",
    "francesouth": "France South",
    "germanynorth": "Germany North",
    "germanywestcentral": "Germany West Central",
    "indonesiacentral": "Indonesia Central",
    "israelcentral": "Israel Central",
    "italynorth": "Italy North",
    "japaneast": "Japan East",
    "japanwest": "Japan West",
    "koreacentral": "Korea Central",
    "koreasouth": "Korea South",
    "malaysiawest": "Malaysia West",
    "mexicocentral": "Mexico Central",
    "newzealandnorth": "New Zealand North",
    "northcentralus": "North Central US",
    "northeurope": "North Europe",
    "norwayeast": "Norway East",
    "norwaywest": "Norway West",
    "polandcentral": "Poland Central",
    "qatarcentral": "Qatar Central",
    "southafricanorth": "South Africa North",
    "southafricawest": "South Africa West",
    "southcentralus": "South Central US",
    "southeastasia": "Southeast Asia",
    "southindia": "South India",
    "spaincentral": "Spain Central",
    "swedencentral": "Sweden Central",
    "switzerlandnorth": "Switzerland North",
    "switzerlandwest": "Switzerland West",
    "uaecentral": "UAE Central",
    "uaenorth": "UAE North",
    "uksouth": "UK South",
    "ukwest": "UK West",
    "westcentralus": "West Central US",
    "westeurope": "West Europe",
    "westindia": "West India",
    "westus": "West US",
    "westus2": "West US 2",
    "westus3": "West US 3",
}

#: regions without availability zones: a zone-redundant replica cannot be placed there.
NO_ZONES: Final[frozenset[str]] = frozenset(
    {
        "australiacentral",
        "australiacentral2",
        "australiasoutheast",
        "brazilsoutheast",
        "canadaeast",
        "francesouth",
        "germanynorth",
        "koreasouth",
        "northcentralus",
        "norwaywest",
        "southafricawest",
        "southindia",
        "switzerlandwest",
        "uaecentral",
        "ukwest",
        "westcentralus",
        "westindia",
        "westus",
    }
)

#: regions a subscription may use only after an access request has been granted.
ACCESS_RESTRICTED: Final[frozenset[str]] = frozenset(
    {
        "australiacentral2",
        "brazilsoutheast",
        "francesouth",
        "germanynorth",
        "norwaywest",
        "southafricawest",
        "switzerlandwest",
        "uaecentral",
    }
)

_SPACES = re.compile(r"\s+")


def normalize(location: str) -> str:
    """Normalise a location the way ARM does ("West US 2" -> "westus2").

    ARM accepts display names and programmatic names interchangeably; comparisons must use this form or a plan
    that says "West Europe" would look different from a replica that reports "westeurope".
    """
    return _SPACES.sub("", location).lower()


def is_known(location: str) -> bool:
    return normalize(location) in DISPLAY_NAMES


def has_zones(location: str) -> bool:
    return is_known(location) and normalize(location) not in NO_ZONES


def is_restricted(location: str) -> bool:
    return normalize(location) in ACCESS_RESTRICTED


def available(granted: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Programmatic names a subscription can place a replica in, given the restricted regions it was granted."""
    return sorted(r for r in DISPLAY_NAMES if r not in ACCESS_RESTRICTED or r in granted)
