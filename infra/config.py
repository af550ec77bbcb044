"""The stack's configuration as frozen, typed sections, validated before any resource exists.

Values come from `pulumi.Config` inside the program, or from a plain mapping in tests and in
`mlstack plan`. Types and defaults are those `Pulumi.yaml` declares (see `infra.schema`); this
module checks what the values mean: ranges, formats and combinations. Every problem is collected
and reported together, each naming the key, the value given and what is allowed.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from infra import naming
from infra.eks_versions import SUPPORTED_KUBERNETES_VERSIONS, UPGRADE_POLICIES
from infra.regions import check_region
from infra.schema import NAMESPACE, ConfigKey, load_schema

# Config namespaces the program reads besides its own: the providers' settings and Pulumi's.
PROVIDER_NAMESPACES = ("aws", "kubernetes", "pulumi")

SAGEMAKER_ONLY = (
    "servingInstanceType",
    "endpointMinInstances",
    "endpointMaxInstances",
    "endpointInvocationsPerInstance",
    "endpointTrafficShifting",
    "endpointShiftPercent",
    "endpointShiftWaitMinutes",
    "latencyP99AlarmMs",
)
"""Keys of the SageMaker endpoints: no effect unless `servingTarget` is sagemaker or both."""

SERVED_ANYWHERE = ("imageDigests", "servingModelVersions", "logRetentionDays", "dataCapturePercent")
"""Keys of the cluster's that a SageMaker endpoint reads too."""

CLUSTER_ONLY = (
    "vpcCidr",
    "availabilityZoneCount",
    "natGateways",
    "privateEndpoints",
    "flowLogRetentionDays",
    "kubernetesVersion",
    "clusterUpgradePolicy",
    "clusterPublicAccess",
    "clusterPublicAccessCidrs",
    "clusterCreatorAdmin",
    "clusterAdminArns",
    "nodeInstanceTypes",
    "nodeCapacityType",
    "nodeMinSize",
    "nodeDesiredSize",
    "nodeMaxSize",
    "nodeDiskSizeGib",
    "nodeLabels",
    "nodeTaints",
    "gpuNodeGroup",
    "gpuInstanceType",
    "gpuMaxSize",
    "logRetentionDays",
    "registryReaderArns",
    "imageDigests",
    "servingModelVersions",
    "servingMinReplicas",
    "servingMaxReplicas",
    "servingCpuMillicores",
    "servingMemoryMib",
    "servingClientNamespaces",
    "servingIngressCertificateArn",
    "servingIngressInternetFacing",
    "trainingSchedule",
    "trainingMaxRuntimeMinutes",
    "autoApproveModels",
    "mlflowServerSize",
    "dataCapturePercent",
    "driftSchedule",
    "driftWindowHours",
    "driftPsiThreshold",
    "driftOutOfRangePercent",
    "driftRetrains",
)
"""Keys of the network, the cluster, the registry's resource policy, the images and the
workloads (serving, scheduled training, the drift job): no effect when the stack leaves the
cluster out (`mlstack:cluster` false), except those in SERVED_ANYWHERE while SageMaker
serves."""

NatPolicy = Literal["none", "single", "per-az"]
CapacityType = Literal["ON_DEMAND", "SPOT"]
ServingTarget = Literal["kubernetes", "sagemaker", "both"]

NAT_POLICIES: tuple[NatPolicy, ...] = ("none", "single", "per-az")
CAPACITY_TYPES: tuple[CapacityType, ...] = ("ON_DEMAND", "SPOT")
SERVING_TARGETS: tuple[ServingTarget, ...] = ("kubernetes", "sagemaker", "both")
TRAFFIC_SHIFTS = ("canary", "linear", "all-at-once")
"""How a SageMaker endpoint moves traffic to a new fleet: a canary share first, equal linear
steps, or everything at once; each step waits while the rollback alarms watch."""


# x86_64 families only: node groups use the AL2023 x86_64 AMIs the images are built for.
NODE_INSTANCE_FAMILIES: tuple[str, ...] = (
    "t3", "t3a", "m5", "m5a", "m6i", "m6a", "m7i", "m7a",
    "c5", "c6i", "c6a", "c7i", "c7a", "r5", "r6i", "r6a", "r7i", "r7a",
)  # fmt: skip
GPU_INSTANCE_FAMILIES: tuple[str, ...] = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")

# The only values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip

PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)

MAX_ENVIRONMENT = 16
_K8S_VERSION = re.compile(r"^1\.\d{2}$")
_EC2_INSTANCE = re.compile(
    r"^(?P<family>[a-z][a-z0-9-]*)\.(?:nano|micro|small|medium|large|\d*xlarge|metal)$"
)
_SAGEMAKER_INSTANCE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(?:medium|large|\d*xlarge)$")
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(?:role|user)/[\w+=,.@/-]+$")
_MODEL_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_LABEL = re.compile(
    r"^(?P<key>([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)=(?P<value>([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$"
)
TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")
# GitHub: an owner of 1-39 letters, digits and single inner hyphens; a name of letters, digits,
# '.', '_' and '-' (not '.' or '..'), at most 100.
_GITHUB_REPOSITORY = re.compile(
    r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$"
)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?]+$")

# SageMaker model package group names: 63 characters at most, "<model>-<environment>".
MAX_GROUP_NAME = 63


