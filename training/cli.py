"""`python -m training` / `mlstack-train`: the training entry point.

Two ways in, one run:

- **SageMaker training contract.** With no `--data`, inputs come from
  `/opt/ml/input/data/train/` (the data file and `dataset.yaml` beside it), settings from
  `/opt/ml/input/config/hyperparameters.json`; the model goes to `/opt/ml/model/`, the report to
  `/opt/ml/output/data/`, and a failure to `/opt/ml/output/failure` with a non-zero exit.
  `SM_CHANNEL_TRAIN`, `SM_MODEL_DIR`, `SM_OUTPUT_DATA_DIR` and `SM_OUTPUT_DIR` override those
  paths, as the SageMaker toolkits set them.
- **Plain paths or s3:// URIs** with flags, on a laptop or in a Kubernetes Job; `--data` may
  name a directory or an s3:// prefix ending in `/` that holds one data file and `dataset.yaml`.

Progress and failures are JSON log lines on stderr (`mlstack_common.logs`); the JSON result is
stdout. Exit statuses are those of `mlstack_common.exits`, as `EXIT_HELP` lists them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.logs import configure_logging
from training.errors import InputError

COMMAND = "mlstack-train"
log = logging.getLogger("mlstack.training")
OPT_ML = Path(os.environ.get("MLSTACK_OPT_ML", "/opt/ml"))
SETTING_FLAGS = (
    "algorithm", "seed", "test_size", "regularization", "learning_rate", "max_iter",
    "max_leaf_nodes", "l2_regularization", "n_estimators", "min_improvement", "max_regression",
)  # fmt: skip
# Hyperparameters that are run settings rather than model settings (SageMaker passes all as one).
RUN_KEYS = ("model_package_group", "models_uri", "serving_image", "model_name")


ENVIRONMENT_HELP = """environment variables:
  MLSTACK_GIT_COMMIT      source revision recorded as lineage: the image's source tag (src-<hash of
                          its build inputs) in the stack's runs (default: git rev-parse HEAD, else
                          unknown)
  MLSTACK_IMAGE_DIGEST    image digest recorded as lineage (default: empty)
  MLSTACK_SERVING_IMAGE   --serving-image when the flag is not given
  MLSTACK_OPT_ML          root of the SageMaker layout (default /opt/ml)
  SM_CHANNEL_TRAIN, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_OUTPUT_DIR
                          SageMaker's overrides of the input, model and output paths
  AWS_ENDPOINT_URL        send S3 and SageMaker calls to an emulator
  MLFLOW_TRACKING_URI     record the run in MLflow there (an http(s) URL, or a SageMaker
                          MLflow tracking server's ARN); its id goes into the version's
                          metadata. Unset: no tracking. A server that cannot be used
                          stops the run before training (exit 4)
  MLFLOW_EXPERIMENT_NAME  the run's experiment (default: the model package group, else
                          --model-name)
  MLSTACK_ENVIRONMENT     the stack's environment, recorded as a tag of the run

