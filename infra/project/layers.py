"""The two Pulumi projects one environment is made of, and how the second finds the first.

An environment's cluster API is private, and the network it is reachable from is created by the
same code, so what is created through AWS's APIs and what is applied through the cluster's API
are two projects, each deployed from where it can reach what it changes:

- **platform** (`Pulumi.yaml` at the root, project `mlstack`): keys, storage, network, cluster,
  registries, every IAM role, the CI roles and the runners inside the VPC. Deployed by an
  administrator or from GitHub-hosted runners with the platform deploy role.
- **workloads** (`infra/workloads/Pulumi.yaml`, project `mlstack-workloads`): the images, the
  Kubernetes objects, the SageMaker endpoints and their alarms, the model pins. Deployed from the
  environment's runner inside its VPC with the workloads deploy role.

Both read the same `Pulumi.<env>.yaml` (the workloads project's `stackConfigDir` is the root),
and the workloads stack reads the platform stack's outputs through a stack reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.project.paths import PROJECT_ROOT


@dataclass(frozen=True)
class Layer:
    name: str
    """What the docs, `mlstack plan --layer` and the snapshots call it."""
    project: str
    """The Pulumi project name: part of every URN and of the stack's name in the backend."""
    directory: Path
    """Where its `Pulumi.yaml` is: the directory `pulumi` runs in (`--cwd`)."""
    program: Path
    """The `__main__.py` Pulumi runs."""


PLATFORM = Layer(
    name="platform",
    project="mlstack",
    directory=PROJECT_ROOT,
    program=PROJECT_ROOT / "infra" / "platform" / "__main__.py",
)
WORKLOADS = Layer(
    name="workloads",
    project="mlstack-workloads",
    directory=PROJECT_ROOT / "infra" / "workloads",
    program=PROJECT_ROOT / "infra" / "workloads" / "__main__.py",
)
LAYERS = (PLATFORM, WORKLOADS)
"""In the order they are deployed: the workloads read what the platform made."""


def layer_named(name: str) -> Layer:
    for layer in LAYERS:
        if layer.name == name:
            return layer
    raise ValueError(f"layer {name!r}: allowed: {', '.join(layer.name for layer in LAYERS)}")


def platform_stack(organization: str, stack: str) -> str:
    """The fully qualified name of the platform stack a workloads stack reads: the same stack
    name (the environment), in the same organization (`organization` on self-managed
    backends)."""
    return f"{organization}/{PLATFORM.project}/{stack}"
