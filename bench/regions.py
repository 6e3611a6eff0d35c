"""Regions the benchmarks roll out to: unrestricted, none of them northeurope (every bench registry's home)."""

REGIONS = [
    "westus2", "eastus", "westeurope", "southeastasia", "eastus2", "japaneast", "uksouth", "francecentral",
    "centralus", "westus3", "australiaeast", "brazilsouth", "canadacentral", "koreacentral", "swedencentral",
    "uaenorth", "eastasia", "centralindia", "italynorth", "polandcentral", "southcentralus", "norwayeast",
]  # fmt: skip
