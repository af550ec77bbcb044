"""`mlstack:vpcCidr` and the other keys of the VPC."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from infra.config.reader import Reader
from infra.config.sections.formats import LOG_RETENTION_DAYS

NatPolicy = Literal["none", "single", "per-az"]
NAT_POLICIES: tuple[NatPolicy, ...] = ("none", "single", "per-az")


PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The VPC: address space, zones and how private subnets reach the internet."""

    vpc_cidr: str
    availability_zone_count: int
    nat_gateways: NatPolicy
    flow_log_retention_days: int
    private_endpoints: bool


def check_private_cidr(value: str) -> str | None:
    allowed = "a private IPv4 network (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) from /16 to /20"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return allowed
    private = any(network.subnet_of(parent) for parent in PRIVATE_NETWORKS)
    return None if private and 16 <= network.prefixlen <= 20 else allowed


def read_network(read: Reader) -> NetworkConfig:
    return NetworkConfig(
        vpc_cidr=read.string("vpcCidr", check_private_cidr),
        availability_zone_count=read.integer("availabilityZoneCount", 2, 6),
        nat_gateways=read.choice("natGateways", NAT_POLICIES),
        flow_log_retention_days=read.integer_in("flowLogRetentionDays", LOG_RETENTION_DAYS),
        private_endpoints=read.boolean("privateEndpoints"),
    )
