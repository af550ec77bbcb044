"""AWS clients for one stack, reaching what its program reaches: the stack's region, and the
endpoints and static keys its stack file gives the AWS provider (`local` points them at the
emulator). Everything else comes from boto3's own chain (profile, SSO, role, AWS_ENDPOINT_URL)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.config.stackfiles import SECRET_PLACEHOLDER, StackSettings


@dataclass(frozen=True)
class StackAws:
    region: str
    endpoints: Mapping[str, str] = field(default_factory=dict)
    """Service name (as `aws:endpoints` names it) -> URL."""
    access_key: str | None = None
    secret_key: str | None = None

    def client(self, service: str) -> Any:
        import boto3

        keys = (
            {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
            if self.access_key and self.secret_key
            else {}
        )
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.region or None,
            endpoint_url=self.endpoints.get(service.replace("-", "")),
            **keys,
        )


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
        region=str(values.get("aws:region") or ""),
        endpoints=endpoints,
        access_key=str(access) if usable else None,
        secret_key=str(secret) if usable else None,
    )
