"""The `local` stack deploys to the AWS emulator it points at: every resource it declares and
every API call the AWS provider makes for it are ones the installed moto implements.

The table below is what the AWS provider calls to create, read (refresh) and delete each
resource type; the test fails when the program declares a type the table does not know, and
when moto answers any of the calls with "not implemented", so the claim stays true when either
side changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.model import Shape
from moto import mock_aws

from infra.config.stackfiles import load_stack_settings
from infra.offline.runner import ProgramRun, run_program
from tests.aws import use_emulator_credentials

S3_BUCKET_READ = tuple(
    ("s3", op)
    for op in (
        "CreateBucket",
        "HeadBucket",
        "GetBucketAcl",
        "GetBucketCors",
        "GetBucketWebsite",
        "GetBucketVersioning",
        "GetBucketAccelerateConfiguration",
        "GetBucketRequestPayment",
        "GetBucketLogging",
        "GetBucketLifecycleConfiguration",
        "GetBucketReplication",
        "GetBucketEncryption",
        "GetObjectLockConfiguration",
        "GetBucketPolicy",
        "GetBucketTagging",
        "PutBucketTagging",
        "ListObjectVersions",
        "DeleteObjects",
        "DeleteBucket",
    )
)
API_CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws:kms/key:Key": tuple(
        ("kms", op)
        for op in (
            "CreateKey",
            "DescribeKey",
            "GetKeyPolicy",
            "PutKeyPolicy",
            "GetKeyRotationStatus",
            "EnableKeyRotation",
            "ListResourceTags",
            "TagResource",
            "ScheduleKeyDeletion",
        )
    ),
    "aws:kms/alias:Alias": (("kms", "CreateAlias"), ("kms", "ListAliases"), ("kms", "DeleteAlias")),
    "aws:cloudwatch/logGroup:LogGroup": tuple(
        ("logs", op)
        for op in (
            "CreateLogGroup",
            "PutRetentionPolicy",
            "DescribeLogGroups",
            "ListTagsForResource",
            "DeleteLogGroup",
        )
    ),
    "aws:s3/bucket:Bucket": S3_BUCKET_READ,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (
        ("s3", "PutBucketOwnershipControls"),
        ("s3", "GetBucketOwnershipControls"),
        ("s3", "DeleteBucketOwnershipControls"),
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        ("s3", "PutPublicAccessBlock"),
        ("s3", "GetPublicAccessBlock"),
        ("s3", "DeletePublicAccessBlock"),
    ),
    "aws:s3/bucketVersioning:BucketVersioning": (
        ("s3", "PutBucketVersioning"),
        ("s3", "GetBucketVersioning"),
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        ("s3", "PutBucketEncryption"),
        ("s3", "GetBucketEncryption"),
        ("s3", "DeleteBucketEncryption"),
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        ("s3", "PutBucketLifecycleConfiguration"),
        ("s3", "GetBucketLifecycleConfiguration"),
        ("s3", "DeleteBucketLifecycle"),
    ),
    "aws:s3/bucketPolicy:BucketPolicy": (
        ("s3", "PutBucketPolicy"),
        ("s3", "GetBucketPolicy"),
        ("s3", "DeleteBucketPolicy"),
    ),
    "aws:ecr/repository:Repository": (
        ("ecr", "CreateRepository"),
        ("ecr", "DescribeRepositories"),
        ("ecr", "ListTagsForResource"),
        ("ecr", "DeleteRepository"),
    ),
    "aws:sns/topic:Topic": tuple(
        ("sns", op)
        for op in (
            "CreateTopic",
            "GetTopicAttributes",
            "SetTopicAttributes",
            "ListTagsForResource",
            "TagResource",
            "DeleteTopic",
        )
    ),
    "aws:sns/topicPolicy:TopicPolicy": (
        ("sns", "SetTopicAttributes"),
        ("sns", "GetTopicAttributes"),
    ),
    "aws:budgets/budget:Budget": tuple(
        ("budgets", op)
        for op in (
            "CreateBudget",
            "DescribeBudget",
            "CreateNotification",
            "DescribeNotificationsForBudget",
            "DescribeSubscribersForNotification",
            "DeleteBudget",
        )
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": (
        ("ecr", "PutLifecyclePolicy"),
        ("ecr", "GetLifecyclePolicy"),
        ("ecr", "DeleteLifecyclePolicy"),
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (
        ("sagemaker", "CreateModelPackageGroup"),
        ("sagemaker", "DescribeModelPackageGroup"),
        ("sagemaker", "ListTags"),
        ("sagemaker", "AddTags"),
    ),
}
DATA_SOURCE_CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": (("sts", "GetCallerIdentity"),),
    "aws:index/getPartition:getPartition": (),  # answered from the provider's own data
    "aws:index/getRegion:getRegion": (),
    "aws:resourcegroupstaggingapi/getResources:getResources": (
        ("resourcegroupstaggingapi", "GetResources"),
    ),
}
# The Pulumi AWS provider's `endpoints` key for each boto3 service name that differs.
ENDPOINT_KEYS = {"resourcegroupstaggingapi": "resourcegroupstaggingapi"}


@pytest.fixture(scope="module")
def local() -> ProgramRun:
    return run_program("local")


def calls_of(run: ProgramRun) -> set[tuple[str, str]]:
    needed: set[tuple[str, str]] = set()
    for resource in run.resources:
        if resource.custom:
            needed.update(API_CALLS[resource.resource_type])
    for token, _ in run.calls:
        needed.update(DATA_SOURCE_CALLS[token])
    return needed


def test_every_resource_and_data_source_of_the_local_stack_is_in_the_table(
    local: ProgramRun,
) -> None:
    declared = {r.resource_type for r in local.resources if r.custom}
    assert declared <= set(API_CALLS), sorted(declared - set(API_CALLS))
    asked = {token for token, _ in local.calls}
    assert asked <= set(DATA_SOURCE_CALLS), sorted(asked - set(DATA_SOURCE_CALLS))
    # What the emulator cannot hold is left out.
    assert not {t for t in declared if t.startswith(("aws:eks/", "aws:ec2/"))}
    assert "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy" not in declared


def test_the_local_stack_sends_every_call_to_the_emulator(local: ProgramRun) -> None:
    [endpoints] = load_stack_settings("local").values["aws:endpoints"]
    for service in {service for service, _ in calls_of(local)}:
        assert endpoints.get(ENDPOINT_KEYS.get(service, service), "").startswith(
            "http://127.0.0.1:5000"
        ), service


def _placeholder(shape: Shape) -> Any:
    """The smallest value botocore accepts for `shape`: enough to reach moto's dispatcher."""
    if shape.type_name == "structure":
        members = shape.members  # type: ignore[attr-defined]
        return {name: _placeholder(members[name]) for name in shape.required_members}
    if shape.type_name == "list":
        return [_placeholder(shape.member)] * int(shape.metadata.get("min", 0))  # type: ignore[attr-defined]
    if shape.type_name == "map":
        return {}
    if shape.type_name == "string":
        return shape.enum[0] if shape.enum else "x" * max(3, int(shape.metadata.get("min", 1)))  # type: ignore[attr-defined]
    if shape.type_name in ("integer", "long"):
        return max(1, int(shape.metadata.get("min", 1)))
    if shape.type_name in ("double", "float"):
        return 1.0
    if shape.type_name == "boolean":
        return False
    if shape.type_name == "blob":
        return b"x"
    if shape.type_name == "timestamp":
        return datetime(2026, 1, 1, tzinfo=UTC)
    return "x"


