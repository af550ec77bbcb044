"""Calling the Kubernetes API server over plain HTTPS with a bearer token: the server's image
carries no Kubernetes client for a handful of requests, and the operators' tools (`mlstack
verify`) read the cluster through the same few lines with an EKS token."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ClusterApiError(RuntimeError):
    """The API server could not be reached, or there is none to reach; the message says why."""


@dataclass(frozen=True)
class ClusterApi:
    """Where the API server is and the credentials to call it."""

    base_url: str
    token: str
    context: ssl.SSLContext | None
    namespace: str = "default"
    """The pod's own namespace."""
    timeout: float = 30.0
    """Seconds to connect, and to wait for each read of an answer: an API server out of reach
    costs this long, not forever."""

    @classmethod
    def in_cluster(
        cls, env: Mapping[str, str] | None = None, directory: Path = SERVICE_ACCOUNT
    ) -> ClusterApi:
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        token = directory / "token"
        if not host or not port or not token.exists():
            raise ClusterApiError(
                "not in a Kubernetes pod with a service account token (KUBERNETES_SERVICE_HOST "
                f"and {token}); it runs from inside the cluster"
            )
        return cls(
            base_url=f"https://{host}:{port}",
            token=token.read_text().strip(),
            context=ssl.create_default_context(cafile=str(directory / "ca.crt")),
            namespace=(directory / "namespace").read_text().strip(),
        )

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 (the API server's own https URL)
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            opened = urllib.request.urlopen(  # noqa: S310 (the API server's own https URL)
                request, timeout=self.timeout, context=self.context
            )
            with opened as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError as error:
            raise ClusterApiError(f"{method} {self.base_url}{path}: {error}") from error
