"""`preflight` for one stack: read-only checks that the account and region its stack file names
can hold what it declares, before its first `up` and before each deploy.

What `up` would otherwise discover halfway: the caller is in another account than intended, the
region is not enabled, a quota is below what the stack needs at its peak (a blue/green shift runs
the old and the new fleet of every endpoint at once), an EKS add-on version it pins does not
exist for its Kubernetes version, an image it pins by digest is not in its registry, the
budget's cost allocation tag is not active (the budget then sees nothing), or the delivery path
is not ready (the GitHub connection's handshake, the Pulumi CLI and its login). Every call only
reads; one that fails becomes a check that says what could not be read, and the rest are still
made.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infra.config.eks_versions import (
    ADDON_VERSIONS,
    CLUSTER_AUTOSCALER_IMAGES,
    NVIDIA_DEVICE_PLUGIN_IMAGE,
)
from infra.config.regions import partition_of
from infra.config.serving_targets import serving_targets
from infra.config.stack import StackConfig, load_config
from infra.config.stackfiles import load_stack_settings
from infra.documents.ci import ENVIRONMENT_TAG, GITHUB_OIDC_HOST
from infra.operations.aws_access import READ_LIMITS, StackAws, stack_aws
from infra.operations.scoring_runs import DEFAULT_INSTANCE_TYPE as TRANSFORM_INSTANCE_TYPE
from infra.operations.training_runs import DEFAULT_INSTANCE_TYPE as TRAINING_INSTANCE_TYPE
from infra.operations.verification import Check, Report, not_read

COST_TAG = "environment"
ACTIVATE_COST_TAG = (
    "activate it from the organization's management account: Billing and Cost Management → "
    "Cost allocation tags, or `aws ce update-cost-allocation-tags-status "
    "--cost-allocation-tags-status TagKey=environment,Status=Active`"
)
QUOTA_HINT = (
    "ask for more in Service Quotas (console, or `aws service-quotas "
    "request-service-quota-increase --service-code {service} --quota-code {code} "
    "--desired-value {needed}`) before the first up"
)
# Quotas with codes that are the same in every account (Service Quotas' console and the
# `list-aws-default-service-quotas` answers): service, code, name.
VPCS = ("vpc", "L-F678F1CE", "VPCs per Region")
NAT_PER_ZONE = ("vpc", "L-FE5A380F", "NAT gateways per Availability Zone")
ELASTIC_IPS = ("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs")
NODE_GROUPS = ("eks", "L-6D54EA21", "Managed node groups per cluster")


def preflight(
    root: Path,
    stack: str,
    *,
    aws: StackAws | None = None,
    pulumi_whoami: Callable[[], str] | None = None,
) -> Report:
    """Every check for `stack`, as one report (`Report.exit_status` says how it ended)."""
    settings = load_stack_settings(stack, root)
    config = load_config(settings.values)
    live = (aws or stack_aws(settings)).with_limits(READ_LIMITS)
    allowed = tuple(str(a) for a in settings.values.get("aws:allowedAccountIds") or ())
    checks: list[Check] = []
    account = ""
    for check in _identity(live, config, allowed):
        checks.append(check)
        if check.item == "account":
            account = check.live.split(" ")[0] if check.read else ""
    checks.extend(_region(live, config))
    checks.extend(_quotas(live, config))
    checks.extend(_addons(live, config))
    checks.extend(_pinned_images(config))
    checks.append(_cost_tag(live, config))
    checks.extend(_delivery(live, config, pulumi_whoami or _pulumi_whoami))
    return Report(
        stack=stack,
        region=config.region,
        account=account,
        checks=checks,
        passed="the account can hold the stack",
    )


def _read(target: str, item: str, needed: str, read: Callable[[], Check]) -> Check:
    """`read()`, or a check saying why it could not be made."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return read()
    except (BotoCoreError, ClientError) as error:
        return not_read(target, item, needed, f"could not be read: {error}")


