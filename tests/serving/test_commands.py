"""What every runtime command shares: one exit-status table (`mlstack_common.exits`) and one log
format (`mlstack_common.logs`), so the same failure reads the same from `mlstack-train`,
`python -m serving.batch`, `mlstack-serve` and the drift job."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack_common import logs
from mlstack_common.exits import MEANINGS, ExitStatus, exit_status_help
from serving import batch, drift
from serving import cli as serving_cli
from serving.ports import free_port
from tests.logs import log_records
from tests.serving.conftest import serve_until_exit
from training import cli as training_cli

TRAIN = Path(sys.executable).parent / "mlstack-train"
"""The installed console script, as a shell or a training pod starts it."""


def unreachable_storage() -> dict[str, str]:
    """This environment with S3 at a loopback port nothing listens on, tried once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    return {
        **env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    }


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_storage_that_cannot_be_reached_exits_unreachable_from_training_and_batch_scoring(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    env = unreachable_storage()
    trained = run(
        [str(TRAIN), "--data", "s3://data/churn/data.csv", "--output-dir", str(tmp_path / "t")],
        env,
    )
    scored = run(
        [sys.executable, "-m", "serving.batch", "--input", "s3://data/scoring/",
         "--output", str(tmp_path / "s"), "--model", str(trained_models["linear"])],
        env,
    )  # fmt: skip
    for result, command in ((trained, training_cli.COMMAND), (scored, batch.COMMAND)):
        assert result.returncode == ExitStatus.UNREACHABLE, result.stderr
        assert "Traceback" not in result.stderr
        failure = log_records(result.stderr, command)[-1]
        assert (failure["level"], failure["exit_status"]) == ("ERROR", ExitStatus.UNREACHABLE)
        assert "s3://data/" in failure["message"]
        assert result.stdout == ""


def test_every_commands_stderr_is_json_lines_with_time_level_message_and_command(
    trained_models: dict[str, Path],
    demo_dataset: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, _ = demo_dataset
    assert training_cli.main(["--data", str(data), "--output-dir", str(tmp_path / "t")]) == 0
    trained = log_records(capsys.readouterr().err, training_cli.COMMAND)
    assert [r["message"] for r in trained][:2] == [
        f"reading {data} and {data.with_name('dataset.yaml')}",
        f"validating {data.stat().st_size:,} bytes against the spec",
    ]
    assert all(isinstance(r["elapsed_s"], float) for r in trained)

    scoring = tmp_path / "scoring.csv"
    scoring.write_text(data.read_text())
    args = ["--input", str(scoring), "--output", str(tmp_path / "s")]
    assert batch.main([*args, "--model", str(trained_models["linear"])]) == ExitStatus.OK
    assert log_records(capsys.readouterr().err, batch.COMMAND)[-1]["message"] == "done"
    assert batch.main([*args, "--model", str(tmp_path)]) == ExitStatus.REFUSED
    [refused] = log_records(capsys.readouterr().err, batch.COMMAND)
    not_a_model = f"cannot start: no model at {tmp_path}: expected metadata.json or model.tar.gz"
    assert refused["level"] == "ERROR"
    assert refused["message"].startswith(not_a_model)

    # A start failure of the server, in its own process as SageMaker or a pod starts it.
    served = serve_until_exit(str(tmp_path), tmp_path / "w")
    assert served.returncode == ExitStatus.REFUSED, served.stderr
    [failed] = log_records(served.stderr, serving_cli.COMMAND)
    assert failed["message"].startswith(not_a_model)
    assert "Traceback" not in served.stderr


def test_a_message_stays_one_json_line_whatever_it_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure_logging("mlstack-test")
    text = 'a "quoted" value,\nover two lines, and café'
    logging.getLogger("mlstack.test").warning(text, extra={"ratio": float("nan")})
    [record] = log_records(capsys.readouterr().err, "mlstack-test")
    assert (record["level"], record["message"], record["ratio"]) == ("WARNING", text, None)
    # Where orjson is not installed (the training image), the standard library writes the same.
    fields = {"time": "t", "message": text, "command": "c", "ratio": float("inf"), "n": [1]}
    assert json.loads(logs._standard_dumps(fields)) == json.loads(logs._dumps(fields))
    assert logs._standard_dumps({"message": text}) == logs._dumps({"message": text})


@pytest.mark.parametrize(
    ("prog", "epilog"),
    [
        (training_cli.COMMAND, training_cli.EXIT_HELP),
        (batch.COMMAND, batch.EXIT_HELP),
        (serving_cli.COMMAND, serving_cli.EXIT_HELP),
        (drift.COMMAND, drift.EXIT_HELP),
    ],
)
def test_each_commands_help_ends_with_its_exit_statuses_from_the_one_table(
    prog: str, epilog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = {
        training_cli.COMMAND: training_cli.main,
        batch.COMMAND: batch.main,
        serving_cli.COMMAND: serving_cli.main,
        drift.COMMAND: drift.main,
    }[prog]
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == ExitStatus.OK
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.endswith(" ".join(epilog.split()))
    assert epilog.startswith("Exit status: 0 ")


def test_the_help_text_lists_the_statuses_given_in_order_with_the_tables_words() -> None:
    text = exit_status_help(ExitStatus.UNREACHABLE, ExitStatus.OK, ExitStatus.USAGE, width=1000)
    assert text == (
        f"Exit status: 0 done; 2 usage: {MEANINGS[ExitStatus.USAGE]}; "
        f"4 unreachable: {MEANINGS[ExitStatus.UNREACHABLE]}."
    )
    detailed = exit_status_help(
        ExitStatus.OK, ExitStatus.GATE, details={ExitStatus.GATE: "kept out"}, width=1000
    )
    assert detailed == "Exit status: 0 done; 3 gate: kept out."
    assert all(len(line) <= 79 for line in exit_status_help(*ExitStatus).splitlines())
