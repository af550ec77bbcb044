"""Images reach the environment that runs them: promotion copies staging's images into prod's
repositories, by digest, with the least permission that does it. On moto's ECR, extended where
it differs from ECR (tests/ecr.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.operations.audit import AuditLog
from infra.operations.errors import RefusedError
from infra.operations.image_copy import (
    ImageLocation,
    copy_image,
    image_copy_policy,
    repository_arn,
)
from infra.operations.promotion import copy_pins
from infra.project import naming
from tests.ecr import Blobs, extended_ecr, push, repository, tags
from tests.iam import Request, evaluate, needs_simulator
from tests.infra.operating import REGION, Registry

ACCOUNT = "123456789012"


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Blobs]]:
    with extended_ecr(monkeypatch, REGION) as found:
        yield found


def test_the_target_refuses_a_manifest_whose_blobs_it_lacks(ecr: tuple[Any, Blobs]) -> None:
    """Why a copy uploads blobs: putting staging's manifest into prod's repository alone fails."""
    client, _ = ecr
    source = push(client, "images-serving-staging", "src-1")
    repository(client, "images-serving-prod")
    [image] = client.batch_get_image(
        repositoryName="images-serving-staging", imageIds=[{"imageDigest": source.digest}]
    )["images"]
    with pytest.raises(client.exceptions.ClientError, match="LayersNotFoundException"):
        client.put_image(
            repositoryName="images-serving-prod",
            imageManifest=image["imageManifest"],
            imageTag="src-1",
        )


@pytest.mark.parametrize("index", [False, True], ids=["image", "image index"])
def test_an_image_is_copied_by_digest_with_its_tag_blobs_first(
    ecr: tuple[Any, Blobs], index: bool
) -> None:
    client, _ = ecr
    source = push(client, "images-serving-staging", "src-1", index=index)
    target = repository(client, "images-serving-prod")
    report = copy_image(source, target, source_client=client, target_client=client, tag="src-1")
    assert len(report.uploaded) == 3  # the config and two layers
    assert len(report.manifests) == (2 if index else 1)
    assert tags(client, "images-serving-prod")[source.digest] == ["src-1"]
    # Again: the target has it, and nothing moves.
    again = copy_image(source, target, source_client=client, target_client=client, tag="src-1")
    assert again.already_there
    assert not again.uploaded


def test_blobs_the_target_already_holds_are_not_uploaded_again(ecr: tuple[Any, Blobs]) -> None:
    client, _ = ecr
    first = push(client, "images-serving-staging", "src-1")
    target = repository(client, "images-serving-prod")
    copy_image(first, target, source_client=client, target_client=client, tag="src-1")
    # A new image sharing nothing but... the same layers re-pushed under a new config.
    second = push(client, "images-serving-staging-2", "src-2")
    report = copy_image(second, target, source_client=client, target_client=client, tag="src-2")
    assert len(report.uploaded) == 3
    assert set(tags(client, "images-serving-prod")) == {first.digest, second.digest}


def test_an_image_the_source_lacks_or_a_tag_on_another_image_is_refused(
    ecr: tuple[Any, Blobs],
) -> None:
    client, _ = ecr
    source = push(client, "images-serving-staging", "src-1")
    target = repository(client, "images-serving-prod")
    missing = ImageLocation(source.repository_url, "sha256:" + "0" * 64)
    with pytest.raises(RefusedError, match="is not in its repository: nothing to copy"):
        copy_image(missing, target, source_client=client, target_client=client)


@needs_simulator
def test_the_copy_needs_no_more_than_its_policy_grants(ecr: tuple[Any, Blobs]) -> None:
    """Every call the copy made, judged by IAM's rules against `image_copy_policy` for these two
    repositories: all allowed; and the same policy denies them on a third repository."""
    client, _ = ecr
    source = push(client, "images-serving-staging", "src-1", index=True)
    target_url = repository(client, "images-serving-prod")
    made: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        made.append((f"ecr:{model.name}", str(params.get("repositoryName"))))

    client.meta.events.register("before-parameter-build.ecr", record)
    copy_image(source, target_url, source_client=client, target_client=client, tag="src-1")
    client.meta.events.unregister("before-parameter-build.ecr", record)
    assert {action for action, _ in made} >= {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchCheckLayerAvailability",
    }
    target = ImageLocation(target_url, source.digest)
    policy = image_copy_policy(
        source_arns=[repository_arn(source)], target_arns=[repository_arn(target)]
    )

    def arn(name: str) -> str:
        return f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"

    requests = [Request(action, arn(name), why="the copy") for action, name in set(made)]
    elsewhere = [Request(r.action, arn("images-serving-dev"), why="elsewhere") for r in requests]
    found = evaluate(
        [*requests, *elsewhere],
        identity={"copy": policy},
        principal=f"arn:aws:iam::{ACCOUNT}:role/operator",
        account=ACCOUNT,
    )
    assert [v.allowed for v in found] == [True] * len(requests) + [False] * len(elsewhere), (
        "\n".join(map(str, found))
    )


def test_promoting_staging_to_prod_copies_its_images_before_prod_names_them(
    ecr: tuple[Any, Blobs], project: Path
) -> None:
    client, _ = ecr
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=naming.audit_log_group("prod"))
    registry = Registry(sagemaker, logs)
    registry.register("demo-staging", "a" * 64)
    registry.register("demo-prod", "a" * 64)
    serving = push(client, "images-serving-staging", "src-serve", index=True)
    training = push(client, "images-training-staging", "src-train")
    prod_serving = repository(client, "images-serving-prod")
    prod_training = repository(client, "images-training-prod")
    with (project / "Pulumi.staging.yaml").open("a") as handle:
        handle.write("  mlstack:servingModelVersions:\n    - demo=1\n")
    outputs = {
        "staging": {
            "servingRepositoryUrl": serving.repository_url,
            "trainingRepositoryUrl": training.repository_url,
            "servingImage": serving.reference,
            "trainingImage": training.reference,
        },
        "prod": {"servingRepositoryUrl": prod_serving, "trainingRepositoryUrl": prod_training},
    }
    change = copy_pins(
        project,
        "staging",
        "prod",
        source_client=sagemaker,
        target_client=sagemaker,
        read_outputs=outputs.__getitem__,
        source_ecr=client,
        target_ecr=client,
        approve=False,
        operator="me",
        reason="test",
    )
    assert [t.tag for t in change.images] == ["src-serve", "src-train"]
    assert tags(client, "images-serving-prod") == {}  # nothing copied before it is applied
    change.apply(
        sagemaker,
        AuditLog(logs, "prod"),
        change.audit_record(
            "prod", aws_identity="arn:aws:iam::123456789012:user/me", git_user="me"
        ),
    )
    assert tags(client, "images-serving-prod")[serving.digest] == ["src-serve"]
    assert tags(client, "images-training-prod")[training.digest] == ["src-train"]
    prod = (project / "Pulumi.prod.yaml").read_text()
    assert f"serving={serving.digest}" in prod
    assert f"training={training.digest}" in prod


def test_promoting_needs_both_environments_repositories_from_their_outputs(
    ecr: tuple[Any, Blobs], project: Path
) -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=naming.audit_log_group("prod"))
    registry = Registry(sagemaker, logs)
    registry.register("demo-staging", "a" * 64)
    registry.register("demo-prod", "a" * 64)
    with (project / "Pulumi.staging.yaml").open("a") as handle:
        handle.write("  mlstack:servingModelVersions:\n    - demo=1\n")
    client, _ = ecr
    with pytest.raises(RefusedError, match="staging's stack outputs name no image repository"):
        copy_pins(
            project,
            "staging",
            "prod",
            source_client=sagemaker,
            target_client=sagemaker,
            read_outputs=lambda stack: {},
            source_ecr=client,
            target_ecr=client,
            approve=False,
            operator="me",
            reason="test",
        )
