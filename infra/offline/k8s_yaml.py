"""The Kubernetes objects a stack declares, as the YAML files a reviewer reads or `kubectl
diff` takes: one file per object, `<namespace>--<kind>--<name>.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun

_PREFIX = "kubernetes:"
_NOT_OBJECTS = ("kubernetes:pulumi", "kubernetes:helm.sh")
"""The provider itself, and Helm releases: a release is many objects, which its chart makes."""


def manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object as the API server takes it: apiVersion and kind from the resource type
    (`kubernetes:apps/v1:Deployment`; the core group has no prefix), the rest from its inputs."""
    group_version, kind = resource.resource_type.removeprefix(_PREFIX).split(":")
    group, version = group_version.split("/")
    api_version = version if group == "core" else f"{group}/{version}"
    return {"apiVersion": api_version, "kind": kind, **dict(resource.inputs)}


def kubernetes_objects(run: ProgramRun) -> list[dict[str, Any]]:
    return [
        manifest(resource)
        for resource in run.resources
        if resource.custom
        and resource.resource_type.startswith(_PREFIX)
        and not resource.resource_type.startswith(_NOT_OBJECTS)
    ]


def write_objects(run: ProgramRun, directory: Path) -> list[Path]:
    """One YAML file per object; files of objects the stack no longer declares are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    written = []
    for obj in kubernetes_objects(run):
        metadata = obj.get("metadata") or {}
        name = f"{metadata.get('namespace', 'cluster')}--{obj['kind']}--{metadata['name']}.yaml"
        path = directory / name.lower()
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        written.append(path)
    return written
