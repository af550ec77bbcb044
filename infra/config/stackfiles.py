"""A stack's configuration as the Pulumi CLI hands it to the program, read from the files.

The CLI merges the defaults declared in `Pulumi.yaml` with the values in `Pulumi.<stack>.yaml`
and passes every value to the program as a string (JSON for lists and objects). The offline
runner and `mlstack plan` use this module so the program sees exactly that without the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config.schema import ConfigKey, load_schema
from infra.project.paths import PROJECT_FILE, PROJECT_ROOT, known_stacks, stack_file

# `secure:` values are encrypted with the stack's secrets provider, which needs the CLI.
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 (a mask, not a credential)
REGION_KEY = "aws:region"
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
"""Where the AWS provider finds a region the stack file does not set, before the AWS profile
(pulumi/pulumi-aws#2088, its check that a region is set somewhere)."""


class StackFileError(ValueError):
    """A stack file is missing or not shaped like a Pulumi stack file."""


@dataclass(frozen=True)
class StackSettings:
    """One stack's effective configuration: every value by its full key, and which are secret."""

    stack: str
    values: Mapping[str, Any]
    secret_keys: frozenset[str]

    def as_runtime_config(self) -> dict[str, str]:
        """The values as the engine passes them to a program: strings, JSON for structures."""
        return {key: _as_config_string(value) for key, value in self.values.items()}

    def region(self) -> str:
        """The region the stack's AWS provider works in, found where the provider looks: the
        stack's `aws:region`, else AWS_REGION or AWS_DEFAULT_REGION, else the AWS profile's.
        Refused, naming the stack file, when none sets one: every AWS call would fail."""
        value = self.values.get(REGION_KEY)
        if isinstance(value, str) and value:
            return value
        for variable in REGION_VARIABLES:
            if os.environ.get(variable):
                return os.environ[variable]
        profile = _profile_region()
        if profile:
            return profile
        raise StackFileError(
            f"Pulumi.{self.stack}.yaml: no {REGION_KEY}, and neither "
            f"{' nor '.join(REGION_VARIABLES)} nor the AWS profile names a region; allowed: "
            "set it in the stack "
            f"(`pulumi config set {REGION_KEY} <region> --stack {self.stack}`)"
        )


def _profile_region() -> str:
    """The region of the AWS profile in use (AWS_PROFILE, ~/.aws/config), as boto3 reads it;
    empty when there is none or the profile cannot be read."""
    import botocore.exceptions
    import botocore.session

    try:
        return str(botocore.session.Session().get_config_variable("region") or "")
    except botocore.exceptions.BotoCoreError:
        return ""


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` block of one stack file."""
    if not path.is_file():
        stacks = ", ".join(known_stacks(path.parent)) or "none"
        raise StackFileError(f"no stack file {path.name}; stacks with a file: {stacks}")
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as error:
        raise StackFileError(f"{path.name}: cannot be read ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise StackFileError(f"{path.name}: not UTF-8 text (byte {error.start})") from error
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name}: not valid YAML ({_yaml_problem(error)})") from error
    if not isinstance(document, Mapping) or not isinstance(document.get("config", {}), Mapping):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config:' mapping inside")
    return dict(document.get("config") or {})


def _yaml_problem(error: yaml.YAMLError) -> str:
    """The parser's complaint on one line, with where it was found."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def merge_with_defaults(
    stack_values: Mapping[str, Any], schema: Mapping[str, ConfigKey]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Declared defaults overlaid by the stack's values, with `secure:` values masked."""
    values: dict[str, Any] = {
        key.full_name: key.default for key in schema.values() if key.has_default
    }
    secrets: set[str] = set()
    for key, value in stack_values.items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            values[key] = SECRET_PLACEHOLDER
            secrets.add(key)
        else:
            values[key] = value
    return values, frozenset(secrets)


def load_stack_settings(stack: str, root: Path = PROJECT_ROOT) -> StackSettings:
    """Everything the program of `stack` is configured with, as the CLI would pass it; `root` is
    the project directory holding `Pulumi.yaml` and the stack files."""
    values, secrets = merge_with_defaults(
        read_stack_file(stack_file(stack, root)), load_schema(root / PROJECT_FILE.name)
    )
    return StackSettings(stack=stack, values=values, secret_keys=secrets)
