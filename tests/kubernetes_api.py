"""A stand-in for a Kubernetes API server on 127.0.0.1: it answers GETs with the objects it is
given (shaped as the API server returns them), creates what is POSTed to a collection (409 when
the name is taken), replaces what is PUT to an object's path (bumping its generation, 409 when
the resourceVersion sent is not the stored one; a Deployment's rollout then completes at once,
as the controller's would with its pods' images cached), refuses any token but its own with 401, and
records every request. The
client code under test is the one that talks to a real cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import http_server

TOKEN = "service-account-token"


@dataclass
class ApiServer:
    url: str = ""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Path -> object, e.g. `/apis/apps/v1/namespaces/mlstack/deployments/serving-demo`."""
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Objects POSTed, by name."""


@contextmanager
def api_server(objects: dict[str, dict[str, Any]]) -> Iterator[ApiServer]:
    state = ApiServer(objects=objects)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._answer(401, {"kind": "Status", "message": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, None))
            if not self._authorised():
                return
            if self.path in state.objects:
                self._answer(200, state.objects[self.path])
            else:
                self._answer(404, {"kind": "Status", "message": f"{self.path} not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(("POST", self.path, body))
            if not self._authorised():
                return
            name = body["metadata"]["name"]
            if name in state.created:
                self._answer(409, {"kind": "Status", "message": f'"{name}" already exists'})
                return
            state.created[name] = body
            self._answer(201, body)

        def do_PUT(self) -> None:
            sent = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(("PUT", self.path, json.loads(sent)))
            body = json.loads(sent)
            if not self._authorised():
                return
            stored = state.objects.get(self.path)
            if stored is None:
                self._answer(404, {"kind": "Status", "message": f"{self.path} not found"})
                return
            sent = body.get("metadata", {}).get("resourceVersion")
            if sent is not None and sent != stored["metadata"].get("resourceVersion"):
                self._answer(409, {"kind": "Status", "message": "the object has been modified"})
                return
            metadata = body.setdefault("metadata", {})
            metadata["generation"] = int(stored["metadata"].get("generation", 1)) + 1
            metadata["resourceVersion"] = str(int(stored["metadata"].get("resourceVersion", 1)) + 1)
            body["status"] = dict(stored.get("status", {}))
            if body.get("kind") == "Deployment":
                replicas = body["spec"].get("replicas", 1)
                body["status"] |= {
                    "observedGeneration": metadata["generation"],
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                }
            state.objects[self.path] = body
            self._answer(200, body)

        def log_message(self, *_: Any) -> None:
            pass

    with http_server(Handler) as state.url:
        yield state
