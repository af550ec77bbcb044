"""Every declared `mlstack:*` key changes what some stack declares: a key that does nothing
does not exist. Each key is set in turn to another valid value, in a stack where it matters,
and the program's resources (types, names and inputs) must differ from that stack's own. There
are no exceptions; and where a stack leaves a key without effect (an endpoint key while nothing
serves on SageMaker, a cluster key without the cluster), the config refuses anything but its
default (tests/infra/test_config.py)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from infra.config.schema import load_schema
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program

from .conftest import SERVING_STACKS

PIN = ["demo=1"]
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
TRUST_STORE = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:truststore/clients/0123456789abcdef"
)
DIGEST = "sha256:" + "a" * 64

# key -> (the stack where it matters, another valid value)
ANOTHER_VALUE: dict[str, tuple[str, Any]] = {
    "environment": ("dev", "qa"),
    "deletionProtection": ("prod", False),
    "vpcCidr": ("dev", "10.50.0.0/16"),
    "availabilityZoneCount": ("dev", 3),
    "natGateways": ("dev", "per-az"),
    "privateEndpoints": ("dev", True),
    "flowLogRetentionDays": ("dev", 14),
    "kmsDeletionWindowDays": ("dev", 10),
    "noncurrentVersionRetentionDays": ("dev", 30),
    "incompleteUploadAbortDays": ("dev", 3),
    "captureRetentionDays": ("dev", 30),
    "forceDestroyBuckets": ("dev", False),
    "cluster": ("local", True),
    "kubernetesVersion": ("dev", "1.34"),
    "clusterUpgradePolicy": ("dev", "EXTENDED"),
    "clusterPublicAccess": ("dev", False),
    "clusterPublicAccessCidrs": ("dev", ["198.51.100.0/24"]),
    "clusterCreatorAdmin": ("dev", False),
    "clusterAdminArns": ("dev", ["arn:aws:iam::123456789012:role/admin"]),
    "nodeInstanceTypes": ("dev", ["m7i.large"]),
    "nodeCapacityType": ("dev", "ON_DEMAND"),
    "nodeMinSize": ("prod", 2),
    "nodeDesiredSize": ("prod", 4),
    "nodeMaxSize": ("prod", 10),
    "nodeDiskSizeGib": ("dev", 80),
    "nodeLabels": ("dev", ["team=ml"]),
    "nodeTaints": ("dev", ["dedicated=ml:NoSchedule"]),
    "gpuNodeGroup": ("dev", True),
    "gpuInstanceType": ("staging", "g6.xlarge"),
    "gpuMaxSize": ("staging", 3),
    "imageDigests": ("dev", [f"serving={DIGEST}"]),
    "imageRetentionCount": ("dev", 20),
    "untaggedImageExpiryDays": ("dev", 3),
    "models": ("dev", ["demo", "churn"]),
    "registryReaderArns": ("dev", ["arn:aws:iam::123456789012:role/reader"]),
    "servingTarget": ("dev", "sagemaker"),
    "servingModelVersions": ("dev", ["demo=2"]),
    "servingMinReplicas": ("prod", 4),
    "servingMaxReplicas": ("prod", 10),
    "servingCpuMillicores": ("dev", 2000),
    "servingMemoryMib": ("dev", 2048),
    "servingClientNamespaces": ("dev", ["apps"]),
    "servingIngressCertificateArn": ("dev", CERTIFICATE),
    "servingIngressInternetFacing": ("dev", True),
    "servingIngressTrustStoreArn": ("dev", TRUST_STORE),
    "servingIngressRateLimit": ("dev", 1000),
    "trainingSchedule": ("dev", "0 4 * * *"),
    "trainingMaxRuntimeMinutes": ("dev", 60),
    "autoApproveModels": ("dev", True),
    "mlflowServerSize": ("dev", "Medium"),
    "logRetentionDays": ("dev", 14),
    "servingInstanceType": ("staging", "ml.m6i.2xlarge"),
    "dataCapturePercent": ("staging", 50),
    "endpointMinInstances": ("staging", 2),
    "endpointMaxInstances": ("staging", 4),
    "endpointInvocationsPerInstance": ("staging", 500),
    "endpointTrafficShifting": ("staging", "linear"),
    "endpointShiftPercent": ("staging", 20),
    "endpointShiftWaitMinutes": ("staging", 10),
    "alarmEmail": ("dev", "oncall@example.com"),
    "latencyP99AlarmMs": ("staging", 500),
    "monthlyBudgetUsd": ("dev", 400),
    "driftSchedule": ("staging", "0 7 * * *"),
    "driftWindowHours": ("staging", 12),
    "driftPsiThreshold": ("staging", "0.25"),
    "driftOutOfRangePercent": ("staging", 10),
    "driftRetrains": ("dev", True),
    "ciGithubRepository": ("dev", "example-org/mlstack-fork"),
    "ciGithubConnectionArn": (
        "dev",
        "arn:aws:codeconnections:eu-west-1:123456789012:connection/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ),
}

# What a key cannot change without: the config check refuses it alone.
COMPANIONS: dict[str, dict[str, Any]] = {
    "clusterPublicAccess": {"clusterPublicAccessCidrs": []},
    "environment": {"aws:defaultTags": {"tags": {"project": "mlstack", "environment": "qa"}}},
}
# A key whose effect shows only beside another: compared with the stack plus that other key.
BESIDE: dict[str, dict[str, Any]] = {
    "servingIngressInternetFacing": {
        "servingIngressCertificateArn": CERTIFICATE,
        "servingIngressTrustStoreArn": TRUST_STORE,
        "servingIngressRateLimit": 1000,
    },
    "servingIngressTrustStoreArn": {"servingIngressCertificateArn": CERTIFICATE},
    "servingIngressRateLimit": {"servingIngressCertificateArn": CERTIFICATE},
}


def run(stack: str, **overrides: Any) -> ProgramRun:
    """`stack` serving the demo model where it serves anything, with `overrides` as after
    `pulumi config set`."""
    pin = {"mlstack:servingModelVersions": PIN} if stack in SERVING_STACKS else {}
    values = pin | {
        key if ":" in key else f"mlstack:{key}": value for key, value in overrides.items()
    }
    settings = load_stack_settings(stack)
    config = load_config({**settings.values, **values})
    pins = dict(config.serving.model_versions)
    with offline_registry(config.environment, pins, config.region):
        return run_program(stack, overrides=values)


def declared(run: ProgramRun) -> Counter[tuple[str, str, str]]:
    return Counter(
        (r.resource_type, r.name, json.dumps(r.inputs, sort_keys=True, default=str))
        for r in run.resources
    )


@pytest.fixture(scope="module")
def baselines() -> dict[str, Counter[tuple[str, str, str]]]:
    return {stack: declared(run(stack)) for stack in {s for s, _ in ANOTHER_VALUE.values()}}


def baseline(key: str, baselines: dict[str, Counter[tuple[str, str, str]]]) -> Any:
    stack, _ = ANOTHER_VALUE[key]
    return declared(run(stack, **BESIDE[key])) if key in BESIDE else baselines[stack]


def test_every_declared_key_is_shown_to_count() -> None:
    keys = {name.removeprefix("mlstack:") for name in load_schema()}
    assert set(ANOTHER_VALUE) == keys


@pytest.mark.parametrize("key", sorted(ANOTHER_VALUE))
def test_changing_the_key_changes_what_the_stack_declares(
    key: str, baselines: dict[str, Counter[tuple[str, str, str]]]
) -> None:
    stack, value = ANOTHER_VALUE[key]
    assert load_stack_settings(stack).values.get(f"mlstack:{key}") != value
    changed = declared(run(stack, **{key: value}, **COMPANIONS.get(key, {}), **BESIDE.get(key, {})))
    assert changed != baseline(key, baselines), (
        f"mlstack:{key} = {value!r} changed nothing in {stack}"
    )
