"""The VPC: public and private subnets per zone, NAT by policy, S3 endpoint and flow logs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.addressing import plan_subnets
from infra.components.service_role import account_service_role
from infra.config.sections.network import NAT_POLICIES, NatPolicy
from infra.documents.iam import flow_log_delivery_policy

# What nodes in private subnets call when there is no NAT gateway (S3 has a gateway endpoint).
INTERFACE_ENDPOINT_SERVICES = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "ec2",
    "logs",
    "eks",
    "eks-auth",
    "sagemaker.api",
    "sagemaker.runtime",
)


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    """Settings of the VPC."""

    cidr: str
    zone_count: int
    nat_gateways: NatPolicy
    """none: private subnets have no route out; single: one shared gateway; per-az: one each."""
    private_endpoints: bool
    """Interface endpoints for the AWS APIs nodes call, for private subnets without NAT."""
    flow_log_retention_days: int
    kms_key_arn: pulumi.Input[str]
    """Encrypts the flow log group."""
    cluster_name: str
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""
    """Tagged on subnets so EKS and its load balancer controller find them."""

    def __post_init__(self) -> None:
        if self.nat_gateways not in NAT_POLICIES:
            raise ValueError(f"nat_gateways = {self.nat_gateways!r}: allowed: {NAT_POLICIES}")
        plan_subnets(self.cidr, self.zone_count)  # raises on a CIDR or count it cannot split


class Network(pulumi.ComponentResource):
    """A VPC across `zone_count` zones with subnets EKS can use and every packet flow-logged."""

    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    zones: pulumi.Output[list[str]]
    """The zone of each private subnet, in subnet order."""
    flow_log_role: aws.iam.Role
    """The role VPC flow logs deliver with (a deployer passes it to the service)."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        plan = plan_subnets(args.cidr, args.zone_count)
        # Local and Wavelength Zones are opt-in, offer few services and sort before the region's
        # own zones ("us-east-1-bos-1a" < "us-east-1a"): only zones that need no opt-in qualify.
        available = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=invoke,
        )
        self.zones = available.names.apply(lambda names: _first_zones(names, args.zone_count))
        region = aws.get_region_output(opts=invoke).region

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{name}-vpc"},
            opts=child,
        )
        # Adopting the default security group removes its allow-all rules (FSBP EC2.2).
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=self.vpc.id, opts=child)

        internet = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": internet.id}],
            opts=child,
        )
        self.public_subnets, self.private_subnets = [], []
        private_route_tables: list[aws.ec2.RouteTable] = []
        nats: list[aws.ec2.NatGateway] = []
        for index in range(args.zone_count):
            zone = _nth(self.zones, index)
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=plan.public[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{index}", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child,
            )
            self.public_subnets.append(public)
            if args.nat_gateways == "per-az" or (args.nat_gateways == "single" and index == 0):
                address = aws.ec2.Eip(f"{name}-nat-{index}", domain="vpc", opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{index}",
                        allocation_id=address.id,
                        subnet_id=public.id,
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[internet]),
                    )
                )

            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=plan.private[index],
                availability_zone=zone,
                tags={
                    "Name": f"{name}-private-{index}",
                    "kubernetes.io/role/internal-elb": "1",
                    f"kubernetes.io/cluster/{args.cluster_name}": "shared",
                },
                opts=child,
            )
            routes: list[aws.ec2.RouteTableRouteArgsDict] = (
                [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[-1].id}] if nats else []
            )
            private_routes = aws.ec2.RouteTable(
                f"{name}-private-{index}", vpc_id=self.vpc.id, routes=routes, opts=child
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}",
                subnet_id=private.id,
                route_table_id=private_routes.id,
                opts=child,
            )
            self.private_subnets.append(private)
            private_route_tables.append(private_routes)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=_service_name(region, "s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in private_route_tables],
            opts=child,
        )
        if args.private_endpoints:
            self._interface_endpoints(name, region)
        self._flow_logs(name, args)
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": [s.id for s in self.public_subnets],
                "privateSubnetIds": [s.id for s in self.private_subnets],
            }
        )

    def _interface_endpoints(self, name: str, region: pulumi.Output[str]) -> None:
        endpoints_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            description="HTTPS from inside the VPC to AWS API endpoints",
            vpc_id=self.vpc.id,
            ingress=[
                {
                    "description": "HTTPS from the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [self.vpc.cidr_block],
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        for service in INTERFACE_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=self.vpc.id,
                service_name=_service_name(region, service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in self.private_subnets],
                security_group_ids=[endpoints_sg.id],
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _flow_logs(self, name: str, args: NetworkArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        role = account_service_role(
            f"{name}-flow-logs",
            parent=self,
            service="vpc-flow-logs.amazonaws.com",
            permissions_boundary=args.permissions_boundary,
        )
        self.flow_log_role = role
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(flow_log_delivery_policy(log_group_arn=arn), sort_keys=True)
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=child,
        )


def _first_zones(names: list[str], count: int) -> list[str]:
    if len(names) < count:
        raise ValueError(
            f"mlstack:availabilityZoneCount = {count}: allowed: at most the {len(names)} "
            f"zones this region offers ({', '.join(names)})"
        )
    return sorted(names)[:count]


def _service_name(region: pulumi.Output[str], service: str) -> pulumi.Output[str]:
    return region.apply(lambda name: f"com.amazonaws.{name}.{service}")


def _nth(values: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    return values.apply(lambda items: items[index])