class ConfigError(ValueError):
    """The stack configuration has one or more invalid values; the message lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        header = f"invalid stack configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {problem}" for problem in problems)]))


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The VPC: address space, zones and how private subnets reach the internet."""

    vpc_cidr: str
    availability_zone_count: int
    nat_gateways: NatPolicy
    flow_log_retention_days: int
    private_endpoints: bool


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """The environment's KMS key and the data, models and capture buckets it encrypts."""

    kms_deletion_window_days: int
    noncurrent_version_retention_days: int
    incomplete_upload_abort_days: int
    capture_retention_days: int
    force_destroy_buckets: bool


@dataclass(frozen=True, kw_only=True)
class Taint:
    """A node taint; `effect` in the EKS API's spelling (NO_SCHEDULE, ...)."""

    key: str
    value: str
    effect: str

    @property
    def kubernetes_effect(self) -> str:
        """The effect as Kubernetes spells it (NoSchedule, ...), for tolerations."""
        return next(name for name, eks in TAINT_EFFECTS.items() if eks == self.effect)


@dataclass(frozen=True, kw_only=True)
class NodeGroupConfig:
    """One managed node group."""

    name: str
    instance_types: tuple[str, ...]
    capacity_type: CapacityType
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    gpu: bool = False


GPU_TAINT = Taint(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
GPU_MIN_DISK_GIB = 100  # CUDA images are large


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """The EKS control plane and its node groups."""

    enabled: bool
    """Declare the cluster, its node groups and the workloads' IRSA roles at all."""
    kubernetes_version: str
    upgrade_policy: str
    """EKS's support type: STANDARD (upgraded at the end of standard support) or EXTENDED."""
    public_access: bool
    public_access_cidrs: tuple[str, ...]
    creator_is_admin: bool
    admin_arns: tuple[str, ...]
    node_instance_types: tuple[str, ...]
    node_capacity_type: CapacityType
    node_min_size: int
    node_desired_size: int
    node_max_size: int
    node_disk_size_gib: int
    node_labels: tuple[tuple[str, str], ...]
    node_taints: tuple[Taint, ...]
    gpu_node_group: bool
    gpu_instance_type: str
    gpu_max_size: int

    @property
    def node_groups(self) -> tuple[NodeGroupConfig, ...]:
        """The general group, and the GPU group when it is on (scales from zero, tainted)."""
        general = NodeGroupConfig(
            name="general",
            instance_types=self.node_instance_types,
            capacity_type=self.node_capacity_type,
            min_size=self.node_min_size,
            desired_size=self.node_desired_size,
            max_size=self.node_max_size,
            disk_size_gib=self.node_disk_size_gib,
            labels=(("mlstack.io/node-group", "general"), *self.node_labels),
            taints=self.node_taints,
        )
        if not self.gpu_node_group:
            return (general,)
        gpu = NodeGroupConfig(
            name="gpu",
            instance_types=(self.gpu_instance_type,),
            capacity_type=self.node_capacity_type,
            min_size=0,
            desired_size=0,
            max_size=self.gpu_max_size,
            disk_size_gib=max(self.node_disk_size_gib, GPU_MIN_DISK_GIB),
            labels=(
                ("mlstack.io/node-group", "gpu"),
                ("mlstack.io/accelerator", "nvidia"),
                # The cluster autoscaler's GPU label on AWS: a node carrying it whose GPUs are
                # not yet allocatable (the device plugin is starting) is not scaled up again.
                ("k8s.amazonaws.com/accelerator", "nvidia"),
            ),
            taints=(GPU_TAINT,),
            gpu=True,
        )
        return (general, gpu)


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    """Container image repositories and the models registered in SageMaker."""

    image_retention_count: int
    untagged_image_expiry_days: int
    image_digests: Mapping[str, str]
    """Prebuilt images by name (`serving`, `training`): `sha256:<digest>`; the others are built."""
    models: tuple[str, ...]
    reader_arns: tuple[str, ...]
    """Principals that may look up model versions; empty means the stack's own account."""


@dataclass(frozen=True, kw_only=True)
class ServingConfig:
    """Which model version is served, where, and at what size."""

    target: ServingTarget
    model_versions: Mapping[str, int]
    """The pinned model package version of each model that is served, by model name."""
    min_replicas: int
    max_replicas: int
    cpu_millicores: int
    memory_mib: int
    client_namespaces: tuple[str, ...]
    """Namespaces whose pods may call the models on the cluster."""
    ingress_certificate_arn: str
    """An ACM certificate: when set, each model is served over HTTPS through its own ALB."""
    ingress_internet_facing: bool
    """The ALBs' scheme: internal (reachable from the VPC and what is peered with it) unless on."""
    instance_type: str
    data_capture_percent: int
    endpoint_min_instances: int
    endpoint_max_instances: int
    endpoint_invocations_per_instance: int
    """The autoscaling target: invocations per instance per minute."""
    endpoint_traffic_shifting: str
    endpoint_shift_percent: int
    """The canary's share, or each linear step's."""
    endpoint_shift_wait_minutes: int


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """When and how training runs, and whether passing versions are approved automatically."""

    schedule: str
    max_runtime_minutes: int
    auto_approve: bool
    mlflow_server_size: str
    """A SageMaker managed MLflow tracking server of this size (Small, Medium, Large) records
    training's runs; empty: none."""


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """Log retention and alarm settings."""

    log_retention_days: int
    alarm_email: str
    latency_p99_alarm_ms: int
    monthly_budget_usd: int
    drift_schedule: str
    """Five-field cron (UTC) of the drift job; empty: no drift job."""
    drift_window_hours: int
    drift_psi_threshold: float
    drift_out_of_range_percent: int
    drift_retrains: bool
    """Whether drift starts a run of the model's training CronJob."""


@dataclass(frozen=True, kw_only=True)
class CiConfig:
    """Who deploys the stack from CI."""

    github_repository: str
    """`owner/name` whose GitHub Actions workflows may assume the stack's CI roles; empty: the
    stack declares no CI roles (and no permissions boundary)."""
    github_connection_arn: str
    """The CodeConnections connection through which the environment's runner (in its VPC, with
    the cluster) receives the repository's jobs."""

    @property
    def runner(self) -> bool:
        return bool(self.github_repository and self.github_connection_arn)


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything one stack is configured with, checked."""

    environment: str
    region: str
    """`aws:region`, which the program reads too (the registry lookups); empty when the stack
    leaves it to the provider's environment."""
    deletion_protection: bool
    network: NetworkConfig
    storage: StorageConfig
    cluster: ClusterConfig
    registry: RegistryConfig
    serving: ServingConfig
    training: TrainingConfig
    monitoring: MonitoringConfig
    ci: CiConfig


T = TypeVar("T")
Check = Callable[[T], str | None]


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


class _Reader:
    """Reads declared keys by their declared type, collecting every problem instead of stopping."""

    def __init__(self, values: Mapping[str, Any], schema: Mapping[str, ConfigKey]) -> None:
        self.schema = schema
        self.problems: list[str] = []
        self.failed: set[str] = set()
        self.values: dict[str, Any] = {}
        self.provider_values: dict[str, Any] = {}
        for full_name, value in values.items():
            namespace, _, name = full_name.partition(":")
            if not name:
                namespace, name = NAMESPACE, namespace
            if namespace in PROVIDER_NAMESPACES:
                self.provider_values[full_name] = value
                continue
            if namespace != NAMESPACE:
                self.problems.append(
                    f"{full_name}: unknown namespace {namespace!r} (value {_show(value)}); "
                    f"allowed: {NAMESPACE}:<key> for the keys declared in Pulumi.yaml, or a "
                    f"provider's settings under {', '.join(p + ':' for p in PROVIDER_NAMESPACES)}"
                    f"{_namespace_suggestion(namespace, name, schema)}"
                )
                continue
            if name not in schema:
                self.problems.append(
                    f"{NAMESPACE}:{name}: unknown key (value {_show(value)}); allowed: the keys "
                    f"declared in Pulumi.yaml{_suggestion(name, schema)}"
                )
                continue
            self.values[name] = value

    def fail(self, name: str, value: Any, allowed: str) -> None:
        self.failed.add(name)
        self.problems.append(f"{NAMESPACE}:{name} = {_show(value)}: allowed: {allowed}")

    def is_default(self, name: str) -> bool:
        """Whether a given value is the declared default, however the engine spelt it (the
        engine passes numbers, booleans and lists as text)."""
        key, raw = self.schema[name], self.values[name]
        if isinstance(raw, str) and key.type != "string":
            with contextlib.suppress(ValueError):
                raw = json.loads(raw)
        return bool(raw == key.default)

    def valid(self, *names: str) -> bool:
        """Whether these keys read cleanly, so a rule combining them is worth checking."""
        return not self.failed.intersection(names)

    def _raw(self, name: str) -> tuple[bool, Any]:
        key = self.schema[name]
        if name in self.values:
            return True, self.values[name]
        if key.has_default:
            return True, key.default
        self.failed.add(name)
        self.problems.append(
            f"{NAMESPACE}:{name}: missing; allowed: {key.description or 'a value'} "
            f"(set it with `pulumi config set {NAMESPACE}:{name} ...`)"
        )
        return False, None

    def string(self, name: str, check: Check[str] | None = None) -> str:
        present, raw = self._raw(name)
        if not present:
            return ""
        if isinstance(raw, float | int) and not isinstance(raw, bool):
            dropped = ", dropping trailing zeros" if isinstance(raw, float) else ""
            self.fail(
                name,
                raw,
                "a string; put the value in quotes in the stack file (YAML reads an unquoted "
                f"{raw} as a number{dropped})",
            )
            return ""
        if not isinstance(raw, str):
            self.fail(name, raw, "a string")
            return ""
        if check is not None and (allowed := check(raw)) is not None:
            self.fail(name, raw, allowed)
        return raw

    def choice(self, name: str, options: tuple[T, ...]) -> T:
        value = self.string(name, lambda v: None if v in options else _one_of(options))
        return cast(T, value) if value in options else options[0]

    def integer(self, name: str, low: int, high: int) -> int:
        present, raw = self._raw(name)
        if not present:
            return low
        value = _as_int(raw)
        if value is None:
            self.fail(name, raw, f"a whole number from {low} to {high}")
            return low
        if not low <= value <= high:
            self.fail(name, value, f"a whole number from {low} to {high}")
        return value

    def integer_in(self, name: str, options: tuple[int, ...]) -> int:
        present, raw = self._raw(name)
        if not present:
            return options[0]
        value = _as_int(raw)
        if value is None or value not in options:
            self.fail(name, raw, _one_of(options))
            return options[0]
        return value

    def boolean(self, name: str) -> bool:
        present, raw = self._raw(name)
        if not present:
            return False
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.fail(name, raw, "true or false")
        return False

    def strings(self, name: str, check: Check[str] | None = None) -> tuple[str, ...]:
        present, raw = self._raw(name)
        if not present:
            return ()
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                self.fail(name, raw, "a list of strings")
                return ()
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            self.fail(name, raw, "a list of strings")
            return ()
        items = tuple(raw)
        for item in items:
            if check is not None and (allowed := check(item)) is not None:
                self.fail(name, item, allowed)
        return items


def _namespace_suggestion(namespace: str, name: str, schema: Mapping[str, ConfigKey]) -> str:
    if not difflib.get_close_matches(namespace, [NAMESPACE], n=1, cutoff=0.6):
        return ""
    key = name if name in schema else next(iter(difflib.get_close_matches(name, list(schema))), "")
    return f" (did you mean {NAMESPACE}:{key or name}?)"


def _suggestion(name: str, schema: Mapping[str, ConfigKey]) -> str:
    close = difflib.get_close_matches(name, list(schema), n=1)
    return f" (did you mean {NAMESPACE}:{close[0]}?)" if close else ""


def _one_of(options: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(str(option) for option in options)


def _as_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    # The mock runtime and JSON hand integers back as floats (2.0).
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
        return int(raw)
    return None


ENVIRONMENT_RULE = (
    f"2-{MAX_ENVIRONMENT} characters: a lowercase letter, then lowercase letters or digits"
)


def environment_problem(value: str) -> str | None:
    """Which name derived from the environment `value` would break, and why; None when none.

    The environment is part of the cluster name (`mlstack-<env>`), the key alias, each model
    package group (`<model>-<env>`) and Kubernetes labels; the rule is the strictest of theirs."""
    group = naming.model_package_group("<model>", value)
    if len(value) > MAX_ENVIRONMENT:
        return (
            f"names made from it ({naming.cluster_name(value)}, {group}, labels) must fit the "
            "length limits of EKS, SageMaker and Kubernetes once a model name is added"
        )
    if len(value) < 2:
        return "a one-letter environment is too easily mistaken in names and labels"
    if not re.fullmatch(r"[a-z0-9-]+", value):
        bad = sorted({c for c in value if not re.fullmatch(r"[a-z0-9-]", c)})
        return (
            f"{''.join(bad)!r} cannot appear in Kubernetes labels and object names, which carry "
            f"the environment and allow only lowercase letters, digits and '-'"
        )
    if not value[0].isalpha():
        return f"the cluster name {naming.cluster_name(value)} and labels need a letter first"
    if "-" in value:
        # `<model>-<env>` names end in `-<env>`, and the CI roles are granted this stack's
        # endpoints, groups and alarms by that ending: with a '-' in an environment's name,
        # `*-<env>` of one environment could match another's (`*-prod` matches `x-pre-prod`).
        return (
            f"names made from it end in '-{value}' ({group}), and the CI roles find the stack's "
            f"own resources by that ending, which another environment's names must never share"
        )
    return None


def check_environment(value: str) -> str | None:
    problem = environment_problem(value)
    return None if problem is None else f"{ENVIRONMENT_RULE} ({problem})"


def check_private_cidr(value: str) -> str | None:
    allowed = "a private IPv4 network (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) from /16 to /20"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return allowed
    private = any(network.subnet_of(parent) for parent in PRIVATE_NETWORKS)
    return None if private and 16 <= network.prefixlen <= 20 else allowed


def check_public_cidr(value: str) -> str | None:
    allowed = "an IPv4 network such as 203.0.113.0/24, narrower than 0.0.0.0/0"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return allowed
    return None if network.prefixlen > 0 else allowed


def check_kubernetes_version(value: str) -> str | None:
    if _K8S_VERSION.match(value) and value in SUPPORTED_KUBERNETES_VERSIONS:
        return None
    allowed = "a version EKS supports, as MAJOR.MINOR: " + _one_of(SUPPORTED_KUBERNETES_VERSIONS)
    if re.fullmatch(r"1\.\d", value):
        allowed += f" (if the stack file says {value}0 unquoted, YAML read it as {value}: quote it)"
    return allowed


def _instance_family(families: tuple[str, ...], kind: str) -> Check[str]:
    def check(value: str) -> str | None:
        match = _EC2_INSTANCE.match(value)
        if match and match["family"] in families:
            return None
        return f"an EC2 instance type (family.size) of a known {kind} family: " + ", ".join(
            families
        )

    return check


def check_sagemaker_instance(value: str) -> str | None:
    if _SAGEMAKER_INSTANCE.match(value):
        return None
    return "a SageMaker instance type such as ml.m6i.large (ml.<family>.<size>)"


def check_principal_arn(value: str) -> str | None:
    if _IAM_PRINCIPAL_ARN.match(value):
        return None
    return "an IAM role or user ARN: arn:aws:iam::<12-digit account>:role/<name>"


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


_CERTIFICATE_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$"
)


def check_certificate_arn(value: str) -> str | None:
    if not value or _CERTIFICATE_ARN.match(value):
        return None
    return (
        "an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<uuid>, "
        "or empty for no ingress"
    )


def check_namespace_name(value: str) -> str | None:
    if _DNS_LABEL.match(value):
        return None
    return "a Kubernetes namespace name: lowercase letters, digits and '-', at most 63"


def check_model_name(value: str) -> str | None:
    if _MODEL_NAME.match(value):
        return None
    return (
        "a SageMaker name in lowercase: letters, digits and '-', starting and ending with a "
        "letter or digit"
    )


def check_pin(value: str) -> str | None:
    """`<model>=<version>`: a model name and a registered version number."""
    model, equals, version = value.partition("=")
    if equals and check_model_name(model) is None and version.isdigit() and int(version) >= 1:
        return None
    return "<model>=<version>, a model of mlstack:models and a version from 1, such as demo=3"


def _pins(entries: tuple[str, ...]) -> dict[str, int]:
    valid = (entry.partition("=") for entry in entries if check_pin(entry) is None)
    return {model: int(version) for model, _, version in valid}


def check_image_digest(value: str) -> str | None:
    """`<image>=sha256:<64 hex digits>`, one of the images the stack builds."""
    image, equals, digest = value.partition("=")
    if equals and image in naming.IMAGES and _DIGEST.match(digest):
        return None
    return f"<image>=sha256:<64 hex digits>, the image one of {', '.join(naming.IMAGES)}"


def _image_digests(entries: tuple[str, ...]) -> dict[str, str]:
    valid = (entry.partition("=") for entry in entries if check_image_digest(entry) is None)
    return {image: digest for image, _, digest in valid}


def parse_label(value: str) -> tuple[str, str] | None:
    match = _LABEL.match(value)
    return (match["key"], match["value"]) if match else None


def check_label(value: str) -> str | None:
    if parse_label(value) is not None:
        return None
    return "a Kubernetes label as key=value, e.g. team=ml or example.com/tier=batch"


def parse_taint(value: str) -> Taint | None:
    label, _, effect = value.rpartition(":")
    pair = parse_label(label)
    if pair is None or effect not in TAINT_EFFECTS:
        return None
    return Taint(key=pair[0], value=pair[1], effect=TAINT_EFFECTS[effect])


def check_taint(value: str) -> str | None:
    if parse_taint(value) is not None:
        return None
    return "a taint as key=value:Effect with Effect one of " + ", ".join(TAINT_EFFECTS)


def check_email(value: str) -> str | None:
    return None if value == "" or _EMAIL.match(value) else "an e-mail address, or empty for none"


def check_github_repository(value: str) -> str | None:
    if value == "" or _GITHUB_REPOSITORY.match(value):
        return None
    return (
        "a GitHub repository as <owner>/<name> (e.g. example-org/mlstack, no URL, no "
        "wildcards), or empty for no CI roles"
    )


_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(?:codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
    r"connection/[0-9a-f-]{36}$"
)


def check_connection_arn(value: str) -> str | None:
    if value == "" or _CONNECTION_ARN.match(value):
        return None
    return (
        "the ARN of a CodeConnections connection to GitHub "
        "(arn:aws:codeconnections:<region>:<account>:connection/<id>), or empty"
    )


def check_psi(value: str) -> str | None:
    try:
        if 0 < float(value) <= 10:
            return None
    except ValueError:
        pass
    return "a population stability index above 0 and at most 10, such as 0.2"


def _psi(value: str) -> float:
    """The threshold read, or a placeholder when it was refused (the refusal is reported)."""
    return float(value) if check_psi(value) is None else 0.0


MLFLOW_SERVER_SIZES = ("Small", "Medium", "Large")


def check_mlflow_server_size(value: str) -> str | None:
    if value == "" or value in MLFLOW_SERVER_SIZES:
        return None
    return f"{_one_of(MLFLOW_SERVER_SIZES)} (SageMaker's sizes, capitalised), or empty for none"


def check_cron(value: str) -> str | None:
    fields = value.split()
    if value == "" or (len(fields) == 5 and all(_CRON_FIELD.match(field) for field in fields)):
        return None
    return "a 5-field cron expression such as '0 3 * * 1' (UTC), or empty for on demand only"


def load_config(
    values: Mapping[str, Any], schema: Mapping[str, ConfigKey] | None = None
) -> StackConfig:
    """Check `values` (keys with or without the `mlstack:` prefix) and build the typed config.

    Raises `ConfigError` listing every problem; nothing is half-built.
    """
    read = _Reader(values, schema if schema is not None else load_schema())
    environment = read.string("environment", check_environment)
    _check_region(read)
    deletion_protection = read.boolean("deletionProtection")

    network = NetworkConfig(
        vpc_cidr=read.string("vpcCidr", check_private_cidr),
        availability_zone_count=read.integer("availabilityZoneCount", 2, 6),
        nat_gateways=read.choice("natGateways", NAT_POLICIES),
        flow_log_retention_days=read.integer_in("flowLogRetentionDays", LOG_RETENTION_DAYS),
        private_endpoints=read.boolean("privateEndpoints"),
    )
    storage = StorageConfig(
        kms_deletion_window_days=read.integer("kmsDeletionWindowDays", 7, 30),
        noncurrent_version_retention_days=read.integer("noncurrentVersionRetentionDays", 1, 3650),
        incomplete_upload_abort_days=read.integer("incompleteUploadAbortDays", 1, 365),
        capture_retention_days=read.integer("captureRetentionDays", 1, 3650),
        force_destroy_buckets=read.boolean("forceDestroyBuckets"),
    )
    cluster = ClusterConfig(
        enabled=read.boolean("cluster"),
        kubernetes_version=read.string("kubernetesVersion", check_kubernetes_version),
        upgrade_policy=read.choice("clusterUpgradePolicy", UPGRADE_POLICIES),
        public_access=read.boolean("clusterPublicAccess"),
        public_access_cidrs=read.strings("clusterPublicAccessCidrs", check_public_cidr),
        creator_is_admin=read.boolean("clusterCreatorAdmin"),
        admin_arns=read.strings("clusterAdminArns", check_principal_arn),
        node_instance_types=read.strings(
            "nodeInstanceTypes", _instance_family(NODE_INSTANCE_FAMILIES, "general-purpose")
        ),
        node_capacity_type=read.choice("nodeCapacityType", CAPACITY_TYPES),
        node_min_size=read.integer("nodeMinSize", 0, 100),
        node_desired_size=read.integer("nodeDesiredSize", 0, 100),
        node_max_size=read.integer("nodeMaxSize", 1, 100),
        node_disk_size_gib=read.integer("nodeDiskSizeGib", 20, 1000),
        node_labels=tuple(
            pair
            for pair in map(parse_label, read.strings("nodeLabels", check_label))
            if pair is not None
        ),
        node_taints=tuple(
            taint
            for taint in map(parse_taint, read.strings("nodeTaints", check_taint))
            if taint is not None
        ),
        gpu_node_group=read.boolean("gpuNodeGroup"),
        gpu_instance_type=read.string(
            "gpuInstanceType", _instance_family(GPU_INSTANCE_FAMILIES, "GPU")
        ),
        gpu_max_size=read.integer("gpuMaxSize", 1, 32),
    )
    registry = RegistryConfig(
        image_retention_count=read.integer("imageRetentionCount", 1, 1000),
        untagged_image_expiry_days=read.integer("untaggedImageExpiryDays", 1, 90),
        image_digests=_image_digests(read.strings("imageDigests", check_image_digest)),
        models=read.strings("models", check_model_name),
        reader_arns=read.strings("registryReaderArns", check_principal_arn),
    )
    serving = ServingConfig(
        target=read.choice("servingTarget", SERVING_TARGETS),
        model_versions=_pins(read.strings("servingModelVersions", check_pin)),
        min_replicas=read.integer("servingMinReplicas", 1, 100),
        max_replicas=read.integer("servingMaxReplicas", 1, 100),
        cpu_millicores=read.integer("servingCpuMillicores", 100, 16_000),
        memory_mib=read.integer("servingMemoryMib", 128, 65_536),
        client_namespaces=read.strings("servingClientNamespaces", check_namespace_name),
        ingress_certificate_arn=read.string("servingIngressCertificateArn", check_certificate_arn),
        ingress_internet_facing=read.boolean("servingIngressInternetFacing"),
        instance_type=read.string("servingInstanceType", check_sagemaker_instance),
        data_capture_percent=read.integer("dataCapturePercent", 0, 100),
        endpoint_min_instances=read.integer("endpointMinInstances", 1, 100),
        endpoint_max_instances=read.integer("endpointMaxInstances", 1, 100),
        endpoint_invocations_per_instance=read.integer(
            "endpointInvocationsPerInstance", 1, 1_000_000
        ),
        endpoint_traffic_shifting=read.choice("endpointTrafficShifting", TRAFFIC_SHIFTS),
        endpoint_shift_percent=read.integer("endpointShiftPercent", 1, 50),
        endpoint_shift_wait_minutes=read.integer("endpointShiftWaitMinutes", 1, 60),
    )
    training = TrainingConfig(
        schedule=read.string("trainingSchedule", check_cron),
        max_runtime_minutes=read.integer("trainingMaxRuntimeMinutes", 1, 4320),
        auto_approve=read.boolean("autoApproveModels"),
        mlflow_server_size=read.string("mlflowServerSize", check_mlflow_server_size),
    )
    monitoring = MonitoringConfig(
        log_retention_days=read.integer_in("logRetentionDays", LOG_RETENTION_DAYS),
        alarm_email=read.string("alarmEmail", check_email),
        latency_p99_alarm_ms=read.integer("latencyP99AlarmMs", 1, 60_000),
        monthly_budget_usd=read.integer("monthlyBudgetUsd", 0, 10_000_000),
        drift_schedule=read.string("driftSchedule", check_cron),
        drift_window_hours=read.integer("driftWindowHours", 1, 168),
        drift_psi_threshold=_psi(read.string("driftPsiThreshold", check_psi)),
        drift_out_of_range_percent=read.integer("driftOutOfRangePercent", 1, 100),
        drift_retrains=read.boolean("driftRetrains"),
    )
    ci = CiConfig(
        github_repository=read.string("ciGithubRepository", check_github_repository),
        github_connection_arn=read.string("ciGithubConnectionArn", check_connection_arn),
    )
    region = read.provider_values.get("aws:region")
    config = StackConfig(
        environment=environment,
        region=region if isinstance(region, str) else "",
        deletion_protection=deletion_protection,
        network=network,
        storage=storage,
        cluster=cluster,
        registry=registry,
        serving=serving,
        training=training,
        monitoring=monitoring,
        ci=ci,
    )
    _check_combinations(config, read)
    if read.problems:
        raise ConfigError(read.problems)
    return config


def _check_region(read: _Reader) -> None:
    """`aws:region` is the provider's setting; it is only checked here, since the provider skips
    region validation and a misspelt region would fail at the first API call."""
    region = read.provider_values.get("aws:region")
    if region is None:
        return
    allowed = check_region(region) if isinstance(region, str) else "an AWS region name"
    if allowed is not None:
        read.failed.add("aws:region")
        read.problems.append(f"aws:region = {_show(region)}: allowed: {allowed}")


def _check_combinations(config: StackConfig, read: _Reader) -> None:
    """Rules that involve more than one key, each reported against the key a user would change.

    A rule is skipped when one of its keys is already reported, so one mistake gives one message.
    """
    _check_node_sizes(config.cluster, read)
    _check_public_endpoint(config.cluster, read)
    _check_deletion_settings(config, read)
    _check_replicas(config.serving, read)
    _check_models(config, read)
    _check_pins(config, read)
    _check_egress(config.network, read)
    _check_runner(config, read)
    _check_default_tags(config, read)
    _check_ingress(config, read)
    _check_retraining(config, read)
    _check_effect(config, read)
    _check_endpoint_instances(config.serving, read)


def _check_node_sizes(cluster: ClusterConfig, read: _Reader) -> None:
    if not read.valid("nodeMinSize", "nodeDesiredSize", "nodeMaxSize"):
        return
    order = "nodeMinSize <= nodeDesiredSize <= nodeMaxSize"
    if cluster.node_min_size > cluster.node_desired_size:
        read.fail(
            "nodeMinSize",
            cluster.node_min_size,
            f"at most nodeDesiredSize ({cluster.node_desired_size}); {order}",
        )
    elif cluster.node_desired_size > cluster.node_max_size:
        read.fail(
            "nodeDesiredSize",
            cluster.node_desired_size,
            f"at most nodeMaxSize ({cluster.node_max_size}); {order}",
        )


def _check_public_endpoint(cluster: ClusterConfig, read: _Reader) -> None:
    if not read.valid("clusterPublicAccess", "clusterPublicAccessCidrs"):
        return
    if cluster.public_access and not cluster.public_access_cidrs:
        read.fail(
            "clusterPublicAccessCidrs",
            [],
            "at least one CIDR when clusterPublicAccess is true (or turn clusterPublicAccess off)",
        )
    elif not cluster.public_access and cluster.public_access_cidrs:
        read.fail(
            "clusterPublicAccessCidrs",
            list(cluster.public_access_cidrs),
            "an empty list while clusterPublicAccess is false (the endpoint is private only)",
        )


def _check_deletion_settings(config: StackConfig, read: _Reader) -> None:
    if not read.valid("forceDestroyBuckets", "deletionProtection"):
        return
    if config.storage.force_destroy_buckets and config.deletion_protection:
        read.fail(
            "forceDestroyBuckets",
            True,
            "false while deletionProtection is true; turn both the other way for a "
            "disposable environment",
        )


def _check_endpoint_instances(serving: ServingConfig, read: _Reader) -> None:
    if not read.valid("endpointMinInstances", "endpointMaxInstances"):
        return
    if serving.endpoint_max_instances < serving.endpoint_min_instances:
        read.fail(
            "endpointMaxInstances",
            serving.endpoint_max_instances,
            f"at least endpointMinInstances ({serving.endpoint_min_instances})",
        )


def _check_replicas(serving: ServingConfig, read: _Reader) -> None:
    if not read.valid("servingMinReplicas", "servingMaxReplicas"):
        return
    if serving.min_replicas > serving.max_replicas:
        read.fail(
            "servingMaxReplicas",
            serving.max_replicas,
            f"at least servingMinReplicas ({serving.min_replicas})",
        )


def _check_egress(network: NetworkConfig, read: _Reader) -> None:
    if not read.valid("natGateways", "privateEndpoints"):
        return
    if network.nat_gateways == "none" and not network.private_endpoints:
        read.fail(
            "privateEndpoints",
            False,
            "true while natGateways is none: without NAT, nodes reach ECR, STS, EC2 and "
            "CloudWatch Logs only through VPC interface endpoints",
        )


def _check_runner(config: StackConfig, read: _Reader) -> None:
    """A stack with a cluster and CI roles deploys its workloads from a runner in its VPC: it
    needs the connection that brings it the jobs, the repository they come from, and NAT to
    reach GitHub (which no VPC endpoint offers)."""
    if not read.valid(
        "ciGithubRepository", "ciGithubConnectionArn", "cluster", "natGateways", "aws:region"
    ):
        return
    ci, cluster = config.ci, config.cluster.enabled
    if cluster and ci.github_repository and not ci.github_connection_arn:
        read.fail(
            "ciGithubConnectionArn",
            "",
            "the ARN of the account's CodeConnections connection to GitHub while "
            "ciGithubRepository is set: the workloads deploy from a runner in the VPC, which "
            "receives its jobs through it (docs/runbooks/new-environment.md says how to make it)",
        )
    elif ci.github_connection_arn and not ci.github_repository:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            "empty while ciGithubRepository is empty (no repository sends the runner jobs)",
        )
    elif ci.github_connection_arn and not cluster:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            "empty while mlstack:cluster is false (no VPC and no cluster API to run beside)",
        )
    elif ci.runner and config.region and ci.github_connection_arn.split(":")[3] != config.region:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            f"a connection in the stack's region ({config.region}): CodeBuild uses connections "
            "of its own region",
        )
    elif ci.runner and cluster and config.network.nat_gateways == "none":
        read.fail(
            "natGateways",
            "none",
            "single or per-az while the stack has a CI runner: it reaches GitHub and Pulumi "
            "Cloud through NAT (no VPC endpoint offers them)",
        )


