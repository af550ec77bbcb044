"""How the VPC's address space is split into subnets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_ZONES = 6


@dataclass(frozen=True)
class SubnetPlan:
    """CIDRs of the public and private subnets, one of each per availability zone."""

    public: tuple[str, ...]
    private: tuple[str, ...]


def plan_subnets(vpc_cidr: str, zones: int) -> SubnetPlan:
    """Split the VPC into eighths: one private eighth per zone (pods take VPC addresses, so they
    get the room), and the last eighth cut again into eight small public subnets (load balancers
    and NAT gateways only). Adding a zone later leaves existing subnets where they are.
    """
    if not 1 <= zones <= MAX_ZONES:
        raise ValueError(f"zones = {zones}: allowed: 1 to {MAX_ZONES}")
    network = ipaddress.IPv4Network(vpc_cidr, strict=True)
    eighths = list(network.subnets(prefixlen_diff=3))
    public = list(eighths[-1].subnets(prefixlen_diff=3))
    return SubnetPlan(
        public=tuple(str(subnet) for subnet in public[:zones]),
        private=tuple(str(subnet) for subnet in eighths[:zones]),
    )