Progress and failures go to stderr as JSON lines, the JSON result to stdout."""
EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    ExitStatus.GATE,
    ExitStatus.UNREACHABLE,
    details={
        ExitStatus.REFUSED: "the data or the spec was refused (every problem listed, nothing "
        "published), a file named does not exist, or the approved version's model cannot be "
        "read to compare with",
        ExitStatus.USAGE: "bad arguments or settings (flags or hyperparameters.json)",
        ExitStatus.GATE: "the quality gate refused the version (nothing registered, or "
        "registered as Rejected with --keep-rejected)",
        ExitStatus.UNREACHABLE: "storage, the registry or the MLflow tracking server could not "
        "be reached or failed",
    },
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"{ENVIRONMENT_HELP}\n\n{EXIT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", choices=["train"], help="as SageMaker passes it")
    parser.add_argument(
        "--data",
        help="dataset file (CSV or Parquet), a path or s3:// URI; or a directory or s3:// prefix "
        "ending in / that holds exactly one, with dataset.yaml (as a SageMaker channel)",
    )
    parser.add_argument("--spec", help="dataset spec (YAML); default: dataset.yaml beside the data")
    parser.add_argument("--output-dir", type=Path, help="writes model/ and report/ under it")
    parser.add_argument("--models-uri", help="s3:// prefix the artifacts are published under")
    parser.add_argument("--model-package-group", help="register the version into this group")
    parser.add_argument("--serving-image", help="image URI the registered version is served by")
    parser.add_argument("--model-name", help="name recorded when not registering")
    from training.settings import ALGORITHMS, describe_setting

    for flag in SETTING_FLAGS:
        parser.add_argument(
            f"--{flag.replace('_', '-')}",
            dest=flag,
            metavar="{" + ",".join(ALGORITHMS) + "}" if flag == "algorithm" else "VALUE",
            help=describe_setting(flag),
        )
    for flag in ("keep_rejected", "auto_approve", "accept_schema_change"):
        parser.add_argument(
            f"--{flag.replace('_', '-')}", action="store_true", help=describe_setting(flag)
        )
    return parser


UNKNOWN_COMMIT = "unknown"


def _git_commit() -> str:
    """The commit of the repository training is started from (`MLSTACK_GIT_COMMIT` wins, as an
    image build sets it); "unknown" outside a repository, without git's complaint on stderr."""
    if commit := os.environ.get("MLSTACK_GIT_COMMIT"):
        return commit
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"],  # noqa: S607 (git from PATH, as a developer runs it)
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_COMMIT
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else UNKNOWN_COMMIT


def _sagemaker_output() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DIR", OPT_ML / "output"))


def _sagemaker_inputs() -> tuple[str, str, Path, Path, dict[str, Any]]:
    """Data, spec, model dir, report dir and settings from the training contract."""
    channel = Path(os.environ.get("SM_CHANNEL_TRAIN", OPT_ML / "input" / "data" / "train"))
    config = OPT_ML / "input" / "config" / "hyperparameters.json"
    settings = _hyperparameters(config) if config.is_file() else {}
    return (
        _channel_data(f"{channel}/", "channel 'train'"),
        str(channel / "dataset.yaml"),
        Path(os.environ.get("SM_MODEL_DIR", OPT_ML / "model")),
        Path(os.environ.get("SM_OUTPUT_DATA_DIR", _sagemaker_output() / "data")),
        settings,
    )


def _channel_data(location: str, what: str) -> str:
    """The one data file of a directory or s3:// prefix (`location` ends in /)."""
    from mlstack_common.storage import list_data_files

    found = list_data_files(location)
    if len(found) != 1:
        raise InputError(
            f"{what} at {location} holds {len(found)} data files; allowed: exactly one .csv or "
            ".parquet file, with dataset.yaml beside it"
        )
    return found[0]


def _hyperparameters(path: Path) -> dict[str, Any]:
    from training.settings import SettingsError

    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(
            f"{path}: not JSON ({error}); allowed: an object of settings"
        ) from error
    if not isinstance(document, dict):
        raise SettingsError(
            f"{path}: a JSON {type(document).__name__}; allowed: an object of name: value "
            'settings, such as {"algorithm": "forest"}'
        )
    return document