def _check_default_tags(config: StackConfig, read: _Reader) -> None:
    """Every resource carries `environment: <env>` (the provider's default tags): the budget
    counts the environment's cost by it, and the CI roles know the stack's own roles, models and
    alarms by it."""
    if not read.valid("environment"):
        return
    tags = read.provider_values.get("aws:defaultTags")
    if isinstance(tags, str):
        with contextlib.suppress(ValueError):
            tags = json.loads(tags)
    found = (tags or {}).get("tags", {}).get("environment") if isinstance(tags, Mapping) else None
    if found != config.environment:
        read.failed.add("aws:defaultTags")
        read.problems.append(
            f"aws:defaultTags = {_show(tags)}: allowed: a mapping whose tags include "
            f"environment: {config.environment} (the budget and the CI roles find the stack's "
            "resources by it)"
        )


def _check_ingress(config: StackConfig, read: _Reader) -> None:
    if not read.valid("servingIngressCertificateArn", "servingIngressInternetFacing", "aws:region"):
        return
    certificate = config.serving.ingress_certificate_arn
    if config.serving.ingress_internet_facing and not certificate:
        read.fail(
            "servingIngressInternetFacing",
            True,
            "false while servingIngressCertificateArn is empty (there is no ingress to expose)",
        )
    certificate_region = certificate.split(":")[3] if certificate else ""
    if certificate and config.region and certificate_region != config.region:
        read.fail(
            "servingIngressCertificateArn",
            certificate,
            f"a certificate in the stack's region ({config.region}): "
            "a load balancer only uses certificates of its own region",
        )