def _identity(aws: StackAws, config: StackConfig, allowed: tuple[str, ...]) -> Iterator[Check]:
    def read() -> Check:
        caller = aws.client("sts").get_caller_identity()
        account, arn = caller["Account"], caller["Arn"]
        declared = ", ".join(allowed) if allowed else "any (no aws:allowedAccountIds)"
        return Check(
            "identity",
            "account",
            declared,
            f"{account} as {arn}",
            not allowed or account in allowed,
            "use credentials of an account aws:allowedAccountIds lists, or correct the list",
        )

    identity = _read("identity", "account", "the caller's account", read)
    yield identity
    if identity.read:
        partition = identity.live.split(" as ")[1].split(":")[1]
        expected = partition_of(config.region)
        yield Check(
            "identity",
            "partition",
            expected,
            partition,
            partition == expected,
            f"{config.region} is in {expected}: use credentials of that partition",
        )


def _region(aws: StackAws, config: StackConfig) -> Iterator[Check]:
    def read() -> Check:
        regions = aws.client("ec2").describe_regions(AllRegions=True, RegionNames=[config.region])[
            "Regions"
        ]
        status = regions[0]["OptInStatus"] if regions else "unknown to the account"
        return Check(
            "region",
            config.region,
            "enabled",
            status,
            status in ("opt-in-not-required", "opted-in"),
            "enable the region for the account (Account → AWS Regions) and wait until it is",
        )

    yield _read("region", config.region, "enabled", read)


def _quota_check(
    aws: StackAws,
    quota: tuple[str, str, str],
    needed: int,
    why: str,
    others: Callable[[], int] | None = None,
) -> Check:
    """`quota` against what the stack needs, plus what `others` says the region already holds
    that is not the stack's (a quota counts the whole account's use in the region)."""
    service, code, name = quota

    def read() -> Check:
        used = others() if others is not None else 0
        value = aws.client("service-quotas").get_service_quota(ServiceCode=service, QuotaCode=code)[
            "Quota"
        ]["Value"]
        total, reason = needed + used, why + (f", beside {used} in use" if used else "")
        return _quota_outcome(service, code, name, int(value), total, reason)

    return _read("quota", name, f"{needed} ({why})", read)


def _not_the_stacks(items: list[dict[str, Any]], environment: str) -> int:
    """How many of `items` (EC2 descriptions with their tags) are not tagged as the stack's."""
    return sum(
        1
        for item in items
        if {"Key": ENVIRONMENT_TAG, "Value": environment} not in item.get("Tags", [])
    )


def _quota_outcome(service: str, code: str, name: str, value: int, needed: int, why: str) -> Check:
    return Check(
        "quota",
        name,
        f"{needed} ({why})",
        str(value),
        value >= needed,
        QUOTA_HINT.format(service=service, code=code, needed=needed),
    )


def _sagemaker_quotas(aws: StackAws, needs: dict[str, tuple[int, str]]) -> Iterator[Check]:
    """SageMaker's quotas are per instance type, with codes that differ by type: found by
    name among the account's quotas."""

    def found() -> dict[str, tuple[str, int]]:
        quotas: dict[str, tuple[str, int]] = {}
        pages = aws.client("service-quotas").get_paginator("list_service_quotas")
        for page in pages.paginate(ServiceCode="sagemaker"):
            for quota in page["Quotas"]:
                if quota["QuotaName"] in needs:
                    quotas[quota["QuotaName"]] = (quota["QuotaCode"], int(quota["Value"]))
        return quotas

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        quotas = found()
    except (BotoCoreError, ClientError) as error:
        for name, (needed, why) in needs.items():
            yield not_read("quota", name, f"{needed} ({why})", f"could not be read: {error}")
        return
    for name, (needed, why) in needs.items():
        if name in quotas:
            code, value = quotas[name]
            yield _quota_outcome("sagemaker", code, name, value, needed, why)
        else:
            yield Check(
                "quota",
                name,
                f"{needed} ({why})",
                "no such quota in this region",
                False,
                "the instance type is not offered here: choose one the region has",
            )


