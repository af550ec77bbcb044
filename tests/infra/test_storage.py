"""The keys and storage components, as the whole program declares them for each stack."""

from __future__ import annotations

import json

import pytest

from infra.components.storage import SecureBucketArgs
from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import outputs
from mlstack_policy import s3

from .conftest import STACKS

ROLES = ("data", "models", "capture")
ATTACHMENTS = {
    s3.PUBLIC_ACCESS_BLOCK,
    s3.OWNERSHIP,
    s3.VERSIONING,
    s3.ENCRYPTION,
    s3.BUCKET_POLICY,
    s3.LIFECYCLE,
}


def attached(run: ProgramRun, bucket: RecordedResource, resource_type: str) -> RecordedResource:
    found = [r for r in run.of_type(resource_type) if r.inputs.get("bucket") == bucket.physical_id]
    assert len(found) == 1, f"{bucket.name}: {len(found)} x {resource_type}"
    return found[0]


@pytest.mark.parametrize("stack", STACKS)
def test_one_rotating_key_per_environment_with_its_alias(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    [key] = run.of_type("aws:kms/key:Key")
    [alias] = run.of_type("aws:kms/alias:Alias")
    assert key.inputs["enableKeyRotation"] is True
    assert alias.inputs["name"] == f"alias/mlstack-{stack}"
    assert alias.inputs["targetKeyId"] == key.props["keyId"]
    policy = json.loads(key.inputs["policy"])
    assert {"AWS": "arn:aws:iam::123456789012:root"} in [
        s["Principal"] for s in policy["Statement"]
    ]
    assert run.outputs[outputs.KMS_KEY_ARN] == key.props["arn"]


@pytest.mark.parametrize("stack", STACKS)
def test_three_buckets_each_private_versioned_and_encrypted_with_the_environment_key(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    key_arn = run.outputs[outputs.KMS_KEY_ARN]
    buckets = run.of_type(s3.BUCKET)
    assert sorted(b.inputs["tags"]["mlstack:role"] for b in buckets) == sorted(ROLES)
    for bucket in buckets:
        siblings = {r.resource_type for r in run.resources if r.parent_urn == bucket.parent_urn}
        assert siblings == ATTACHMENTS | {s3.BUCKET}, bucket.name
        block = attached(run, bucket, s3.PUBLIC_ACCESS_BLOCK)
        assert all(block.inputs[flag] is True for flag in s3.PUBLIC_ACCESS_FLAGS), bucket.name
        [rule] = attached(run, bucket, s3.ENCRYPTION).inputs["rules"]
        assert rule["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": key_arn,
        }
        assert rule["bucketKeyEnabled"] is True
        versioning = attached(run, bucket, s3.VERSIONING)
        assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
        policy = json.loads(attached(run, bucket, s3.BUCKET_POLICY).inputs["policy"])
        assert bucket.props["arn"] in policy["Statement"][0]["Resource"]


@pytest.mark.parametrize("stack", STACKS)
def test_bucket_outputs_name_the_declared_buckets(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    names = {b.inputs["tags"]["mlstack:role"]: b.physical_id for b in run.of_type(s3.BUCKET)}
    assert run.outputs[outputs.DATA_BUCKET] == names["data"]
    assert run.outputs[outputs.MODELS_BUCKET] == names["models"]
    assert run.outputs[outputs.CAPTURE_BUCKET] == names["capture"]


def test_lifecycle_days_come_from_the_stack_file(stack_runs: dict[str, ProgramRun]) -> None:
    for stack, noncurrent, capture in (("dev", 7, 14), ("prod", 365, 365)):
        run = stack_runs[stack]
        for bucket in run.of_type(s3.BUCKET):
            rules = {r["id"]: r for r in attached(run, bucket, s3.LIFECYCLE).inputs["rules"]}
            expiry = rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]
            assert expiry == {"noncurrentDays": noncurrent}, (stack, bucket.name)
            current = rules.get("expire-current-versions", {}).get("expiration")
            is_capture = bucket.inputs["tags"]["mlstack:role"] == "capture"
            assert current == ({"days": capture} if is_capture else None), (stack, bucket.name)


def test_dev_buckets_can_be_destroyed_and_prod_buckets_and_key_are_protected(
    stack_runs: dict[str, ProgramRun],
) -> None:
    dev, prod = stack_runs["dev"], stack_runs["prod"]
    assert all(b.inputs["forceDestroy"] is True and not b.protect for b in dev.of_type(s3.BUCKET))
    assert all(b.inputs["forceDestroy"] is False and b.protect for b in prod.of_type(s3.BUCKET))
    assert prod.of_type("aws:kms/key:Key")[0].protect
    assert not dev.of_type("aws:kms/key:Key")[0].protect


def test_components_parent_their_resources(stack_runs: dict[str, ProgramRun]) -> None:
    run = stack_runs["dev"]
    storage = run.named("storage")
    assert storage.resource_type == "mlstack:storage:Storage"
    assert {c.name for c in run.children(storage)} == {f"storage-{role}" for role in ROLES}
    assert len(list(run.descendants(storage))) == 3 + 3 * 7
    key = run.named("key")
    assert {c.name for c in run.children(key)} == {"key-key", "key-alias", "key-autoscaling-role"}


def test_bucket_args_refuse_force_destroy_on_a_protected_bucket() -> None:
    with pytest.raises(ValueError, match="force_destroy and protect together"):
        SecureBucketArgs(
            role="data",
            kms_key_arn="arn",
            noncurrent_version_days=1,
            incomplete_upload_days=1,
            force_destroy=True,
            protect=True,
        )
