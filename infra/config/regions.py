"""AWS regions and the partition each belongs to, as botocore's endpoint data records them.

The stack checks `aws:region` against this before anything is declared (the AWS provider skips
region validation by default, so a misspelt region would only fail at the first API call), and
the offline runtime answers `getPartition` from it, so a stack in `cn-north-1` is planned with
`arn:aws-cn:` ARNs as it would be deployed.
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType
from typing import Any


@cache
def region_partitions() -> MappingProxyType[str, str]:
    """Every region botocore knows, mapped to its partition (`aws`, `aws-cn`, `aws-us-gov`, ...)."""
    from botocore.loaders import create_loader

    endpoints: dict[str, Any] = create_loader().load_data("endpoints")
    return MappingProxyType(
        {
            region: str(partition["partition"])
            for partition in endpoints["partitions"]
            for region in partition["regions"]
        }
    )


def partition_of(region: str) -> str:
    """The partition of `region`; `aws` for a region botocore does not know."""
    return region_partitions().get(region, "aws")


def check_region(value: str) -> str | None:
    """None for a region AWS has, else what is allowed."""
    if value in region_partitions():
        return None
    commercial = sorted(r for r, p in region_partitions().items() if p == "aws")
    return (
        "an AWS region, e.g. "
        + ", ".join(commercial)
        + " (or a region of another partition: "
        + ", ".join(sorted(r for r, p in region_partitions().items() if p != "aws"))
        + ")"
    )