@pytest.fixture(scope="module")
def moto() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        use_emulator_credentials(env, "us-east-1")
        with mock_aws():
            yield


def _not_implemented(service: str, operation: str) -> str | None:
    client = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
    model = client.meta.service_model.operation_model(operation)
    params = _placeholder(model.input_shape) if model.input_shape is not None else {}
    name = next(m for m, api in client.meta.method_to_api_mapping.items() if api == operation)
    try:
        getattr(client, name)(**params)
    except ParamValidationError:
        raise  # the probe's placeholders never reached moto: no verdict
    except NotImplementedError as error:
        return str(error)
    except ClientError as error:
        message = str(error)
        if "not yet implemented" in message.lower() or "has not been implemented" in message:
            return message
    except Exception:  # noqa: BLE001,S110  (any other answer means moto handled the call)
        pass
    return None


@pytest.mark.usefixtures("moto")
def test_moto_implements_every_call_the_local_stack_needs(local: ProgramRun) -> None:
    missing = {
        f"{service}:{operation}": reason
        for service, operation in sorted(calls_of(local))
        if (reason := _not_implemented(service, operation)) is not None
    }
    assert missing == {}


@pytest.mark.usefixtures("moto")
def test_the_probe_recognises_what_moto_does_not_implement() -> None:
    # The calls that kept the cluster and the registry policy out of the local stack.
    assert _not_implemented("eks", "CreateAddon") is not None
    assert _not_implemented("sagemaker", "PutModelPackageGroupPolicy") is not None
    assert _not_implemented("s3", "GetBucketAcl") is None
