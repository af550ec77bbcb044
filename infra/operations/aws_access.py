"""AWS clients for one stack, reaching what its program reaches: the stack's region, and the
endpoints and static keys its stack file gives the AWS provider (`local` points them at the
emulator). Everything else comes from boto3's own chain (profile, SSO, role, AWS_ENDPOINT_URL).

Every client has bounded timeouts and retries: botocore's defaults are 60 s to connect, 60 s per
read and, in its legacy retry mode, up to five attempts, so a hung API held an operator's terminal
silent for minutes. Connect and read timeouts and the total number of attempts are botocore's
`Config(connect_timeout=, read_timeout=, retries={"total_max_attempts": , "mode": })`
(https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html); the
`standard` mode retries throttling, 5XX answers and connection errors with backoff
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html). An explicit
`Config`'s attempts win over AWS_MAX_ATTEMPTS and the config file (botocore/args.py,
`_compute_retry_max_attempts`), so the bound holds whatever the shell sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from infra.config.stackfiles import SECRET_PLACEHOLDER, StackSettings


@dataclass(frozen=True, kw_only=True)
class ClientLimits:
    """How long one AWS call may take before it fails."""

    connect_seconds: float
    """To open a connection: what an unreachable address costs per attempt."""
    read_seconds: float
    """To wait for each read of the answer: what a hung API costs per attempt."""
    attempts: int
    """In all, the first included."""

    def __post_init__(self) -> None:
        if self.connect_seconds <= 0 or self.read_seconds <= 0 or self.attempts < 1:
            raise ValueError(
                f"client limits {self}: allowed: timeouts above 0 seconds, at least 1 attempt"
            )

    def config(self) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_seconds,
            read_timeout=self.read_seconds,
            retries={"total_max_attempts": self.attempts, "mode": "standard"},
        )


OPERATION_LIMITS = ClientLimits(connect_seconds=5, read_seconds=30, attempts=3)
"""For commands that change things (promote, rollback, train, score): room for a slow answer
(an image layer's upload completing) and two retries of a transient failure."""
READ_LIMITS = ClientLimits(connect_seconds=3, read_seconds=10, attempts=2)
"""For `verify`, which only describes and lists, during an incident: a part that cannot be
reached costs seconds and is reported, and the rest is still read."""


@dataclass(frozen=True)
class StackAws:
    region: str
    endpoints: Mapping[str, str] = field(default_factory=dict)
    """Service name (as `aws:endpoints` names it) -> URL."""
    access_key: str | None = None
    secret_key: str | None = None
    limits: ClientLimits = OPERATION_LIMITS

    def client(self, service: str) -> Any:
        import boto3

        keys = (
            {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
            if self.access_key and self.secret_key
            else {}
        )
        # `stack_aws` found the region where the AWS provider looks, or refused the stack file.
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.endpoints.get(service.replace("-", "")),
            config=self.limits.config(),
            **keys,
        )

    def with_limits(self, limits: ClientLimits) -> StackAws:
        """The same account, region and endpoints, with calls bounded by `limits`."""
        return replace(self, limits=limits)


def stack_aws(settings: StackSettings) -> StackAws:
    values = settings.values
    endpoints: dict[str, str] = {}
    for entry in values.get("aws:endpoints") or []:
        if isinstance(entry, Mapping):
            endpoints |= {str(k): str(v) for k, v in entry.items() if isinstance(v, str)}
    access, secret = values.get("aws:accessKey"), values.get("aws:secretKey")
    usable = (
        isinstance(access, str)
        and isinstance(secret, str)
        and SECRET_PLACEHOLDER not in (access, secret)
    )
    return StackAws(
        region=settings.region(),
        endpoints=endpoints,
        access_key=str(access) if usable else None,
        secret_key=str(secret) if usable else None,
    )


def connection_failed(error: BaseException) -> bool:
    """`error`, or what caused it, is a failure to reach AWS at all (refused, timed out, cut
    off) rather than an answer: the classes botocore's standard retry mode counts as transient
    connection errors (`ConnectionError`, `HTTPClientError`, botocore/retries/standard.py).
    Another call to the same endpoint would cost the same timeout."""
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import HTTPClientError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, BotocoreConnectionError | HTTPClientError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
