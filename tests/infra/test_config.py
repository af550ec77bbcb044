"""The typed configuration: what valid stacks read as, and how each bad value is reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pulumi
import pytest

from infra.config.eks_versions import (
    ADDON_VERSIONS,
    ADDONS,
    SUPPORTED_KUBERNETES_VERSIONS,
    support_window,
)
from infra.config.errors import ConfigError
from infra.config.reader import runtime_config_values
from infra.config.schema import load_schema
from infra.config.sections.serving import traffic_shift
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings, merge_with_defaults
from infra.offline.runner import run_program
from infra.project.paths import known_stacks
from mlstack_policy.eks_support import EKS_RELEASE_CALENDAR

from .conftest import RunStack

VALID = {"mlstack:environment": "test", "aws:defaultTags": {"tags": {"environment": "test"}}}
CONNECTION = (
    "arn:aws:codeconnections:eu-west-1:123456789012:connection/0f6a3c4e-5b1d-4e8f-9a2b-7c3d1e5f6a70"
)


def test_an_ingress_certificate_must_be_in_the_stacks_region() -> None:
    certificate = (
        "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    )
    values = {
        **VALID,
        "aws:region": "eu-west-1",
        "mlstack:servingIngressCertificateArn": certificate,
    }
    with pytest.raises(ConfigError) as caught:
        load_config(values)
    [problem] = caught.value.problems
    assert problem.startswith(f"mlstack:servingIngressCertificateArn = '{certificate}'")
    assert "a certificate in the stack's region (eu-west-1)" in problem
    load_config({**values, "aws:region": "us-east-1"})


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
TRUST_STORE = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:truststore/clients/0123456789abcdef"
)


def problems_for(**values: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config({**VALID, **{k if ":" in k else f"mlstack:{k}": v for k, v in values.items()}})
    return caught.value.problems


@pytest.mark.parametrize("stack", known_stacks())
def test_every_stack_file_reads_as_a_valid_config(stack: str) -> None:
    config = load_config(load_stack_settings(stack).values)
    assert config.environment == stack


def test_pinned_versions_are_read_per_model() -> None:
    config = load_config(
        {**VALID, "mlstack:models": ["demo", "churn"], "mlstack:servingModelVersions": ["churn=12"]}
    )
    assert config.serving.model_versions == {"churn": 12}


def test_prebuilt_image_digests_are_read_per_image() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    config = load_config({**VALID, "mlstack:imageDigests": [f"serving={digest}"]})
    assert config.registry.image_digests == {"serving": digest}


def test_defaults_from_pulumi_yaml_fill_what_a_stack_leaves_out() -> None:
    config = load_config(VALID)
    assert config.registry.image_digests == {}
    assert config.serving.model_versions == {}
    assert config.network.vpc_cidr == "10.40.0.0/16"
    assert config.network.nat_gateways == "single"
    assert config.cluster.node_instance_types == ("m6i.large",)
    assert config.deletion_protection is True
    assert config.storage.force_destroy_buckets is False
    assert config.registry.models == ("demo",)


def test_values_as_the_engine_passes_them_read_the_same_as_native_ones() -> None:
    # The engine hands every value over as a string, lists as JSON; the mock runtime uses floats.
    as_strings = load_config(
        {
            **VALID,
            "mlstack:nodeMaxSize": "7",
            "mlstack:gpuNodeGroup": "true",
            "mlstack:nodeInstanceTypes": '["c6i.large", "m5.xlarge"]',
            "mlstack:availabilityZoneCount": 3.0,
        }
    )
    assert as_strings.cluster.node_max_size == 7
    assert as_strings.cluster.gpu_node_group is True
    assert as_strings.cluster.node_instance_types == ("c6i.large", "m5.xlarge")
    assert as_strings.network.availability_zone_count == 3


def test_the_differences_between_environments_are_the_ones_the_stack_files_state() -> None:
    dev, prod = (load_config(load_stack_settings(s).values) for s in ("dev", "prod"))
    assert (dev.cluster.node_capacity_type, prod.cluster.node_capacity_type) == (
        "SPOT",
        "ON_DEMAND",
    )
    assert (dev.network.nat_gateways, prod.network.nat_gateways) == ("single", "per-az")
    assert (dev.cluster.public_access, prod.cluster.public_access) == (True, False)
    assert (dev.deletion_protection, prod.deletion_protection) == (False, True)
    assert (dev.storage.force_destroy_buckets, prod.storage.force_destroy_buckets) == (True, False)
    assert prod.network.availability_zone_count >= 3
    # A tracking server bills by the hour, more than dev's whole budget.
    assert (dev.training.mlflow_server_size, prod.training.mlflow_server_size) == ("", "Small")


# Each case: the bad values, then fragments the single reported problem must contain: the key,
# the value as given, and what is allowed.
INVALID_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "public vpc cidr": (
        {"vpcCidr": "8.8.0.0/16"},
        ("mlstack:vpcCidr", "'8.8.0.0/16'", "private IPv4 network"),
    ),
    "vpc cidr too small": ({"vpcCidr": "10.0.0.0/24"}, ("mlstack:vpcCidr", "from /16 to /20")),
    "vpc cidr not a network": ({"vpcCidr": "10.0.0.1/16"}, ("mlstack:vpcCidr", "'10.0.0.1/16'")),
    "nat policy": (
        {"natGateways": "two"},
        ("mlstack:natGateways", "'two'", "one of none, single, per-az"),
    ),
    "too few zones": (
        {"availabilityZoneCount": 1},
        ("mlstack:availabilityZoneCount", "= 1", "from 2 to 6"),
    ),
    "node sizes out of order": (
        {"nodeMinSize": 3, "nodeDesiredSize": 2, "nodeMaxSize": 4},
        ("mlstack:nodeMinSize", "= 3", "at most nodeDesiredSize (2)"),
    ),
    "desired above max": (
        {"nodeMinSize": 1, "nodeDesiredSize": 5, "nodeMaxSize": 4},
        ("mlstack:nodeDesiredSize", "= 5", "at most nodeMaxSize (4)"),
    ),
    "unknown instance family": (
        {"nodeInstanceTypes": ["x9z.large"]},
        ("mlstack:nodeInstanceTypes", "'x9z.large'", "known general-purpose family", "m6i"),
    ),
    "gpu group with a cpu type": (
        {"gpuInstanceType": "m6i.large"},
        ("mlstack:gpuInstanceType", "'m6i.large'", "GPU family", "g5"),
    ),
    "kubernetes version format": (
        {"kubernetesVersion": "v1.30.2"},
        ("mlstack:kubernetesVersion", "'v1.30.2'", "MAJOR.MINOR", "1.33"),
    ),
    "unsupported kubernetes version": (
        {"kubernetesVersion": "1.24"},
        ("mlstack:kubernetesVersion", "'1.24'", "a version EKS supports"),
    ),
    "environment name": (
        {"environment": "Prod_EU"},
        ("mlstack:environment", "'Prod_EU'", "lowercase letter"),
    ),
    "capacity type": (
        {"nodeCapacityType": "spot"},
        ("mlstack:nodeCapacityType", "'spot'", "ON_DEMAND, SPOT"),
    ),
    "log retention CloudWatch rejects": (
        {"logRetentionDays": 45},
        ("mlstack:logRetentionDays", "45", "one of 1, 3, 5, 7, 14, 30, 60"),
    ),
    "retention days out of range": (
        {"noncurrentVersionRetentionDays": 0},
        ("mlstack:noncurrentVersionRetentionDays", "= 0", "from 1 to 3650"),
    ),
    "kms deletion window": (
        {"kmsDeletionWindowDays": 3},
        ("mlstack:kmsDeletionWindowDays", "= 3", "from 7 to 30"),
    ),
    "public endpoint without allow-list": (
        {"clusterPublicAccess": True},
        ("mlstack:clusterPublicAccessCidrs", "[]", "at least one CIDR"),
    ),
    "public endpoint open to the world": (
        {"clusterPublicAccess": True, "clusterPublicAccessCidrs": ["0.0.0.0/0"]},
        ("mlstack:clusterPublicAccessCidrs", "'0.0.0.0/0'", "narrower than 0.0.0.0/0"),
    ),
    "allow-list on a private endpoint": (
        {"clusterPublicAccessCidrs": ["203.0.113.0/24"]},
        ("mlstack:clusterPublicAccessCidrs", "203.0.113.0/24", "clusterPublicAccess is false"),
    ),
    "force destroy under deletion protection": (
        {"forceDestroyBuckets": True, "deletionProtection": True},
        ("mlstack:forceDestroyBuckets", "true", "deletionProtection is true"),
    ),
    "serving replicas inverted": (
        {"servingMinReplicas": 5, "servingMaxReplicas": 2},
        ("mlstack:servingMaxReplicas", "= 2", "at least servingMinReplicas (5)"),
    ),
    "integer that is not a number": (
        {"nodeMaxSize": "four"},
        ("mlstack:nodeMaxSize", "'four'", "a whole number"),
    ),
    "boolean that is not a boolean": (
        {"gpuNodeGroup": "yes"},
        ("mlstack:gpuNodeGroup", "'yes'", "true or false"),
    ),
    "ingress certificate that is not an ACM ARN": (
        {"servingIngressCertificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
        ("mlstack:servingIngressCertificateArn", "server-certificate", "an ACM certificate ARN"),
    ),
    "internet-facing ingress without one": (
        {"servingIngressInternetFacing": True},
        ("mlstack:servingIngressInternetFacing", "true", "servingIngressCertificateArn is empty"),
    ),
    "internet-facing without authentication or a rate limit": (
        {
            "aws:region": "eu-west-1",
            "servingIngressCertificateArn": CERTIFICATE,
            "servingIngressInternetFacing": True,
        },
        (
            "mlstack:servingIngressInternetFacing",
            "true only with servingIngressTrustStoreArn",
            "and servingIngressRateLimit",
        ),
    ),
    "internet-facing without a rate limit": (
        {
            "aws:region": "eu-west-1",
            "servingIngressCertificateArn": CERTIFICATE,
            "servingIngressTrustStoreArn": TRUST_STORE,
            "servingIngressInternetFacing": True,
        },
        ("mlstack:servingIngressInternetFacing", "servingIngressRateLimit"),
    ),
    "trust store without an ingress": (
        {"servingIngressTrustStoreArn": TRUST_STORE},
        ("mlstack:servingIngressTrustStoreArn", "servingIngressCertificateArn is empty"),
    ),
    "rate limit under WAF's least": (
        {
            "aws:region": "eu-west-1",
            "servingIngressCertificateArn": CERTIFICATE,
            "servingIngressRateLimit": 5,
        },
        ("mlstack:servingIngressRateLimit", "= 5", "0 (no limit) or 10 to 2,000,000,000"),
    ),
    "trust store of another region": (
        {
            "aws:region": "eu-west-1",
            "servingIngressCertificateArn": CERTIFICATE,
            "servingIngressTrustStoreArn": TRUST_STORE.replace("eu-west-1", "us-east-1"),
        },
        ("mlstack:servingIngressTrustStoreArn", "a trust store in the stack's region"),
    ),
    "not a trust store": (
        {"servingIngressTrustStoreArn": "arn:aws:acm:eu-west-1:123456789012:certificate/x"},
        ("mlstack:servingIngressTrustStoreArn", "an ELB trust store ARN"),
    ),
    "admin that is not an IAM ARN": (
        {"clusterAdminArns": ["alice"]},
        ("mlstack:clusterAdminArns", "'alice'", "IAM role or user ARN"),
    ),
    "model name SageMaker rejects": (
        {"models": ["churn_model"]},
        ("mlstack:models", "'churn_model'", "SageMaker name"),
    ),
    "model name with capitals": (
        {"models": ["Churn"]},
        ("mlstack:models", "'Churn'", "in lowercase"),
    ),
    "node label": (
        {"nodeLabels": ["team ml"]},
        ("mlstack:nodeLabels", "'team ml'", "key=value"),
    ),
    "node taint effect": (
        {"nodeTaints": ["dedicated=batch:NoPlease"]},
        ("mlstack:nodeTaints", "'dedicated=batch:NoPlease'", "NoSchedule, PreferNoSchedule"),
    ),
    "no NAT and no endpoints": (
        {"natGateways": "none"},
        ("mlstack:privateEndpoints", "false", "natGateways is none"),
    ),
    "registry reader": (
        {"registryReaderArns": ["arn:aws:iam::1234:role/x"]},
        ("mlstack:registryReaderArns", "IAM role or user ARN"),
    ),
    "duplicate model": ({"models": ["churn", "churn"]}, ("mlstack:models", "each model name once")),
    "model name too long for its generated names": (
        {"models": ["m" * 38]},
        ("mlstack:models", "at most 37 characters", "'endpoint-<model>-execution-<7 random>'"),
    ),
    "pinned version without a model": (
        {"servingModelVersions": ["3"]},
        ("mlstack:servingModelVersions", "'3'", "<model>=<version>", "demo=3"),
    ),
    "pinned version zero": (
        {"servingModelVersions": ["demo=0"]},
        ("mlstack:servingModelVersions", "'demo=0'", "a version from 1"),
    ),
    "pinned model not in models": (
        {"servingModelVersions": ["churn=2"]},
        ("mlstack:servingModelVersions", "'churn=2'", "a model listed in mlstack:models (demo)"),
    ),
    "two pins for one model": (
        {"servingModelVersions": ["demo=2", "demo=3"]},
        ("mlstack:servingModelVersions", "'demo'", "one version per model"),
    ),
    "image digest for an image the stack does not build": (
        {"imageDigests": ["batch=sha256:" + "a" * 64]},
        ("mlstack:imageDigests", "'batch=sha256:", "the image one of training, serving"),
    ),
    "image digest that is a tag": (
        {"imageDigests": ["serving=v1.2"]},
        ("mlstack:imageDigests", "'serving=v1.2'", "<image>=sha256:<64 hex digits>"),
    ),
    "cron with six fields": (
        {"trainingSchedule": "0 0 3 * * 1"},
        ("mlstack:trainingSchedule", "'0 0 3 * * 1'", "5-field cron"),
    ),
    "mlflow server size in lowercase": (
        {"mlflowServerSize": "small"},
        ("mlstack:mlflowServerSize", "'small'", "one of Small, Medium, Large", "or empty for none"),
    ),
    "sagemaker instance type": (
        {"servingInstanceType": "m6i.large"},
        ("mlstack:servingInstanceType", "'m6i.large'", "ml.<family>.<size>"),
    ),
    "alarm email": (
        {"alarmEmail": "oncall"},
        ("mlstack:alarmEmail", "'oncall'", "an e-mail address"),
    ),
    "GitHub repository as a URL": (
        {"ciGithubRepository": "https://github.com/example-org/mlstack"},
        (
            "mlstack:ciGithubRepository",
            "'https://github.com/example-org/mlstack'",
            "<owner>/<name>",
        ),
    ),
    "GitHub repository with a wildcard": (
        {"ciGithubRepository": "example-org/*"},
        ("mlstack:ciGithubRepository", "'example-org/*'", "no wildcards"),
    ),
    "GitHub owner without a repository": (
        {"ciGithubRepository": "example-org"},
        ("mlstack:ciGithubRepository", "'example-org'", "or empty for no CI roles"),
    ),
    "number where a string is declared": (
        {"kubernetesVersion": 1.3},
        ("mlstack:kubernetesVersion = 1.3: allowed: a string; put the value in quotes",),
    ),
    "misspelt key": (
        {"nodeMaxSise": 4},
        ("mlstack:nodeMaxSise", "unknown key", "did you mean mlstack:nodeMaxSize?"),
    ),
}


@pytest.mark.parametrize("case", list(INVALID_CASES), ids=list(INVALID_CASES))
def test_an_invalid_value_is_reported_with_key_value_and_what_is_allowed(case: str) -> None:
    values, fragments = INVALID_CASES[case]
    problems = problems_for(**values)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], f"{fragment!r} missing from: {problems[0]}"


def test_every_declared_key_is_read_and_type_checked() -> None:
    # A value of the wrong shape for every key must be reported against that key, so no key in
    # Pulumi.yaml is silently ignored by the program.
    schema = load_schema()
    wrong_shape = {"__not": "a value of any declared type"}
    for name in schema:
        with pytest.raises(ConfigError) as caught:
            load_config({**VALID, f"mlstack:{name}": wrong_shape})
        assert any(p.startswith(f"mlstack:{name} ") for p in caught.value.problems), name


def test_a_missing_required_key_says_how_to_set_it() -> None:
    with pytest.raises(ConfigError, match=r"mlstack:environment: missing.*pulumi config set"):
        load_config({})


def test_all_problems_are_reported_together() -> None:
    problems = problems_for(natGateways="two", nodeMaxSize=0, vpcCidr="1.2.3.0/16")
    assert {p.split(" ")[0] for p in problems} >= {
        "mlstack:natGateways",
        "mlstack:nodeMaxSize",
        "mlstack:vpcCidr",
    }
    assert str(ConfigError(problems)).startswith(f"invalid stack configuration ({len(problems)}")


def test_a_bad_value_stops_the_program_before_any_resource_is_declared(run_stack: RunStack) -> None:
    with pytest.raises(pulumi.RunError, match=r"mlstack:natGateways = 'two': allowed: one of"):
        run_stack("dev", natGateways="two")


def test_secure_values_are_masked_not_decrypted() -> None:
    values, secrets = merge_with_defaults(
        {"mlstack:alarmEmail": {"secure": "v1:abc"}}, load_schema()
    )
    assert values["mlstack:alarmEmail"] == "[secret]"
    assert secrets == frozenset({"mlstack:alarmEmail"})


def test_node_groups_are_the_general_group_plus_the_gpu_group_when_on() -> None:
    config = load_config(
        {
            **VALID,
            "mlstack:nodeLabels": ["team=ml"],
            "mlstack:nodeTaints": ["dedicated=batch:NoExecute"],
            "mlstack:gpuNodeGroup": True,
            "mlstack:nodeDiskSizeGib": 40,
        }
    )
    general, gpu = config.cluster.node_groups
    assert general.labels == (("mlstack.io/node-group", "general"), ("team", "ml"))
    assert [(t.key, t.value, t.effect) for t in general.taints] == [
        ("dedicated", "batch", "NO_EXECUTE")
    ]
    assert (gpu.name, gpu.gpu, gpu.min_size, gpu.desired_size) == ("gpu", True, 0, 0)
    assert gpu.disk_size_gib == 100
    assert [(t.key, t.effect) for t in gpu.taints] == [("nvidia.com/gpu", "NO_SCHEDULE")]
    assert len(load_config(VALID).cluster.node_groups) == 1


# Through the door the Pulumi CLI uses: every value of the stack in the runtime's config bag,
# declared or not, and the program reading it.
REFUSED_THROUGH_THE_PROGRAM: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "misspelt key": (
        {"mlstack:natGateway": "none"},
        ("mlstack:natGateway: unknown key", "did you mean mlstack:natGateways?"),
    ),
    "misspelt key for a boolean": (
        {"mlstack:forceDestroyBucket": "true"},
        ("mlstack:forceDestroyBucket: unknown key", "did you mean mlstack:forceDestroyBuckets?"),
    ),
    "misspelt namespace": (
        {"mlstak:natGateways": "none"},
        ("mlstak:natGateways: unknown namespace 'mlstak'", "did you mean mlstack:natGateways?"),
    ),
    "unknown region": (
        {"aws:region": "mars-1"},
        ("aws:region = 'mars-1': allowed: an AWS region", "eu-west-1", "cn-north-1"),
    ),
    "environment with a dash, whose names another environment's could end with": (
        {"mlstack:environment": "pre-prod"},
        (
            "mlstack:environment = 'pre-prod'",
            "names made from it end in '-pre-prod' (<model>-pre-prod)",
            "the CI roles find the stack's own resources by that ending",
        ),
    ),
    "default tags without the environment": (
        {"aws:defaultTags": {"tags": {"project": "mlstack"}}},
        (
            'aws:defaultTags = {"tags": {"project": "mlstack"}}: allowed: a mapping whose tags '
            "include environment: dev",
        ),
    ),
    "a runner connection without a repository": (
        {"mlstack:ciGithubRepository": "", "mlstack:ciGithubConnectionArn": CONNECTION},
        ("mlstack:ciGithubConnectionArn", "empty while ciGithubRepository is empty"),
    ),
    "a repository without the runner's connection": (
        {"mlstack:ciGithubRepository": "example-org/mlstack", "mlstack:ciGithubConnectionArn": ""},
        ("mlstack:ciGithubConnectionArn = '': allowed: the ARN of the account's CodeConnections",),
    ),
    "a runner without NAT to reach GitHub": (
        {
            "mlstack:ciGithubRepository": "example-org/mlstack",
            "mlstack:ciGithubConnectionArn": CONNECTION,
            "mlstack:natGateways": "none",
            "mlstack:privateEndpoints": True,
        },
        ("mlstack:natGateways = 'none': allowed: single or per-az", "while the stack has a CI"),
    ),
    "a connection in another region than the stack's": (
        {"mlstack:ciGithubConnectionArn": CONNECTION.replace("eu-west-1", "us-east-1")},
        ("a connection in the stack's region (eu-west-1)", "CodeBuild uses connections"),
    ),
    "a connection ARN that is not one": (
        {"mlstack:ciGithubConnectionArn": "arn:aws:iam::123456789012:role/x"},
        ("mlstack:ciGithubConnectionArn", "the ARN of a CodeConnections connection to GitHub"),
    ),
    "environment with capitals": (
        {"mlstack:environment": "Dev"},
        ("mlstack:environment = 'Dev'", "'D' cannot appear in Kubernetes labels"),
    ),
    "environment starting with a digit": (
        {"mlstack:environment": "1dev"},
        ("mlstack:environment = '1dev'", "cluster name mlstack-1dev", "letter first"),
    ),
    "environment too long": (
        {"mlstack:environment": "a" * 17},
        ("mlstack:environment", "2-16 characters"),
    ),
    "kubernetes version the engine passed as text after YAML dropped its zero": (
        {"mlstack:kubernetesVersion": "1.3"},
        ("mlstack:kubernetesVersion = '1.3'", "if the stack file says 1.30 unquoted"),
    ),
    "upgrade policy": (
        {"mlstack:clusterUpgradePolicy": "LTS"},
        ("mlstack:clusterUpgradePolicy = 'LTS': allowed: one of STANDARD, EXTENDED",),
    ),
}


@pytest.mark.parametrize(
    "case", list(REFUSED_THROUGH_THE_PROGRAM), ids=list(REFUSED_THROUGH_THE_PROGRAM)
)
def test_the_program_refuses_what_a_user_mistypes_with_the_key_named(case: str) -> None:
    values, fragments = REFUSED_THROUGH_THE_PROGRAM[case]
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", overrides=values)
    message = str(caught.value)
    assert message.startswith("invalid stack configuration (1 problem)"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_the_program_reads_keys_the_engine_passes_in_pulumi_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The language host may hand the config bag over as the PULUMI_CONFIG variable instead.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"mlstack:natGateway": "none"}))
    assert runtime_config_values()["mlstack:natGateway"] == "none"


def test_provider_settings_and_declared_keys_pass() -> None:
    values = load_stack_settings("dev").values
    assert {"aws:region", "aws:defaultTags"} <= set(values)
    assert load_config(values).environment == "dev"
    china = {**values, "aws:region": "cn-north-1", "mlstack:ciGithubConnectionArn": ""}
    assert load_config({**china, "mlstack:ciGithubRepository": ""}).environment == "dev"


def test_the_default_kubernetes_version_is_the_newest_under_standard_support_today() -> None:
    default = load_schema()["kubernetesVersion"].default
    today = datetime.now(UTC).date()
    window = support_window(default)
    assert window.released <= today < window.end_of_standard_support, (
        f"{default} left standard support on {window.end_of_standard_support}: "
        "add the next version to infra/config/eks_versions.py and make it the default"
    )
    assert default == max(
        SUPPORTED_KUBERNETES_VERSIONS, key=lambda v: tuple(map(int, v.split(".")))
    )
    assert load_schema()["clusterUpgradePolicy"].default == "STANDARD"


def test_every_supported_version_has_pins_for_every_addon_and_support_dates() -> None:
    assert set(ADDON_VERSIONS) == set(EKS_RELEASE_CALENDAR)
    assert all(set(pins) == set(ADDONS) for pins in ADDON_VERSIONS.values())


def test_a_key_set_where_the_stack_gives_it_no_effect_is_refused_naming_what_would() -> None:
    assert problems_for(endpointShiftPercent=20) == [
        "mlstack:endpointShiftPercent = 20: allowed: its default (10), while "
        "mlstack:servingTarget is kubernetes (it takes effect with sagemaker or both)"
    ]
    without_cluster = problems_for(cluster=False, nodeMaxSize=5, driftSchedule="")
    assert without_cluster == [
        "mlstack:nodeMaxSize = 5: allowed: its default (4), while mlstack:cluster is false "
        "(it takes effect with true)",
        "mlstack:driftSchedule = '': allowed: its default ('0 6 * * *'), while "
        "mlstack:cluster is false (it takes effect with true)",
    ]
    # What SageMaker reads too still counts without the cluster when SageMaker serves.
    load_config(
        {
            **VALID,
            "mlstack:cluster": False,
            "mlstack:servingTarget": "sagemaker",
            "mlstack:dataCapturePercent": 50,
        }
    )
    load_config({**VALID, "mlstack:servingTarget": "both", "mlstack:endpointShiftPercent": 20})


def test_a_default_spelt_as_the_engine_spells_it_is_still_the_default() -> None:
    # The engine passes every value as text; "1" is endpointMinInstances' default, 1.
    config = load_config(
        {
            **VALID,
            "mlstack:endpointMinInstances": "1",
            "mlstack:cluster": "false",
            "mlstack:clusterAdminArns": "[]",
        }
    )
    assert config.serving.endpoint_min_instances == 1


def test_retraining_on_drift_needs_a_training_cronjob_to_start_from() -> None:
    assert problems_for(driftRetrains=True) == [
        "mlstack:driftRetrains = true: allowed: false while mlstack:trainingSchedule is empty "
        "(a run is started from the training CronJob, which only a schedule declares)"
    ]
    load_config({**VALID, "mlstack:driftRetrains": True, "mlstack:trainingSchedule": "0 3 * * *"})


def test_a_traffic_shift_takes_the_steps_sagemaker_takes_on_the_new_fleet() -> None:
    # A step is whole instances, at least one: 34 % of 2 is 2 steps of 1, not 3.
    linear = traffic_shift("linear", percent=34, wait_minutes=10, fleet=2)
    assert (linear.step_instances, linear.steps) == (1, 2)
    assert (traffic_shift("linear", percent=50, wait_minutes=5, fleet=3).steps) == 2
    canary = traffic_shift("canary", percent=10, wait_minutes=5, fleet=2)
    assert (canary.step_instances, canary.steps) == (1, 2)
    assert traffic_shift("all-at-once", percent=10, wait_minutes=5, fleet=6).steps == 1
    # 15 minutes to start the new fleet, every step watched, 5 before the old fleet goes.
    assert linear.minutes == 15 + 2 * 10 + 5


def test_the_stack_files_shift_traffic_in_the_steps_their_comments_promise() -> None:
    staging = load_config(load_stack_settings("staging").values).serving.traffic_shift
    assert (staging.kind, staging.fleet, staging.step_instances, staging.steps) == (
        "canary",
        2,
        1,
        2,
    )
    prod = load_config(load_stack_settings("prod").values).serving.traffic_shift
    # A new version starts on six instances and takes the traffic in three steps of two.
    assert (prod.kind, prod.fleet, prod.step_instances, prod.steps) == ("linear", 6, 2, 3)
    assert prod.minutes == 50


# As the Pulumi CLI hands them over: every value as text. staging serves on SageMaker.
REFUSED_TRAFFIC_SHIFTS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "linear steps under 10 %": (
        {"endpointTrafficShifting": "linear", "endpointShiftPercent": "5"},
        (
            "mlstack:endpointShiftPercent = 5: allowed: from 10 to 50 while "
            "endpointTrafficShifting is linear",
            "SageMaker refuses linear steps under 10 % of the fleet",
        ),
    ),
    "a canary of the whole one-instance fleet": (
        {"endpointMaxInstances": "1"},
        (
            "mlstack:endpointTrafficShifting = 'canary': allowed: all-at-once while "
            "endpointMaxInstances is 1, or endpointMaxInstances of 2 or more",
            "a canary of 10 % of it is 1 instance",
            "the whole fleet",
        ),
    ),
    "a linear first step of the whole one-instance fleet": (
        {
            "endpointTrafficShifting": "linear",
            "endpointShiftPercent": "50",
            "endpointMaxInstances": "1",
        },
        (
            "mlstack:endpointTrafficShifting = 'linear': allowed: all-at-once while "
            "endpointMaxInstances is 1",
            "a first linear step of 50 % of it is 1 instance",
        ),
    ),
    "a canary that outlasts the provider's wait": (
        {"endpointShiftWaitMinutes": "30"},
        (
            "mlstack:endpointShiftWaitMinutes = 30: allowed: at most 20 with 2 canary steps",
            "the shift would take 80 minutes",
            "15 to start the new fleet, 2 x 30 watched, 5 before the old fleet goes",
            "the AWS provider waits 60 minutes for an endpoint update",
        ),
    ),
    "linear steps that outlast the provider's wait": (
        {
            "endpointTrafficShifting": "linear",
            "endpointShiftPercent": "10",
            "endpointMaxInstances": "20",
            "endpointShiftWaitMinutes": "5",
        },
        (
            "mlstack:endpointShiftWaitMinutes = 5: allowed: at most 4 with 10 linear steps of 2 "
            "of 20 instances",
            "the shift would take 70 minutes",
            "waits 60 minutes",
        ),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_TRAFFIC_SHIFTS), ids=list(REFUSED_TRAFFIC_SHIFTS))
def test_a_traffic_shift_sagemaker_or_the_provider_would_fail_is_refused_before_a_deploy(
    case: str,
) -> None:
    values, fragments = REFUSED_TRAFFIC_SHIFTS[case]
    with pytest.raises(pulumi.RunError) as caught:
        run_program("staging", overrides={f"mlstack:{k}": v for k, v in values.items()})
    message = str(caught.value)
    assert message.startswith("invalid stack configuration (1 problem)"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_a_one_instance_endpoint_may_still_take_a_new_version_all_at_once() -> None:
    values = {
        **VALID,
        "mlstack:servingTarget": "sagemaker",
        "mlstack:endpointMaxInstances": "1",
        "mlstack:endpointTrafficShifting": "all-at-once",
    }
    assert load_config(values).serving.traffic_shift.steps == 1
    # One mistake, one message: a maximum under the minimum is not also a canary too large.
    assert problems_for(
        servingTarget="sagemaker", endpointMinInstances="3", endpointMaxInstances="1"
    ) == ["mlstack:endpointMaxInstances = 1: allowed: at least endpointMinInstances (3)"]