def _check_models(config: StackConfig, read: _Reader) -> None:
    if not read.valid("models", "environment"):
        return
    models = config.registry.models
    if not models:
        read.fail("models", [], "at least one model name")
    if len(set(models)) != len(models):
        read.fail("models", list(models), "each model name once")
    for model in models:
        if len(naming.model_package_group(model, config.environment)) > MAX_GROUP_NAME:
            read.fail(
                "models",
                model,
                f"a name short enough that its model package group "
                f"'{naming.model_package_group(model, config.environment)}' fits in "
                f"{MAX_GROUP_NAME} characters",
            )


def _check_pins(config: StackConfig, read: _Reader) -> None:
    if not read.valid("servingModelVersions", "models"):
        return
    entries = read.strings("servingModelVersions")
    models = [entry.partition("=")[0] for entry in entries]
    for model in sorted({m for m in models if models.count(m) > 1}):
        read.fail("servingModelVersions", model, "one version per model")
    for model in config.serving.model_versions:
        if model not in config.registry.models:
            read.fail(
                "servingModelVersions",
                f"{model}={config.serving.model_versions[model]}",
                f"a model listed in mlstack:models ({', '.join(config.registry.models)})",
            )


def idle_keys(config: StackConfig) -> dict[str, str]:
    """The keys that can have no effect in this stack, each with what leaves it idle and what
    would give it one."""
    idle = {}
    on_sagemaker = config.serving.target in ("sagemaker", "both")
    if not on_sagemaker:
        for key in SAGEMAKER_ONLY:
            idle[key] = (
                f"while {NAMESPACE}:servingTarget is {config.serving.target} (it takes effect "
                "with sagemaker or both)"
            )
    if not config.cluster.enabled:
        for key in CLUSTER_ONLY:
            if not (on_sagemaker and key in SERVED_ANYWHERE):
                idle[key] = f"while {NAMESPACE}:cluster is false (it takes effect with true)"
    return idle


