"""Pulumi mocks that record every declared resource and answer like AWS would, deterministically.

The answers (ids, ARNs, account, zones) are fixed functions of the logical name and the stack's
region, so two runs of an unchanged stack record identical resources. What the account already
holds (roles, tagged resources) is part of the answers, so a test can plan the same stack against
a fresh account and against one where an earlier deployment left something behind.

In preview mode the mocks answer as `pulumi preview` of a new stack sees things: a resource's
inputs are known, but its id and everything AWS computes are not, so inputs built from other
resources' outputs are recorded as `UNKNOWN`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from infra.config.regions import partition_of
from mlstack_policy.rules import UNKNOWN

ACCOUNT_ID = "123456789012"
DNS_SUFFIXES = {"aws-cn": "amazonaws.com.cn"}


@dataclass(frozen=True)
class RecordedResource:
    """One resource the program declared, as a policy check or a reviewer sees it.

    `props` are the resource's properties under their engine (camelCase) names: the inputs plus
    what AWS would compute. It is the same shape CrossGuard hands to a policy.
    """

    urn: str
    resource_type: str
    name: str
    parent_urn: str | None
    custom: bool
    physical_id: str
    inputs: Mapping[str, Any]
    props: Mapping[str, Any]
    protect: bool = False
    secret_inputs: frozenset[str] = frozenset()
    """Inputs that were secrets; shown masked, checked as plain values."""
    import_id: str = ""
    """The id of an existing cloud resource the program adopts (`import_`), else empty."""
    dependencies: frozenset[str] = frozenset()
    """URNs of the resources this one was declared to depend on."""
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()
    """Inputs the engine leaves as the cloud has them (an adopted resource's, say)."""
    provider: str = ""
    """The provider reference (`<provider URN>::<id>`) the resource was declared with, if any."""


def normalise_numbers(value: Any) -> Any:
    """Integral floats back to ints: the runtime's wire format carries every number as a float.

    Values unknown during a preview become `UNKNOWN`, the marker the policy rules understand."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalise_numbers(item) for item in value]
    return value


# How the runtime's wire format marks a secret value: {SIG_KEY: SECRET_SIG, "value": ...}.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a type tag, not a credential)


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(_SIG_KEY) == _SECRET_SIG


def unwrap_secrets(value: Any) -> Any:
    """The plain value behind every secret marker, at any depth."""
    if _is_secret(value):
        return unwrap_secrets(value.get("value"))
    if isinstance(value, Mapping):
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap_secrets(item) for item in value]
    return value


def _short_hash(text: str, length: int = 7) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# Resource types whose ARN names another service than their provider module.
_ARN_SERVICES = {
    "aws:cloudwatch/logGroup:LogGroup": "logs",
    "aws:appautoscaling/target:Target": "application-autoscaling",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "ec2",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "ec2",
}
# The resource part of the ARN AWS gives each type (as IAM's Service Authorization Reference
# writes it), from the resource's name or id; types not here are named `<service>:<id>`.
_ARN_RESOURCES: Mapping[str, str] = {
    "aws:appautoscaling/target:Target": "scalable-target/{id}",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "alarm:{name}",
    "aws:codebuild/project:Project": "project/{name}",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "security-group/{id}",
    "aws:ec2/eip:Eip": "elastic-ip/{id}",
    "aws:ec2/flowLog:FlowLog": "vpc-flow-log/{id}",
    "aws:ec2/internetGateway:InternetGateway": "internet-gateway/{id}",
    "aws:ec2/launchTemplate:LaunchTemplate": "launch-template/{id}",
    "aws:ec2/natGateway:NatGateway": "natgateway/{id}",
    "aws:ec2/routeTable:RouteTable": "route-table/{id}",
    "aws:ec2/securityGroup:SecurityGroup": "security-group/{id}",
    "aws:ec2/subnet:Subnet": "subnet/{id}",
    "aws:ec2/vpc:Vpc": "vpc/{id}",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpc-endpoint/{id}",
    "aws:eks/addon:Addon": "addon/{clusterName}/{addonName}/{uuid}",
    "aws:eks/accessEntry:AccessEntry": "access-entry/{clusterName}/role/{account}/{uuid}/{uuid}",
    "aws:eks/nodeGroup:NodeGroup": "nodegroup/{clusterName}/{name}/{uuid}",
    "aws:sagemaker/endpoint:Endpoint": "endpoint/{name}",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "endpoint-config/{name}",
    "aws:sagemaker/model:Model": "model/{name}",
    "aws:sns/topic:Topic": "{name}",
    "aws:budgets/budget:Budget": "budget/{name}",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "security-group-rule/{id}",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "security-group-rule/{id}",
}


def _service(resource_type: str) -> str:
    # "aws:s3/bucket:Bucket" -> "s3"; a log group's ARN is `arn:aws:logs:...`
    return _ARN_SERVICES.get(resource_type) or resource_type.split(":")[1].split("/")[0]


Computed = Callable[[str, str, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Account:
    """What an AWS account already holds before the stack is deployed; empty means fresh."""

    existing_roles: tuple[str, ...] = ()
    """ARNs of IAM roles the account has (service-linked roles, say)."""
    tagged_resources: tuple[Mapping[str, Any], ...] = ()
    """What the Resource Groups Tagging API lists: `{"arn": ..., "type": ..., "tags": {...}}`."""
    oidc_providers: tuple[str, ...] = ()
    """URLs of the IAM OIDC identity providers the account has (GitHub's, say)."""


class InvokeFailedError(Exception):
    """A data source that fails as AWS would (a lookup of something absent); the runtime hands
    the message to the program as the provider's error, which the program may catch."""


@dataclass
class AwsAnswers:
    """What AWS computes for a resource or returns for a data source, for one account and region."""

    region: str
    account_id: str = ACCOUNT_ID
    account: Account = field(default_factory=Account)
    computed: dict[str, Computed] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every data source the program asked for, with its arguments, in order."""

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def __post_init__(self) -> None:
        self.computed.update(
            {
                "aws:s3/bucket:Bucket": self._bucket,
                "aws:kms/key:Key": self._kms_key,
                "aws:kms/alias:Alias": self._kms_alias,
                "aws:iam/role:Role": self._iam_role,
                "aws:iam/policy:Policy": self._iam_policy,
                "aws:iam/openIdConnectProvider:OpenIdConnectProvider": self._oidc_provider,
                "aws:eks/cluster:Cluster": self._eks_cluster,
                "aws:ec2/launchTemplate:LaunchTemplate": self._launch_template,
                "aws:cloudwatch/logGroup:LogGroup": self._log_group,
                "aws:ecr/repository:Repository": self._ecr_repository,
                "aws:sagemaker/modelPackageGroup:ModelPackageGroup": self._model_package_group,
                "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": self._tracking_server,
                "aws:iam/serviceLinkedRole:ServiceLinkedRole": self._service_linked_role,
                "docker-build:index:Image": self._image,
                "aws:eks/nodeGroup:NodeGroup": self._node_group,
                # Auto-named by the provider when the program gives no name.
                "aws:sagemaker/model:Model": self._auto_named,
                "aws:sagemaker/endpointConfiguration:EndpointConfiguration": self._auto_named,
            }
        )

    def arn(self, resource_type: str, resource: str) -> str:
        service = _service(resource_type)
        region = "" if service in ("iam", "budgets") else self.region  # global services
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    def _arn_resource(self, resource_type: str, state: Mapping[str, Any]) -> str:
        physical = str(state["id"])
        template = _ARN_RESOURCES.get(resource_type)
        if template is None:
            return physical
        return template.format(
            id=physical,
            name=str(state.get("name") or state.get("nodeGroupName") or physical),
            clusterName=str(state.get("clusterName", "")),
            addonName=str(state.get("addonName", "")),
            account=self.account_id,
            uuid=_short_hash(physical, 8),
        )

    def _service_linked_role(
        self, _physical: str, type_: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        service = str(inputs.get("awsServiceName", ""))
        name = "AWSServiceRoleFor" + _service_role_suffix(service)
        return {
            "name": name,
            "path": f"/aws-service-role/{service}/",
            "arn": self.arn(type_, f"role/aws-service-role/{service}/{name}"),
        }

    def _auto_named(self, physical: str, _type: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": str(inputs.get("name") or physical)}

    def _node_group(self, physical: str, _type: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """EKS names a managed group's Auto Scaling group `eks-<group>-<uuid>`."""
        group = str(inputs.get("nodeGroupName") or physical)
        return {
            "nodeGroupName": group,
            "resources": [
                {"autoscalingGroups": [{"name": f"eks-{group}-{_short_hash(physical)}"}]}
            ],
        }

    def _iam_role(self, physical: str, type_: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = str(inputs.get("name") or physical)
        return {"name": name, "arn": self.arn(type_, f"role/{name}")}

    def _iam_policy(self, physical: str, type_: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = str(inputs.get("name") or physical)
        return {"name": name, "arn": self.arn(type_, f"policy/{name}")}

    def _oidc_provider(
        self, _physical: str, type_: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        host = str(inputs.get("url", "")).removeprefix("https://")
        return {"arn": self.arn(type_, f"oidc-provider/{host}")}

    def _eks_cluster(self, physical: str, type_: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = str(inputs.get("name", physical))
        cluster_id = _short_hash(name, 32).upper()
        return {
            "name": name,
            "arn": self.arn(type_, f"cluster/{name}"),
            "endpoint": f"https://{cluster_id}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": "T0ZGTElORS1DQQ=="},
            "identities": [
                {
                    "oidcs": [
                        {"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{cluster_id}"}
                    ]
                }
            ],
            # EKS makes the cluster security group; the program's inputs never name one.
            "vpcConfig": {
                **dict(inputs.get("vpcConfig") or {}),
                "clusterSecurityGroupId": f"sg-{_short_hash(name + '-cluster', 17)}",
            },
            "status": "ACTIVE",
        }

    def _launch_template(
        self, physical: str, _type: str, _inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {"latestVersion": 1, "defaultVersion": 1}

    def _log_group(self, physical: str, type_: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = str(inputs.get("name", physical))
        return {"name": name, "arn": self.arn(type_, f"log-group:{name}")}

    def _ecr_repository(
        self, physical: str, type_: str, _inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": physical,
            "arn": self.arn(type_, f"repository/{physical}"),
            "repositoryUrl": f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{physical}",
            "registryId": self.account_id,
        }

    def _model_package_group(
        self, _physical: str, type_: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = str(inputs.get("modelPackageGroupName", ""))
        return {"arn": self.arn(type_, f"model-package-group/{name}")}

    def _tracking_server(
        self, _physical: str, type_: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = str(inputs.get("trackingServerName", ""))
        return {
            "arn": self.arn(type_, f"mlflow-tracking-server/{name}"),
            "trackingServerUrl": f"https://t-offline.{self.region}.experiments.sagemaker.aws",
        }

    def _image(self, _physical: str, _type: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """A digest that is a function of the tags (the source revision), as a reproducible
        build's would be of its sources."""
        tags = [str(tag) for tag in inputs.get("tags") or []]
        digest = "sha256:" + hashlib.sha256("\n".join(tags).encode()).hexdigest()
        return {"digest": digest, "ref": f"{tags[0]}@{digest}" if tags else digest}

    def _bucket(self, physical: str, _type: str, _inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "bucket": physical,
            "arn": f"arn:{self.partition}:s3:::{physical}",
            "bucketRegionalDomainName": f"{physical}.s3.{self.region}.amazonaws.com",
            "region": self.region,
        }

    def _kms_key(self, physical: str, type_: str, _inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"keyId": physical, "arn": self.arn(type_, f"key/{physical}")}

    def _kms_alias(self, _physical: str, type_: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"arn": self.arn(type_, str(inputs.get("name", "")))}

    def resource(
        self, resource_type: str, physical: str, inputs: Mapping[str, Any], import_id: str = ""
    ) -> dict[str, Any]:
        """The state AWS would report for a resource created (or, with `import_id`, adopted)."""
        state = {**dict(inputs), "id": physical}
        if resource_type in self.computed:
            state.update(self.computed[resource_type](physical, resource_type, inputs))
        if resource_type.startswith("aws:") and "arn" not in state:
            state["arn"] = self.arn(resource_type, self._arn_resource(resource_type, state))
        state["id"] = physical  # what the SDK resolves `resource.id` to; nothing may override it
        return state

    def call(self, token: str, args: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((token, dict(args)))
        region = str(args.get("region") or self.region)
        dns_suffix = DNS_SUFFIXES.get(self.partition, "amazonaws.com")
        answers: dict[str, Callable[[], dict[str, Any]]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": lambda: {
                "accountId": self.account_id,
                "arn": f"arn:{self.partition}:iam::{self.account_id}:user/offline",
                "userId": "AIDAOFFLINE",
                "id": self.account_id,
            },
            "aws:index/getPartition:getPartition": lambda: {
                "partition": self.partition,
                "dnsSuffix": dns_suffix,
                "reverseDnsPrefix": ".".join(reversed(dns_suffix.split("."))),
                "id": self.partition,
            },
            "aws:index/getRegion:getRegion": lambda: {
                "region": region,
                "name": region,
                "endpoint": f"ec2.{region}.amazonaws.com",
                "description": region,
                "id": region,
            },
            "aws:index/getAvailabilityZones:getAvailabilityZones": lambda: self._availability_zones(
                args, region
            ),
            "aws:iam/getRoles:getRoles": lambda: self._roles(args),
            "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": lambda: (
                self._oidc_provider_lookup(args)
            ),
            "aws:resourcegroupstaggingapi/getResources:getResources": lambda: self._tagged(
                args, region
            ),
        }
        answers["aws:ecr/getAuthorizationToken:getAuthorizationToken"] = lambda: {
            "authorizationToken": "QVdTOm9mZmxpbmU=",  # base64 of AWS:offline
            "userName": "AWS",
            "password": "offline",
            "proxyEndpoint": f"https://{self.account_id}.dkr.ecr.{region}.{dns_suffix}",
            "expiresAt": "2030-01-01T00:00:00Z",
            "registryId": str(args.get("registryId") or self.account_id),
            "id": region,
        }
        answers["aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"] = lambda: (
            self._instance_type_offerings(args, region)
        )
        if token not in answers:
            raise NotImplementedError(
                f"the offline runtime has no answer for data source {token}; "
                "add one to AwsAnswers.call in infra/offline/mocks.py"
            )
        return answers[token]()

    def _availability_zones(self, args: Mapping[str, Any], region: str) -> dict[str, Any]:
        """The region's three zones and, as in many regions, an opted-in Local Zone, whose name
        sorts before theirs; `filters` and `state` narrow them as AWS does."""
        zones = [
            {"name": f"{region}{letter}", "id": f"{region[:3]}{region[-1]}-az{index}",
             "opt-in-status": "opt-in-not-required", "zone-type": "availability-zone"}
            for index, letter in enumerate("abc", start=1)
        ]  # fmt: skip
        zones.insert(
            0,
            {"name": f"{region}-loc-1a", "id": f"{region[:3]}{region[-1]}-loc1-az1",
             "opt-in-status": "opted-in", "zone-type": "local-zone"},
        )  # fmt: skip
        for entry in args.get("filters") or []:
            name, values = str(entry.get("name")), [str(v) for v in entry.get("values", [])]
            if name not in ("opt-in-status", "zone-type"):
                raise NotImplementedError(f"getAvailabilityZones filter {name!r} offline")
            zones = [zone for zone in zones if zone[name] in values]
        return {
            "names": [zone["name"] for zone in zones],
            "zoneIds": [zone["id"] for zone in zones],
            "id": region,
        }

    def _roles(self, args: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(args.get("pathPrefix") or "/")
        pattern = re.compile(str(args.get("nameRegex") or ".*"))
        arns = []
        for arn in self.account.existing_roles:
            path_and_name = arn.split(":role", 1)[1]
            path, _, name = path_and_name.rpartition("/")
            if (path + "/").startswith(prefix) and pattern.search(name):
                arns.append(arn)
        return {"arns": arns, "names": [arn.rpartition("/")[2] for arn in arns], "id": "roles"}

    def _oidc_provider_lookup(self, args: Mapping[str, Any]) -> dict[str, Any]:
        url = str(args.get("url") or "")
        if url not in self.account.oidc_providers:
            # What IAM answers, and the AWS provider passes on, for a provider that is absent.
            raise InvokeFailedError(f"NoSuchEntity: OpenIDConnect Provider not found for url {url}")
        host = url.removeprefix("https://")
        return {
            "arn": self.arn("aws:iam/openIdConnectProvider:OpenIdConnectProvider",
                            f"oidc-provider/{host}"),
            "url": host, "clientIdLists": ["sts.amazonaws.com"], "thumbprintLists": [],
            "tags": {}, "id": host,
        }  # fmt: skip

    def _tagged(self, args: Mapping[str, Any], region: str) -> dict[str, Any]:
        types = set(args.get("resourceTypeFilters") or [])
        matches = []
        for resource in self.account.tagged_resources:
            if types and resource["type"] not in types:
                continue
            tags: Mapping[str, str] = resource["tags"]
            if all(
                entry["key"] in tags
                and (not entry.get("values") or tags[entry["key"]] in entry["values"])
                for entry in args.get("tagFilters") or []
            ):
                matches.append(
                    {
                        "resourceArn": resource["arn"],
                        "tags": dict(tags),
                        "complianceDetails": [],
                    }
                )
        return {"resourceTagMappingLists": matches, "id": region}

    def _instance_type_offerings(self, args: Mapping[str, Any], region: str) -> dict[str, Any]:
        types, locations, kinds = [], [], []
        for instance_type in _requested_types(args):
            gpu = instance_type.split(".")[0] in GPU_FAMILIES_OFFLINE
            for letter in "ab" if gpu else "abc":
                types.append(instance_type)
                locations.append(f"{region}{letter}")
                kinds.append("availability-zone")
        return {
            "instanceTypes": types,
            "locations": locations,
            "locationTypes": kinds,
            "id": region,
        }


def _service_role_suffix(service: str) -> str:
    # "autoscaling.amazonaws.com" -> "AutoScaling", as AWS names that service's role
    known = {"autoscaling": "AutoScaling", "eks-nodegroup": "AmazonEKSNodegroup"}
    prefix = service.split(".")[0]
    return known.get(prefix, prefix.title())


# Offline, GPU families are offered in the first two zones of a region only, as is often true,
# so that zone filtering is exercised.
GPU_FAMILIES_OFFLINE = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")


def _requested_types(args: Mapping[str, Any]) -> list[str]:
    for entry in args.get("filters") or []:
        if entry.get("name") == "instance-type":
            return [str(value) for value in entry.get("values", [])]
    return []


@dataclass(frozen=True)
class StackOutputs:
    """What a stack reference to another stack reads: that stack's outputs, by its full name."""

    name: str
    """`<organization>/<project>/<stack>`."""
    outputs: Mapping[str, Any]
    secret_names: frozenset[str] = frozenset()


STACK_REFERENCE = "pulumi:pulumi:StackReference"


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource registration; ids and computed properties come from `AwsAnswers`.

    A stack reference is a read of another stack, not a resource of this one: it is answered
    from `stack_references` (a reference to any other stack fails, as the backend's would) and
    not recorded."""

    def __init__(
        self,
        answers: AwsAnswers,
        *,
        preview: bool = False,
        stack_references: Sequence[StackOutputs] = (),
    ) -> None:
        self.answers = answers
        self.preview = preview
        self.stack_references = {reference.name: reference for reference in stack_references}
        self.resources: list[RecordedResource] = []
        self._lock = threading.Lock()
        self._request = threading.local()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ == STACK_REFERENCE:
            return self._stack_reference(str(args.resource_id))
        request = self._request.current
        # Derived from the URN without its stack part, so equal config gives equal ids anywhere.
        physical = args.resource_id or f"{args.name}-{_short_hash(request.urn.split('::', 1)[-1])}"
        props = self.answers.resource(args.typ, physical, args.inputs, args.resource_id or "")
        if self.preview and not args.resource_id:
            # A resource to be created: only what the program gave is known.
            props = dict(args.inputs)
        with self._lock:
            self.resources.append(
                RecordedResource(
                    urn=request.urn,
                    resource_type=args.typ,
                    name=args.name,
                    parent_urn=request.parent or None,
                    custom=bool(args.custom),
                    physical_id=physical,
                    inputs=normalise_numbers(unwrap_secrets(args.inputs)),
                    props=normalise_numbers(unwrap_secrets(props)),
                    protect=bool(request.protect),
                    secret_inputs=frozenset(k for k, v in args.inputs.items() if _is_secret(v)),
                    import_id=args.resource_id or "",
                    dependencies=request.dependencies,
                    retain_on_delete=request.retain_on_delete,
                    ignore_changes=request.ignore_changes,
                    provider=request.provider,
                )
            )
        if self.preview and not args.resource_id:
            return None, props
        return physical, props

    def _stack_reference(self, name: str) -> tuple[str, dict[Any, Any]]:
        reference = self.stack_references.get(name)
        if reference is None:
            known = ", ".join(sorted(self.stack_references)) or "none"
            raise InvokeFailedError(f"unknown stack {name!r} (stacks offline: {known})")
        return name, {
            "name": name,
            "outputs": dict(reference.outputs),
            "secretOutputNames": sorted(reference.secret_names),
        }

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        try:
            return self.answers.call(args.token, args.args), []
        except InvokeFailedError as failure:
            return {}, [("", str(failure))]


@dataclass(frozen=True)
class _Request:
    urn: str
    parent: str
    protect: bool
    dependencies: frozenset[str]
    retain_on_delete: bool
    provider: str
    ignore_changes: tuple[str, ...] = ()


class RecordingMonitor(MockMonitor):
    """Hands each registration's URN, parent and protect flag to the mocks.

    `Mocks.new_resource` does not see them; the monitor runs each registration on one thread, so a
    thread-local carries them across.
    """

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self._recording = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        self._recording._request.current = _Request(
            urn=urn,
            parent=request.parent,
            protect=bool(request.protect),
            dependencies=frozenset(request.dependencies),
            retain_on_delete=bool(request.retainOnDelete),
            provider=str(request.provider),
            ignore_changes=tuple(request.ignoreChanges),
        )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]
