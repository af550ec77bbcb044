"""The model rollback runbook, walked through step by step on the emulator: each `mlstack`
command of a path runs as written (against moto and an API server standing in for the
cluster), each other command is one a person runs with another tool — the walk plays its effect
(a push that CI deploys) or notes it — and what serves at the end is what the path promised."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.manifests.serving import MODEL_VERSION_LABEL
from infra.project.paths import PROJECT_ROOT
from tests import kubernetes_api
from tests.aws import EndpointUpdates, support_endpoint_updates
from tests.infra.live_targets import EndpointFleet, deployment_objects
from tests.infra.operating import Registry

RUNBOOK = PROJECT_ROOT / "docs" / "runbooks" / "rollback-model.md"
OTHER_TOOLS = {"git", "gh", "aws", "kubectl", "pulumi"}
DEPLOYMENT = "/apis/apps/v1/namespaces/mlstack/deployments/serving-demo"
BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def path_steps(heading: str) -> list[str]:
    """The commands of one `## ` section of the runbook, in order."""
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)
    [section] = [s for s in sections if s.startswith(heading)]
    return [
        line.strip()
        for block in BLOCK.findall(section)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


@dataclass
class Walk:
    project: Path
    others: dict[str, Callable[[], None]] = field(default_factory=dict)
    """What a command of another tool does in the walk, by its first two words."""
    statuses: list[tuple[str, int]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def run(self, steps: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        assert steps, "the runbook path has no commands"
        for step in steps:
            words = shlex.split(step.split("&&")[0])
            if words[:3] == ["uv", "run", "mlstack"]:
                status = main([*words[3:], "--project-dir", str(self.project)])
                self.statuses.append((step, status))
                self.outputs.append(capsys.readouterr().out)
                continue
            assert words[0] in OTHER_TOOLS, f"{step}: not a command anyone has"
            self.others.get(" ".join(words[:2]), lambda: None)()


def pins(project: Path) -> dict[str, int]:
    return dict(load_config(load_stack_settings("prod", project).values).serving.model_versions)


@pytest.fixture
def prod(
    project: Path,
    registry: Registry,
    cluster: kubernetes_api.ApiServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Scene:
    """prod serving demo on both targets, versions 1-8 Approved in its registry."""
    updates = support_endpoint_updates(monkeypatch)
    for number in range(1, 9):
        registry.register("demo-prod", str(number) * 64)
    return Scene(project, registry, EndpointFleet(registry.client, "demo-prod"), cluster, updates)


@dataclass
class Scene:
    project: Path
    registry: Registry
    fleet: EndpointFleet
    cluster: kubernetes_api.ApiServer
    updates: EndpointUpdates

    def pin(self, version: int) -> None:
        path = self.project / "Pulumi.prod.yaml"
        path.write_text(
            path.read_text() + f"  mlstack:servingModelVersions:\n    - demo={version}  # CAB-7\n"
        )

    def cluster_runs(self, versions: list[int], *, rolled_out: bool = True) -> None:
        self.cluster.objects.update(
            deployment_objects("serving-demo", versions, rolled_out=rolled_out)
        )

    def deployment_version(self) -> str:
        deployment = self.cluster.objects[DEPLOYMENT]
        return str(deployment["spec"]["template"]["metadata"]["labels"][MODEL_VERSION_LABEL])


def test_emergency_path_puts_the_last_good_version_back_on_both_targets(
    prod: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    """v6 served; v7 is live on the endpoint and rolling out on the cluster, and failing."""
    prod.pin(7)
    prod.fleet.deployed(6, 7)
    prod.cluster_runs([6, 7], rolled_out=False)
    walk = Walk(prod.project)

    walk.run(path_steps("1. Emergency"), capsys)

    [(_, rollback), _verify] = walk.statuses
    assert rollback == 0
    assert prod.fleet.live_config() == prod.fleet.configs[6]
    assert prod.deployment_version() == "6"
    assert pins(prod.project) == {"demo": 6}
    assert [r.action for r in prod.registry.audit("prod")] == ["emergency-rollback"]
    assert "model version: declared 6" not in walk.outputs[1]
    assert "MISMATCH endpoint demo-prod: model version" not in walk.outputs[1]


def test_pin_what_serves_path_moves_nothing(
    prod: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    """v8's deploy failed its canary: the endpoint runs v6 again, the pin still says 8."""
    prod.pin(8)
    prod.fleet.deployed(6, 8, rolled_back={8})
    prod.cluster_runs([6])
    walk = Walk(prod.project)

    walk.run(path_steps("2. SageMaker already rolled back"), capsys)

    assert [status for _, status in walk.statuses] == [0, 0]
    assert pins(prod.project) == {"demo": 6}
    assert prod.updates.requests == []
    assert [r for r in prod.cluster.requests if r[0] != "GET"] == []


def test_through_a_deploy_path_ends_with_verify_passing_once_ci_deployed(
    prod: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    prod.pin(7)
    prod.fleet.deployed(6, 7)
    prod.cluster_runs([6, 7])
    walk = Walk(prod.project)

    def ci_deploys() -> None:
        """The push: CI runs `pulumi up` with the new pin (a new configuration of v6)."""
        assert pins(prod.project) == {"demo": 6}
        prod.fleet.configuration(6, deploy=2)  # a new Model and configuration of the pin
        prod.fleet.serve(6)
        prod.cluster_runs([6, 7, 6])

    walk.others["git commit"] = ci_deploys
    walk.run(path_steps("3. Not urgent"), capsys)

    assert [status for _, status in walk.statuses][:2] == [0, 0]
    assert prod.updates.requests[-1]["EndpointConfigName"] == prod.fleet.configs[6]
    assert prod.deployment_version() == "6"
    [record] = prod.registry.audit("prod")
    assert (record.action, record.reason) == ("rollback", "CHG-77: retire v7")
    assert "CHG-77: retire v7" in walk.outputs[-1]  # `mlstack audit prod --model demo`
