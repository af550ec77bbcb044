"""`mlstack demo`: train, register, approve and serve a model against a local AWS emulator.

Everything runs on 127.0.0.1 as separate processes, the way the pieces run in a stack:
`moto_server` stands in for S3 and SageMaker, `python -m training` trains the demo dataset and
registers version 1 into the model package group, the version is approved and resolved through
the registry as a deploy would, and `python -m serving` downloads it from S3 and answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from infra.operations.processes import stop
from mlstack_common.registry import APPROVED
from serving.ports import free_port

BUCKET = "mlstack-local-models"
GROUP = "demo-local"
SERVING_IMAGE = "mlstack-serving:local"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",  # the emulator's; it checks nothing
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 (loopback)
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:.0f} s")


@contextlib.contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield process
    finally:
        stop(process)


def _post(url: str, body: bytes, content_type: str) -> Any:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return response.read().decode()


def _train(python: str, data: Path, work: Path, env: dict[str, str], result: IO[str]) -> None:
    """The training command as a user runs it; its JSON result goes to a file, progress to the
    terminal."""
    subprocess.run(  # noqa: S603
        [
            python, "-m", "training",
            "--data", str(data / "breast_cancer.csv"),
            "--output-dir", str(work / "training"),
            "--models-uri", f"s3://{BUCKET}/models",
            "--model-package-group", GROUP,
            "--serving-image", SERVING_IMAGE,
        ],
        env=env,
        check=True,
        stdout=result,
    )  # fmt: skip


def run_demo(work: Path) -> int:
    import boto3

    emulator_port, serving_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    python = sys.executable
    with _process(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(emulator_port)],
        env,
        work / "emulator.log",
    ) as emulator:
        _wait_for(f"{endpoint}/moto-api/", emulator, "the AWS emulator")
        _say(f"AWS emulator on {endpoint}; creating the models bucket and model package group")
        session = boto3.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        sagemaker = session.client("sagemaker", endpoint_url=endpoint)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)

        _say("training the demo model (breast cancer dataset shipped with scikit-learn)")
        data = work / "data"
        subprocess.run(  # noqa: S603
            [python, "-m", "training.demo", str(data)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with (work / "training.json").open("w") as result:
            _train(python, data, work, env, result)
        [summary] = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)[
            "ModelPackageSummaryList"
        ]
        arn = summary["ModelPackageArn"]
        _say(f"approving {arn}")
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=APPROVED)
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        model_url = described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        _say(f"serving {arn} ({model_url}) on http://127.0.0.1:{serving_port}")
        serving_env = {
            **env,
            # The registry names the model data and the version, as a deployment's does.
            "MLSTACK_MODEL_PACKAGE": arn,
            "MLSTACK_PORT": str(serving_port),
            "MLSTACK_HOST": "127.0.0.1",
            "MLSTACK_WORK_DIR": str(work / "serving"),
        }
        with _process(
            [python, "-m", "serving", "serve"], serving_env, work / "serving.log"
        ) as server:
            base = f"http://127.0.0.1:{serving_port}"
            _wait_for(f"{base}/ping", server, "the server")
            rows = [
                line.split(",")[:-1]
                for line in (data / "breast_cancer.csv").read_text().splitlines()[1:4]
            ]
            body = json.dumps([[float(v) for v in row] for row in rows]).encode()
            _say("POST /invocations (JSON, three rows)")
            print(_post(f"{base}/invocations", body, "application/json"))
            _say("POST /invocations (CSV, as batch transform sends it)")
            print(
                _post(f"{base}/invocations", (",".join(rows[0]) + "\n").encode(), "text/csv"),
                end="",
            )
            with urllib.request.urlopen(f"{base}/metadata", timeout=5) as response:  # noqa: S310
                metadata = json.loads(response.read())
            _say(f"serving {metadata['model']} version {metadata['model_version']}, "
                 f"trained on data sha256 {metadata['lineage']['data_sha256'][:12]}…")  # fmt: skip
    return 0


def main(keep: Path | None = None) -> int:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        code = run_demo(keep)
        _say(f"done; logs and artifacts kept in {keep}")
        return code
    with tempfile.TemporaryDirectory(prefix="mlstack-demo-") as scratch:
        code = run_demo(Path(scratch))
    _say("done (mlstack demo --keep DIR keeps the logs and artifacts)")
    return code