def _quotas(aws: StackAws, config: StackConfig) -> Iterator[Check]:
    environment = config.environment

    def other_vpcs() -> int:
        pages = aws.client("ec2").get_paginator("describe_vpcs").paginate()
        return _not_the_stacks([v for page in pages for v in page["Vpcs"]], environment)

    def other_addresses() -> int:
        addresses = aws.client("ec2").describe_addresses()["Addresses"]
        return _not_the_stacks(addresses, environment)

    yield _quota_check(aws, VPCS, 1, "the stack's VPC", other_vpcs)
    if config.network.nat_gateways != "none":
        yield _quota_check(aws, NAT_PER_ZONE, 1, f"natGateways {config.network.nat_gateways}")
        gateways = (
            1 if config.network.nat_gateways == "single" else config.network.availability_zone_count
        )
        yield _quota_check(aws, ELASTIC_IPS, gateways, "one per NAT gateway", other_addresses)
    if config.cluster.enabled:
        groups = len(config.cluster.node_groups)
        yield _quota_check(aws, NODE_GROUPS, groups, "the stack's node groups")
    needs: dict[str, tuple[int, str]] = {}
    endpoints = len(config.serving.model_versions)
    if serving_targets(config).on_sagemaker and endpoints:
        peak = 2 * config.serving.endpoint_max_instances * endpoints
        needs[f"{config.serving.instance_type} for endpoint usage"] = (
            peak,
            f"{endpoints} endpoint(s) x {config.serving.endpoint_max_instances} instances, "
            "old and new fleet during a blue/green shift",
        )
    needs[f"{TRAINING_INSTANCE_TYPE} for training job usage"] = (1, "mlstack train --on sagemaker")
    needs[f"{TRANSFORM_INSTANCE_TYPE} for transform job usage"] = (
        1,
        "mlstack score --on sagemaker",
    )
    yield from _sagemaker_quotas(aws, needs)


def _addons(aws: StackAws, config: StackConfig) -> Iterator[Check]:
    if not config.cluster.enabled:
        return
    version = config.cluster.kubernetes_version
    for addon, pinned in sorted(ADDON_VERSIONS[version].items()):

        def read(addon: str = addon, pinned: str = pinned) -> Check:
            answer = aws.client("eks").describe_addon_versions(
                addonName=addon, kubernetesVersion=version
            )
            offered = {
                v["addonVersion"] for a in answer["addons"] for v in a.get("addonVersions", [])
            }
            return Check(
                "eks add-on",
                addon,
                pinned,
                pinned if pinned in offered else f"not offered for Kubernetes {version}",
                pinned in offered,
                f"pin a version `aws eks describe-addon-versions --addon-name {addon} "
                f"--kubernetes-version {version}` lists (infra/config/eks_versions.py)",
            )

        yield _read("eks add-on", addon, pinned, read)


MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
REGISTRY_TIMEOUT_SECONDS = 10


def registry_base(host: str) -> str:
    """Where a registry's distribution API answers."""
    return f"https://{host}"


def _pinned_images(config: StackConfig) -> Iterator[Check]:
    """The images the cluster runs from public registries, by the digest the stack pins: a
    digest the registry does not have fails the pods' pulls, not the up."""
    if not config.cluster.enabled:
        return
    images = [("cluster autoscaler", CLUSTER_AUTOSCALER_IMAGES[config.cluster.kubernetes_version])]
    if any(group.gpu for group in config.cluster.node_groups):
        images.append(("NVIDIA device plugin", NVIDIA_DEVICE_PLUGIN_IMAGE))
    for what, image in images:
        yield _image_check(what, image)


def _image_check(what: str, image: str) -> Check:
    name, _, digest = image.partition("@")
    if not digest:
        return Check(
            "image",
            what,
            "pinned by digest",
            f"{image}, a tag",
            False,
            f"pin it by digest (`crane digest {image}`) in infra/config/eks_versions.py",
        )
    host, _, path = name.partition("/")
    repository = path.rsplit(":", 1)[0]
    try:
        status = _manifest_status(host, repository, digest)
    except OSError as error:
        return not_read("image", what, digest, f"{host} could not be reached: {error}")
    return Check(
        "image",
        what,
        digest,
        f"{name}@{digest}" if status == 200 else f"{host} answers {status} for it",
        status == 200,
        f"pin a digest {host} has (`crane digest {name}`) in infra/config/eks_versions.py",
    )


