"""Serving settings from the environment: defaults, SageMaker's names, and bad values."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from serving.settings import ServingSettings, SettingsError, from_environment


def test_defaults_follow_the_sagemaker_contract() -> None:
    settings = from_environment({})
    assert (settings.port, settings.model_uri) == (8080, "/opt/ml/model")
    assert from_environment({"SM_MODEL_DIR": "/m", "SAGEMAKER_BIND_TO_PORT": "9000"}).port == 9000
    assert from_environment({"SM_MODEL_DIR": "/m"}).model_uri == "/m"
    assert (
        from_environment({"MLSTACK_MODEL_URI": "s3://b/k", "SM_MODEL_DIR": "/m"}).model_uri
        == "s3://b/k"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MLSTACK_PORT": "http"},
            "MLSTACK_PORT = 'http': allowed: a whole number from 1 to 65535",
        ),
        ({"MLSTACK_WORKERS": "0"}, "MLSTACK_WORKERS = '0': allowed: a whole number from 1 to 64"),
        (
            {"MLSTACK_BATCH_WAIT_MS": "-1"},
            "MLSTACK_BATCH_WAIT_MS = '-1': allowed: a number from 0.0 to 1000.0",
        ),
        ({"MLSTACK_LOG_PAYLOADS": "yes"}, "MLSTACK_LOG_PAYLOADS = 'yes': allowed: true or false"),
        (
            {"MLSTACK_CAPTURE_PERCENT": "150"},
            "MLSTACK_CAPTURE_PERCENT = '150': allowed: a number from 0.0 to 100.0",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_allowed(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        from_environment(env)
    assert str(caught.value) == message


def test_help_lists_every_setting_with_its_variable_and_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for setting in fields(ServingSettings):
        assert setting.metadata["env"] in result.stdout, setting.name
    assert "MLSTACK_MODEL_VERSION    default 'unknown'" in result.stdout
    assert from_environment({"MLSTACK_MODEL_VERSION": "7"}).model_version == "7"
