"""`mlstack preflight ENV`: every check through the command, on moto where moto answers (the
caller, the region, the OIDC providers) and on recorded AWS answers where it does not (Service
Quotas' SageMaker list, Cost Explorer, EKS add-on versions, CodeConnections): botocore serves
those from a table keyed by the request, in the shapes AWS documents, instead of sending it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from infra.cli.main import main
from infra.config.eks_versions import (
    ADDON_VERSIONS,
    CLUSTER_AUTOSCALER_IMAGES,
    NVIDIA_DEVICE_PLUGIN_IMAGE,
)
from infra.operations import preflight as preflight_module
from infra.operations.aws_access import StackAws
from mlstack_common.exits import ExitStatus
from tests.aws import use_emulator_credentials
from tests.infra.operating import REGION
from tests.loopback import http_server

Answer = Callable[[Mapping[str, Any]], Mapping[str, Any]]
CONNECTION = (
    "arn:aws:codeconnections:eu-west-1:123456789012:connection/0f6a3c4e-5b1d-4e8f-9a2b-7c3d1e5f6a70"
)
QUOTAS = {"L-F678F1CE": 5, "L-FE5A380F": 5, "L-0263D0A3": 5, "L-6D54EA21": 30}
WHOAMI = preflight_module._pulumi_whoami


@dataclass(frozen=True)
class RecordedAws(StackAws):
    """The stack's AWS: moto, except the operations `answers` holds, served from there."""

    answers: Mapping[str, Mapping[str, Answer]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        client = super().client(service)
        service_id = client.meta.service_model.service_id.hyphenize()
        for operation, answer in self.answers.get(service, {}).items():
            # The request's parameters as the caller gave them, then the answer in their place.
            client.meta.events.register(f"before-parameter-build.{service_id}.{operation}", _keep)
            client.meta.events.register(f"before-call.{service_id}.{operation}", _serve(answer))
        return client


def _keep(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["recorded_params"] = dict(params)


def _serve(answer: Answer) -> Callable[..., Any]:
    def handler(context: Mapping[str, Any], **_: Any) -> tuple[AWSResponse, Mapping[str, Any]]:
        response = AWSResponse("https://recorded", 200, {}, None)  # type: ignore[arg-type]
        return response, answer(context["recorded_params"])

    return handler


def answers(
    *,
    quotas: Mapping[str, int] = QUOTAS,
    sagemaker: Mapping[str, int] | None = None,
    addons_offered: bool = True,
    tag_status: str = "Active",
    connection: str = "AVAILABLE",
    caller_arn: str = "",
) -> dict[str, dict[str, Answer]]:
    """AWS's answers for an account that has everything dev needs, unless told otherwise."""
    sagemaker = sagemaker if sagemaker is not None else {
        "ml.m5.xlarge for training job usage": 2,
        "ml.m5.xlarge for transform job usage": 2,
    }  # fmt: skip

    def quota(params: Mapping[str, Any]) -> Mapping[str, Any]:
        code = params["QuotaCode"]
        return {
            "Quota": {
                "ServiceCode": params["ServiceCode"],
                "QuotaCode": code,
                "QuotaName": code,
                "Value": float(quotas[code]),
            }
        }

    def listed(params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {
            "Quotas": [
                {"ServiceCode": "sagemaker", "QuotaCode": f"L-{i:08X}", "QuotaName": name,
                 "Value": float(value)}
                for i, (name, value) in enumerate(sagemaker.items())
            ]
        }  # fmt: skip

    def addon(params: Mapping[str, Any]) -> Mapping[str, Any]:
        pinned = ADDON_VERSIONS[params["kubernetesVersion"]][params["addonName"]]
        offered = pinned if addons_offered else "v0.0.1-eksbuild.1"
        return {
            "addons": [
                {"addonName": params["addonName"], "addonVersions": [{"addonVersion": offered}]}
            ]
        }

    caller = {"UserId": "AIDAEXAMPLE", "Account": "123456789012", "Arn": caller_arn}
    return {
        **({"sts": {"GetCallerIdentity": lambda _: caller}} if caller_arn else {}),
        "service-quotas": {"GetServiceQuota": quota, "ListServiceQuotas": listed},
        "eks": {"DescribeAddonVersions": addon},
        "ce": {
            "ListCostAllocationTags": lambda _: {
                "CostAllocationTags": [
                    {"TagKey": "environment", "Type": "UserDefined", "Status": tag_status}
                ]
            }
        },
        "codeconnections": {
            "GetConnection": lambda params: {
                "Connection": {
                    "ConnectionName": "mlstack-dev",
                    "ConnectionArn": params["ConnectionArn"],
                    "ProviderType": "GitHub",
                    "ConnectionStatus": connection,
                }
            }
        },
    }


PINNED = {
    image.partition("@")[2]
    for image in (*CLUSTER_AUTOSCALER_IMAGES.values(), NVIDIA_DEVICE_PLUGIN_IMAGE)
    if "@" in image
}


@contextmanager
def registry(digests: set[str]) -> Iterator[str]:
    """A registry on loopback that, as registry.k8s.io and nvcr.io do, answers a manifest's
    HEAD with a 401 challenge naming where an anonymous token comes from, then 200 for the
    digests it has and 404 for others."""

    class Registry(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            if self.headers.get("Authorization") != "Bearer anonymous":
                self.send_response(401)
                realm = f"http://{self.headers['Host']}/token"
                self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="r"')
            else:
                digest = self.path.rsplit("/", 1)[-1]
                self.send_response(200 if digest in digests else 404)
            self.end_headers()

        def do_GET(self) -> None:
            body = json.dumps({"token": "anonymous"}).encode()
            self.send_response(200 if self.path.startswith("/token?") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    with http_server(Registry) as url:
        yield url


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """moto for the account, a registry with the pinned images, and a way to say what AWS
    answers the rest with."""
    use_emulator_credentials(monkeypatch, REGION)
    monkeypatch.setattr(preflight_module, "_pulumi_whoami", lambda: "ops")

    def answering(endpoints: Mapping[str, str] | None = None, **told: Any) -> None:
        recorded = {k: v for k, v in answers(**told).items() if k not in (endpoints or {})}
        monkeypatch.setattr(
            preflight_module,
            "stack_aws",
            lambda settings: RecordedAws(
                region=settings.region(), endpoints=endpoints or {}, answers=recorded
            ),
        )

    with mock_aws(), registry(PINNED) as url:
        monkeypatch.setattr(preflight_module, "registry_base", lambda host: url)
        answering()
        yield answering


def run(project: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["preflight", "dev", "--project-dir", str(project), *extra])
    return code, capsys.readouterr().out


def test_an_account_with_what_dev_needs_passes_every_check(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(project, capsys)
    assert code == ExitStatus.OK, out
    lines = out.splitlines()
    assert lines[0] == "dev: AWS account 123456789012, region eu-west-1"
    assert lines[-1].startswith("dev: the account can hold the stack (")
    checked = [line.split(": ")[0] for line in lines[1:-1]]
    assert all(line.startswith("ok") for line in checked), out
    for expected in (
        "identity: account",
        "identity: partition",
        "region: eu-west-1",
        "quota: VPCs per Region",
        "quota: NAT gateways per Availability Zone",
        "quota: EC2-VPC Elastic IPs",
        "quota: Managed node groups per cluster",
        "quota: ml.m5.xlarge for training job usage",
        "eks add-on: vpc-cni",
        "image: cluster autoscaler",
        "cost allocation tag: environment",
        "delivery: GitHub OIDC provider",
        "delivery: GitHub connection",
        "delivery: Pulumi login",
    ):
        assert any(expected in line for line in lines), f"{expected!r} not in:\n{out}"


@pytest.mark.parametrize(
    ("told", "line", "fix"),
    [
        (
            {"quotas": {**QUOTAS, "L-F678F1CE": 0}},
            # moto's default VPC is one the stack does not own.
            "quota: VPCs per Region: declared 2 (the stack's VPC, beside 1 in use), live 0",
            "--service-code vpc --quota-code L-F678F1CE --desired-value 2",
        ),
        (
            {"sagemaker": {"ml.m5.xlarge for training job usage": 0}},
            "quota: ml.m5.xlarge for training job usage: declared 1",
            "request-service-quota-increase --service-code sagemaker",
        ),
        (
            {"sagemaker": {"ml.m5.xlarge for training job usage": 1}},
            "quota: ml.m5.xlarge for transform job usage: declared 1 (mlstack score --on "
            "sagemaker), live no such quota in this region",
            "choose one the region has",
        ),
        (
            {"addons_offered": False},
            "eks add-on: vpc-cni: declared",
            "aws eks describe-addon-versions --addon-name vpc-cni",
        ),
        (
            {"tag_status": "Inactive"},
            "cost allocation tag: environment: declared Active, live Inactive",
            "update-cost-allocation-tags-status",
        ),
        (
            {"connection": "PENDING"},
            "delivery: GitHub connection: declared AVAILABLE, live PENDING",
            "Update pending connection",
        ),
    ],
    ids=["vpc quota", "training quota", "missing quota", "add-on", "cost tag", "connection"],
)
def test_each_problem_is_one_line_with_its_fix_and_the_command_refuses(
    project: Path,
    account: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    told: dict[str, Any],
    line: str,
    fix: str,
) -> None:
    account(**told)
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED, out
    lines = out.splitlines()
    [index] = [i for i, text in enumerate(lines) if line in text]
    assert lines[index].startswith("MISMATCH"), out
    assert fix in lines[index + 1], out


def test_an_account_other_than_the_allowed_one_is_named(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text().replace(
            "  aws:region: eu-west-1\n",
            "  aws:region: eu-west-1\n  aws:allowedAccountIds: ['111122223333']\n",
        )
    )
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED
    assert "MISMATCH identity: account: declared 111122223333, live 123456789012 as" in out


def test_without_the_pulumi_cli_the_login_check_says_how_to_get_it(
    project: Path,
    account: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("infra.operations.preflight.shutil.which", lambda _: None)
    monkeypatch.setattr(preflight_module, "_pulumi_whoami", WHOAMI)
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED
    assert "MISMATCH delivery: Pulumi login: declared logged in, live there is no `pulumi`" in out
    assert "install the Pulumi CLI" in out


def test_a_service_that_cannot_be_read_is_reported_and_the_rest_still_checked(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    # Cost Explorer at an address where nothing listens.
    account(endpoints={"ce": "http://127.0.0.1:9"})
    code, out = run(project, capsys, "--json")
    report = json.loads(out)
    assert report["account"] == "123456789012"
    outcomes = {(c["target"], c["item"]): c for c in report["checks"]}
    assert outcomes[("cost allocation tag", "environment")]["outcome"] == "not read"
    assert "could not be read" in outcomes[("cost allocation tag", "environment")]["live"]
    assert {c["outcome"] for k, c in outcomes.items() if k[0] != "cost allocation tag"} == {"ok"}
    assert code == ExitStatus.UNREACHABLE


def test_a_region_the_account_has_not_enabled_is_named_with_how_to_enable_it(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = project / "Pulumi.dev.yaml"
    # moto answers as a new account does: ap-east-1 is an opt-in region, not enabled.
    stack_file.write_text(stack_file.read_text().replace("eu-west-1", "ap-east-1"))
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED, out
    lines = out.splitlines()
    [index] = [i for i, line in enumerate(lines) if "region: ap-east-1:" in line]
    assert lines[index].startswith(
        "MISMATCH region: ap-east-1: declared enabled, live not-opted-in"
    )
    assert "enable the region for the account" in lines[index + 1]


def test_credentials_of_another_partition_are_named(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = project / "Pulumi.dev.yaml"
    # No GitHub connection in China (the config refuses one there), so no CI roles either.
    lines = stack_file.read_text().replace("eu-west-1", "cn-north-1").splitlines()
    kept = [line for line in lines if "mlstack:ciGithub" not in line]
    stack_file.write_text("\n".join(kept) + "\n")
    # Credentials of the commercial partition: moto would answer in the stack's own.
    account(caller_arn="arn:aws:iam::123456789012:user/ops")
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED, out
    lines = out.splitlines()
    [index] = [i for i, line in enumerate(lines) if "identity: partition:" in line]
    assert lines[index] == "MISMATCH identity: partition: declared aws-cn, live aws"
    assert "cn-north-1 is in aws-cn: use credentials of that partition" in lines[index + 1]


def test_a_pinned_digest_the_registry_lacks_or_a_tag_is_named_with_how_to_pin_one(
    project: Path,
    account: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with registry(set()) as empty:
        monkeypatch.setattr(preflight_module, "registry_base", lambda host: empty)
        code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED, out
    lines = out.splitlines()
    [index] = [i for i, line in enumerate(lines) if "image: cluster autoscaler" in line]
    assert lines[index].startswith("MISMATCH image: cluster autoscaler: declared sha256:")
    assert lines[index].endswith("live registry.k8s.io answers 404 for it")
    assert (
        "crane digest registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0" in (lines[index + 1])
    )
    # A version whose autoscaler is pinned by tag only.
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text() + '  mlstack:kubernetesVersion: "1.34"\n')
    code, out = run(project, capsys)
    assert "MISMATCH image: cluster autoscaler: declared pinned by digest, live " in out
    assert "cluster-autoscaler:v1.34.5, a tag" in out


def test_a_quota_counts_what_the_region_holds_besides_the_stack(
    project: Path, account: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_vpc(CidrBlock="10.9.0.0/16")  # another team's, beside moto's default VPC
    # The stack's own VPC, from an earlier up, takes nothing more from the quota.
    ec2.create_vpc(
        CidrBlock="10.40.0.0/16",
        TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": "environment", "Value": "dev"}]}
        ],
    )
    account(quotas={**QUOTAS, "L-F678F1CE": 3})
    code, out = run(project, capsys)
    assert code == ExitStatus.OK, out
    account(quotas={**QUOTAS, "L-F678F1CE": 2})
    code, out = run(project, capsys)
    assert code == ExitStatus.REFUSED
    assert (
        "MISMATCH quota: VPCs per Region: declared 3 (the stack's VPC, beside 2 in use), live 2"
        in out
    )
