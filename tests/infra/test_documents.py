"""The pure builders of policy and lifecycle documents, checked for what they grant and deny."""

from __future__ import annotations

from infra.documents.kms import environment_key_policy
from infra.documents.s3 import lifecycle_rules, secure_bucket_policy

BUCKET = "arn:aws:s3:::models-abc"
KEY = "arn:aws:kms:eu-west-1:111122223333:key/k-1"


def by_sid(document: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_key_policy_gives_administration_to_the_account_not_to_everyone() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws", region="eu-west-1", node_volumes=True
    )
    statements = by_sid(policy)
    admin = statements["AccountAdministersKeyThroughIam"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert all(s["Principal"] != "*" for s in policy["Statement"])


def test_key_policy_lets_only_this_accounts_log_groups_in_this_region_encrypt() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws-cn", region="cn-north-1", node_volumes=True
    )
    logs = by_sid(policy)["CloudWatchLogsOfThisAccountEncrypt"]
    assert logs["Principal"] == {"Service": "logs.cn-north-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        "arn:aws-cn:logs:cn-north-1:111122223333:log-group:*"
    )
    assert "kms:*" not in logs["Action"]
    assert not any(action.startswith(("kms:Delete", "kms:Put")) for action in logs["Action"])


def test_key_policy_lets_auto_scaling_encrypt_node_disks_and_grant_only_for_aws_resources() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws", region="eu-west-1", node_volumes=True
    )
    statements = by_sid(policy)
    role = (
        "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/"
        "AWSServiceRoleForAutoScaling"
    )
    use, grants = (
        statements["AutoScalingEncryptsNodeVolumes"],
        statements["AutoScalingGrantsForNodeVolumes"],
    )
    assert use["Principal"] == grants["Principal"] == {"AWS": role}
    assert "kms:CreateGrant" not in use["Action"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_bucket_policy_denies_plain_http_and_old_tls_on_bucket_and_objects() -> None:
    statements = by_sid(secure_bucket_policy(bucket_arn=BUCKET, kms_key_arn=KEY))
    tls = statements["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Resource"] == [BUCKET, f"{BUCKET}/*"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["DenyOutdatedTls"]["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": "1.2"}
    }


def test_bucket_policy_refuses_uploads_under_another_key_or_s3_managed_keys() -> None:
    statements = by_sid(secure_bucket_policy(bucket_arn=BUCKET, kms_key_arn=KEY))
    other_key = statements["DenyUploadsNotEncryptedWithEnvironmentKey"]
    assert other_key["Action"] == "s3:PutObject"
    assert other_key["Resource"] == f"{BUCKET}/*"
    assert other_key["Condition"]["StringNotEqualsIfExists"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY
    }
    sse_s3 = statements["DenyUploadsWithS3ManagedKeys"]
    assert sse_s3["Condition"] == {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}
    assert all(s["Effect"] == "Deny" for s in statements.values())


def test_lifecycle_rules_bound_old_versions_and_abandoned_uploads() -> None:
    rules = {
        r["id"]: r for r in lifecycle_rules(noncurrent_version_days=30, incomplete_upload_days=2)
    }
    assert set(rules) == {"expire-noncurrent-versions", "abort-incomplete-multipart-uploads"}
    assert rules["expire-noncurrent-versions"]["noncurrent_version_expiration"] == {
        "noncurrent_days": 30
    }
    assert rules["abort-incomplete-multipart-uploads"]["abort_incomplete_multipart_upload"] == {
        "days_after_initiation": 2
    }
    assert all(r["status"] == "Enabled" and r["filter"] == {"prefix": ""} for r in rules.values())


def test_lifecycle_rules_expire_live_objects_only_when_asked() -> None:
    rules = lifecycle_rules(
        noncurrent_version_days=30, incomplete_upload_days=2, current_version_days=14
    )
    expiring = [r for r in rules if "expiration" in r]
    assert [r["expiration"] for r in expiring] == [{"days": 14}]