def _check_retraining(config: StackConfig, read: _Reader) -> None:
    """Retraining on drift starts from the training CronJob, which needs a schedule."""
    if not read.valid("driftRetrains", "trainingSchedule", "driftSchedule"):
        return
    if config.monitoring.drift_retrains and not config.training.schedule:
        read.fail(
            "driftRetrains",
            True,
            "false while mlstack:trainingSchedule is empty (a run is started from the training "
            "CronJob, which only a schedule declares)",
        )
    elif config.monitoring.drift_retrains and not config.monitoring.drift_schedule:
        read.fail(
            "driftRetrains", True, "false while mlstack:driftSchedule is empty (no drift job)"
        )


def _check_effect(config: StackConfig, read: _Reader) -> None:
    """A key set to anything but its default where it can have no effect is refused, rather
    than accepted and ignored: nobody takes it for deployed."""
    if not read.valid("servingTarget", "cluster"):
        return
    for key, why in idle_keys(config).items():
        if key in read.values and read.valid(key) and not read.is_default(key):
            default = read.schema[key].default
            read.fail(key, read.values[key], f"its default ({_show(default)}), {why}")


def runtime_config_values() -> dict[str, Any]:
    """Every key of the running stack's config bag, declared or not, as the engine passed it.

    The engine hands the program all of the stack's values (defaults from Pulumi.yaml merged in),
    through the runtime's config map or the PULUMI_CONFIG variable; `pulumi.Config.get` only
    answers for names asked for, which would let a misspelt key pass unseen."""
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def from_pulumi() -> StackConfig:
    """Read the running stack's configuration; a bad value stops the program with the message."""
    import pulumi

    try:
        config = load_config(runtime_config_values())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from error
    return config
