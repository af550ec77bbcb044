"""The keys of who deploys the stack from CI."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.reader import Reader

# GitHub: an owner of 1-39 letters, digits and single inner hyphens; a name of letters, digits,
# '.', '_' and '-' (not '.' or '..'), at most 100.
_GITHUB_REPOSITORY = re.compile(
    r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$"
)
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(?:codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
    r"connection/[0-9a-f-]{36}$"
)


@dataclass(frozen=True, kw_only=True)
class CiConfig:
    """Who deploys the stack from CI."""

    github_repository: str
    """`owner/name` whose GitHub Actions workflows may assume the stack's CI roles; empty: the
    stack declares no CI roles (and no permissions boundary)."""
    github_connection_arn: str
    """The CodeConnections connection through which the environment's runner (in its VPC, with
    the cluster) receives the repository's jobs."""

    @property
    def runner(self) -> bool:
        return bool(self.github_repository and self.github_connection_arn)


def check_github_repository(value: str) -> str | None:
    if value == "" or _GITHUB_REPOSITORY.match(value):
        return None
    return (
        "a GitHub repository as <owner>/<name> (e.g. example-org/mlstack, no URL, no "
        "wildcards), or empty for no CI roles"
    )


def check_connection_arn(value: str) -> str | None:
    if value == "" or _CONNECTION_ARN.match(value):
        return None
    return (
        "the ARN of a CodeConnections connection to GitHub "
        "(arn:aws:codeconnections:<region>:<account>:connection/<id>), or empty"
    )


def read_ci(read: Reader) -> CiConfig:
    return CiConfig(
        github_repository=read.string("ciGithubRepository", check_github_repository),
        github_connection_arn=read.string("ciGithubConnectionArn", check_connection_arn),
    )
