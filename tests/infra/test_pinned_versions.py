"""Pinned model versions resolved through the registry (moto): what a deployment serves."""

from __future__ import annotations

import pytest

from infra.config.pinned_versions import PinnedVersionError, resolve_pinned_versions
from mlstack_common.registry import ModelRegistry
from tests.aws import GROUP, SERVING_IMAGE, Aws

ENVIRONMENT = "test"  # GROUP is the demo model's group in it


def register(aws: Aws, status: str, sha: str = "a" * 64, auc: float = 0.97) -> int:
    version = ModelRegistry(GROUP, aws.sagemaker).register(
        serving_image=SERVING_IMAGE,
        model_data_url=f"s3://models/demo/{sha[:12]}/model.tar.gz",
        evaluation_url=f"s3://models/demo/{sha[:12]}/runs/1/evaluation.json",
        approval_status=status,
        description="test",
        metrics={"roc_auc": auc},
        lineage={"model_sha256": sha},
        commit="abc",
    )
    return version.version


def test_an_approved_pin_resolves_to_its_model_data_sha256_and_metrics(aws: Aws) -> None:
    register(aws, "Approved", sha="a" * 64)
    register(aws, "Approved", sha="b" * 64, auc=0.99)
    [(model, package)] = resolve_pinned_versions(aws.sagemaker, ENVIRONMENT, {"demo": 1}).items()
    assert model == "demo"
    assert package.version == 1
    assert package.model_data_url == "s3://models/demo/aaaaaaaaaaaa/model.tar.gz"
    assert package.model_sha256 == "a" * 64
    assert package.metrics == {"roc_auc": 0.97}
    assert package.image == SERVING_IMAGE


@pytest.mark.parametrize(
    ("statuses", "pin", "message"),
    [
        (
            ["Approved"],
            3,
            f"mlstack:servingModelVersions: demo=3: model package group '{GROUP}' has no version "
            "3; versions there: 1",
        ),
        (
            ["Approved", "PendingManualApproval"],
            2,
            f"demo=2: version 2 of model package group '{GROUP}' is PendingManualApproval; "
            "allowed: an Approved version",
        ),
        (
            ["Rejected"],
            1,
            f"demo=1: version 1 of model package group '{GROUP}' is Rejected; allowed: an Approved",
        ),
    ],
    ids=["missing", "pending", "rejected"],
)
def test_a_pin_the_registry_cannot_serve_stops_with_group_and_version(
    aws: Aws, statuses: list[str], pin: int, message: str
) -> None:
    for status in statuses:
        register(aws, status)
    with pytest.raises(PinnedVersionError) as refused:
        resolve_pinned_versions(aws.sagemaker, ENVIRONMENT, {"demo": pin})
    assert message in str(refused.value)


def test_a_pin_into_a_group_that_does_not_exist_names_the_group(aws: Aws) -> None:
    with pytest.raises(PinnedVersionError) as refused:
        resolve_pinned_versions(aws.sagemaker, "prod", {"demo": 1})
    assert "model package group 'demo-prod' has no version 1; versions there: none" in str(
        refused.value
    )