def _request(args: argparse.Namespace) -> Any:
    from mlstack_common.storage import is_s3
    from training.run import TrainingRequest
    from training.settings import parse_settings
    from training.tracking import TrackingTarget

    if args.data:
        data = args.data
        if data.endswith("/") or (not is_s3(data) and Path(data).is_dir()):
            data = _channel_data(data.rstrip("/") + "/", "--data")
        spec = args.spec or (
            data.rsplit("/", 1)[0] + "/dataset.yaml"
            if is_s3(data)
            else str(Path(data).with_name("dataset.yaml"))
        )
        model_dir, report_dir = args.output_dir / "model", args.output_dir / "report"
        settings: dict[str, Any] = {k: getattr(args, k) for k in SETTING_FLAGS if getattr(args, k)}
        run = {k: getattr(args, k) for k in RUN_KEYS}
    else:
        data, spec, model_dir, report_dir, settings = _sagemaker_inputs()
        run = {k: settings.pop(k, None) for k in RUN_KEYS}
    if args.keep_rejected:
        settings["keep_rejected"] = "true"
    if args.auto_approve:
        settings["auto_approve"] = "true"
    if args.accept_schema_change:
        settings["accept_schema_change"] = "true"
    hyperparameters, gate = parse_settings(settings)
    return TrainingRequest(
        data_uri=data,
        spec_uri=spec,
        model_dir=model_dir,
        report_dir=report_dir,
        hyperparameters=hyperparameters,
        gate=gate,
        model_name=run["model_name"] or "model",
        models_uri=run["models_uri"],
        model_package_group=run["model_package_group"],
        serving_image=run["serving_image"] or os.environ.get("MLSTACK_SERVING_IMAGE"),
        git_commit=_git_commit(),
        image_digest=os.environ.get("MLSTACK_IMAGE_DIGEST", ""),
        environment=os.environ.get("MLSTACK_ENVIRONMENT", ""),
        tracking=TrackingTarget.from_environment(os.environ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    from mlstack_common.artifact import ArtifactError, strict_json
    from mlstack_common.registry import RegistryError
    from mlstack_common.storage import StorageError
    from training.dataset import DatasetError
    from training.run import GateRefusedError, describe, run_training
    from training.settings import SettingsError
    from training.spec import SpecError
    from training.tracking import TrackingError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data and not args.output_dir:
        parser.error("--output-dir: required with --data (model/ and report/ go under it)")
    # MLflow's own handler would write plain text lines; its records go to the JSON formatter.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    configure_logging(COMMAND)
    # Under the SageMaker contract a failure is also written where SageMaker reports it from.
    failure_file = None if args.data else _sagemaker_output() / "failure"
    try:
        request = _request(args)
        outcome = run_training(request, _progress_logger())
    except GateRefusedError as refused:
        print(strict_json(describe(refused.outcome)))
        kept = "registered as Rejected" if refused.outcome.registered else "not registered"
        return _fail(failure_file, f"{kept}: {refused}", ExitStatus.GATE)
    except (StorageError, RegistryError, TrackingError) as error:
        return _fail(failure_file, f"failed: {error}", ExitStatus.UNREACHABLE)
    except SettingsError as error:
        return _fail(failure_file, f"refused: {error}", ExitStatus.USAGE)
    except (DatasetError, SpecError, InputError, ArtifactError) as error:
        return _fail(failure_file, f"refused: {error}", ExitStatus.REFUSED)
    except Exception as error:  # noqa: BLE001 (the registry's errors: report them, exit non-zero)
        return _fail(
            failure_file, f"failed: {type(error).__name__}: {error}", ExitStatus.UNREACHABLE
        )
    print(strict_json(describe(outcome)))
    return ExitStatus.OK


def _progress_logger() -> Callable[[str], None]:
    """Steps as log lines on stderr with the seconds since the start (`elapsed_s`); stdout
    keeps the JSON result alone."""
    started = time.monotonic()

    def say(step: str) -> None:
        level = logging.WARNING if step.startswith("warning: ") else logging.INFO
        log.log(level, step, extra={"elapsed_s": round(time.monotonic() - started, 1)})

    return say


def _fail(failure_file: Path | None, message: str, status: ExitStatus) -> int:
    log.error(message, extra={"exit_status": int(status)})
    if failure_file is not None:
        failure_file.parent.mkdir(parents=True, exist_ok=True)
        failure_file.write_text(message + "\n")
    return status
