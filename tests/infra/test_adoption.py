"""Redeploying after `pulumi destroy`: the model package groups it kept are adopted, with their
versions, instead of failing to be created again.

The program runs under Pulumi's mock runtime; the lookups it makes (the Resource Groups Tagging
API) and the groups it creates or adopts are served by moto's SageMaker and tagging backends, so
the test sees what AWS would hold between the deployments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.documents.ci import GITHUB_OIDC_HOST, GITHUB_OIDC_URL
from infra.offline.mocks import Account, AwsAnswers, InvokeFailedError
from infra.offline.runner import ProgramRun, run_program
from infra.project import naming
from tests.aws import use_emulator_credentials

REGION = "eu-west-1"  # the dev stack's
GROUP = "aws:sagemaker/modelPackageGroup:ModelPackageGroup"
GET_RESOURCES = "aws:resourcegroupstaggingapi/getResources:getResources"


class GroupExistsError(Exception):
    """What AWS answers CreateModelPackageGroup for a name that exists (moto overwrites)."""


class MotoRegistry(AwsAnswers):
    """Offline answers, except that model package groups and tag lookups are moto's.

    Creating a group that exists fails as on AWS; moto 5.2 would silently replace it, which
    would hide exactly the failure this test is about."""

    def __init__(self) -> None:
        super().__init__(region=REGION)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.tagging = boto3.client("resourcegroupstaggingapi", region_name=REGION)

    def resource(
        self, resource_type: str, physical: str, inputs: Mapping[str, Any], import_id: str = ""
    ) -> dict[str, Any]:
        state = super().resource(resource_type, physical, inputs, import_id)
        if resource_type != GROUP:
            return state
        name = str(inputs["modelPackageGroupName"])
        existing = self.sagemaker.list_model_package_groups(NameContains=name)
        exists = any(
            g["ModelPackageGroupName"] == name for g in existing["ModelPackageGroupSummaryList"]
        )
        if import_id:
            described = self.sagemaker.describe_model_package_group(ModelPackageGroupName=import_id)
            state["arn"] = described["ModelPackageGroupArn"]
        elif exists:
            raise GroupExistsError(f"Model Package Group {name} already exists")
        else:
            state["arn"] = self.sagemaker.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=str(inputs["modelPackageGroupDescription"]),
                Tags=[{"Key": k, "Value": v} for k, v in dict(inputs["tags"]).items()],
            )["ModelPackageGroupArn"]
        return state

    def call(self, token: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if token != GET_RESOURCES:
            return super().call(token, args)
        self.calls.append((token, dict(args)))
        found = self.tagging.get_resources(
            ResourceTypeFilters=list(args.get("resourceTypeFilters") or []),
            TagFilters=[
                {"Key": f["key"], "Values": list(f.get("values") or [])}
                for f in args.get("tagFilters") or []
            ],
        )["ResourceTagMappingList"]
        return {
            "resourceTagMappingLists": [
                {
                    "resourceArn": item["ResourceARN"],
                    "tags": {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])},
                    "complianceDetails": [],
                }
                for item in found
            ],
            "id": REGION,
        }


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_emulator_credentials(monkeypatch, REGION)
    with mock_aws():
        yield


def deploy() -> tuple[ProgramRun, MotoRegistry]:
    aws = MotoRegistry()
    return run_program("dev", answers=aws), aws


def register_a_version(aws: MotoRegistry, group: str) -> None:
    aws.sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription="version 1",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelApprovalStatus="Approved",
    )


@pytest.mark.usefixtures("moto_account")
def test_a_group_kept_by_destroy_is_adopted_with_its_versions_on_redeploy() -> None:
    first, aws = deploy()
    [group] = first.of_type(GROUP)
    name = group.inputs["modelPackageGroupName"]
    assert group.import_id == "", "a fresh account has nothing to adopt"
    assert group.retain_on_delete
    assert group.inputs["tags"] == {naming.MODEL_PACKAGE_GROUP_TAG: name}
    register_a_version(aws, name)

    # `pulumi destroy` deletes what is not retained; the group stays in the account. A new
    # deployment starts from empty state and must not try to create it again.
    second, aws = deploy()
    [adopted] = second.of_type(GROUP)
    assert adopted.import_id == name
    assert adopted.props["arn"] == group.props["arn"]
    versions = aws.sagemaker.list_model_packages(ModelPackageGroupName=name)
    assert [v["ModelPackageVersion"] for v in versions["ModelPackageSummaryList"]] == [1]


@pytest.mark.usefixtures("moto_account")
def test_without_the_lookup_the_redeploy_would_fail_as_it_does_on_aws() -> None:
    _, aws = deploy()
    with pytest.raises(GroupExistsError, match="demo-dev already exists"):
        aws.resource(
            GROUP,
            "models-demo",
            {
                "modelPackageGroupName": "demo-dev",
                "modelPackageGroupDescription": "Versions of demo (dev)",
                "tags": {naming.MODEL_PACKAGE_GROUP_TAG: "demo-dev"},
            },
        )


@pytest.mark.usefixtures("moto_account")
def test_a_group_of_another_environment_is_not_adopted() -> None:
    aws = MotoRegistry()
    aws.sagemaker.create_model_package_group(
        ModelPackageGroupName="demo-staging",
        Tags=[{"Key": naming.MODEL_PACKAGE_GROUP_TAG, "Value": "demo-staging"}],
    )
    run = run_program("dev", answers=aws)
    [group] = run.of_type(GROUP)
    assert (group.inputs["modelPackageGroupName"], group.import_id) == ("demo-dev", "")


def test_the_offline_plan_of_an_account_with_a_kept_group_adopts_it() -> None:
    # What `mlstack plan` shows against an account description, without any emulator.
    kept = Account(
        tagged_resources=(
            {
                "arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/demo-dev",
                "type": "sagemaker:model-package-group",
                "tags": {naming.MODEL_PACKAGE_GROUP_TAG: "demo-dev"},
            },
        )
    )
    [group] = run_program("dev", account=kept).of_type(GROUP)
    assert group.import_id == "demo-dev"
    [fresh] = run_program("dev").of_type(GROUP)
    assert fresh.import_id == ""


# --- the account's GitHub OIDC provider -----------------------------------------------------

PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
GET_PROVIDER = "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider"
CI = {"mlstack:ciGithubRepository": "example-org/mlstack"}


class MotoIam(AwsAnswers):
    """Offline answers, except that OIDC providers and their lookup are moto's IAM: a lookup of
    a provider the account lacks fails with IAM's own NoSuchEntity, as the AWS provider passes
    it on."""

    def __init__(self) -> None:
        super().__init__(region=REGION)
        self.iam = boto3.client("iam", region_name=REGION)

    def resource(
        self, resource_type: str, physical: str, inputs: Mapping[str, Any], import_id: str = ""
    ) -> dict[str, Any]:
        state = super().resource(resource_type, physical, inputs, import_id)
        if resource_type == PROVIDER and import_id:
            state["arn"] = import_id
        elif resource_type == PROVIDER and GITHUB_OIDC_HOST in str(inputs["url"]):
            state["arn"] = self.iam.create_open_id_connect_provider(
                Url=str(inputs["url"]), ClientIDList=list(inputs["clientIdLists"])
            )["OpenIDConnectProviderArn"]
        return state

    def call(self, token: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if token != GET_PROVIDER:
            return super().call(token, args)
        self.calls.append((token, dict(args)))
        host = str(args["url"]).removeprefix("https://")
        arn = f"arn:aws:iam::{self.account_id}:oidc-provider/{host}"
        try:
            found = self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        except self.iam.exceptions.NoSuchEntityException as error:
            raise InvokeFailedError(str(error)) from error
        return {"arn": arn, "url": found["Url"], "clientIdLists": found["ClientIDList"], "id": arn}


def github_provider(run: ProgramRun) -> Any:
    [provider] = [p for p in run.of_type(PROVIDER) if GITHUB_OIDC_HOST in p.inputs["url"]]
    return provider


@pytest.mark.usefixtures("moto_account")
def test_the_github_provider_is_created_in_a_fresh_account_and_kept_on_destroy() -> None:
    aws = MotoIam()
    provider = github_provider(run_program("dev", overrides=CI, answers=aws))
    assert provider.import_id == ""
    assert provider.retain_on_delete
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    listed = aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert [p["Arn"] for p in listed] == [provider.props["arn"]]


@pytest.mark.usefixtures("moto_account")
def test_a_github_provider_the_account_has_is_adopted_not_created_again() -> None:
    """Another stack of the account (or someone before it) made GitHub's provider; IAM allows
    one per URL, so this stack adopts it, and the roles trust that one."""
    aws = MotoIam()
    existing = aws.iam.create_open_id_connect_provider(
        Url=GITHUB_OIDC_URL, ClientIDList=["sts.amazonaws.com", "sigstore"]
    )["OpenIDConnectProviderArn"]
    run = run_program("staging", overrides=CI, answers=aws)
    provider = github_provider(run)
    assert provider.import_id == existing
    # What someone else set on the shared provider is left as it is.
    assert {"clientIdLists", "thumbprintLists"} <= set(provider.ignore_changes)
    roles = [r for r in run.of_type("aws:iam/role:Role") if r.name.startswith("ci-")]
    assert {
        json.loads(r.inputs["assumeRolePolicy"])["Statement"][0]["Principal"]["Federated"]
        for r in roles
    } == {existing}
    assert len(aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_the_offline_plan_of_an_account_with_a_github_provider_adopts_it() -> None:
    account = Account(oidc_providers=(GITHUB_OIDC_URL,))
    provider = github_provider(run_program("dev", overrides=CI, account=account))
    assert provider.import_id.endswith(f":oidc-provider/{GITHUB_OIDC_HOST}")
    assert github_provider(run_program("dev", overrides=CI)).import_id == ""