def _manifest_status(host: str, repository: str, digest: str) -> int:
    """The registry's status for the manifest (HEAD, as `crane digest` asks), with the
    anonymous bearer token a public registry hands out on its 401 challenge."""
    import urllib.error
    import urllib.request

    url = f"{registry_base(host)}/v2/{repository}/manifests/{digest}"

    def head(token: str = "") -> int:
        request = urllib.request.Request(  # noqa: S310 (https, or the tests' loopback)
            url, method="HEAD", headers={"Accept": MANIFEST_TYPES}
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=REGISTRY_TIMEOUT_SECONDS) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 401 and not token:
                found = _anonymous_token(error.headers)
                return 401 if found is None else head(found)
            return int(error.code)

    return head()


def _anonymous_token(headers: Any) -> str | None:
    """A token from the realm a `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
    challenge names, asked for without credentials."""
    import json
    import re
    import urllib.parse
    import urllib.request

    challenge = str(headers.get("WWW-Authenticate", ""))
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if not challenge.startswith("Bearer") or "realm" not in fields:
        return None
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k != "realm"})
    with urllib.request.urlopen(  # noqa: S310 (the realm the registry named)
        f"{fields['realm']}?{query}", timeout=REGISTRY_TIMEOUT_SECONDS
    ) as answer:
        body = json.loads(answer.read())
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None


def _cost_tag(aws: StackAws, config: StackConfig) -> Check:
    def read() -> Check:
        # Cost Explorer answers in one region per partition (us-east-1 for aws).
        tags = aws.client("ce").list_cost_allocation_tags(TagKeys=[COST_TAG])["CostAllocationTags"]
        status = tags[0]["Status"] if tags else "not listed (no resource carries it yet)"
        return Check(
            "cost allocation tag",
            COST_TAG,
            "Active",
            status,
            status == "Active",
            f"the budget sees no cost until it is: {ACTIVATE_COST_TAG}",
        )

    if not config.monitoring.monthly_budget_usd:
        return Check("cost allocation tag", COST_TAG, "Active", "no budget declared", True)
    return _read("cost allocation tag", COST_TAG, "Active", read)


def _delivery(aws: StackAws, config: StackConfig, whoami: Callable[[], str]) -> Iterator[Check]:
    if config.ci.github_repository:

        def provider() -> Check:
            arns = [
                p["Arn"]
                for p in aws.client("iam").list_open_id_connect_providers()[
                    "OpenIDConnectProviderList"
                ]
            ]
            present = any(arn.endswith(f"/{GITHUB_OIDC_HOST}") for arn in arns)
            return Check(
                "delivery",
                "GitHub OIDC provider",
                "present, or made by up",
                "present: up adopts it" if present else "absent: up creates it",
                True,
            )

        def connection() -> Check:
            status = aws.client("codeconnections").get_connection(
                ConnectionArn=config.ci.github_connection_arn
            )["Connection"]["ConnectionStatus"]
            return Check(
                "delivery",
                "GitHub connection",
                "AVAILABLE",
                status,
                status == "AVAILABLE",
                "finish the connection's handshake with GitHub in the console (Developer "
                "Tools → Settings → Connections → Update pending connection)",
            )

        yield _read("delivery", "GitHub OIDC provider", "present, or made by up", provider)
    if config.ci.runner:
        yield _read("delivery", "GitHub connection", "AVAILABLE", connection)
    try:
        user = whoami()
        yield Check("delivery", "Pulumi login", "logged in", f"as {user}", True)
    except (OSError, subprocess.CalledProcessError) as error:
        yield Check(
            "delivery",
            "Pulumi login",
            "logged in",
            str(error),
            False,
            "install the Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/) and "
            "run `pulumi login` to the stack's backend",
        )


def _pulumi_whoami() -> str:
    """The Pulumi CLI's logged-in user; OSError without the CLI, CalledProcessError without
    a login."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise FileNotFoundError("there is no `pulumi` on PATH")
    return subprocess.run(  # noqa: S603 (a fixed command line: the CLI found on PATH)
        [pulumi, "whoami", "--non-interactive"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
