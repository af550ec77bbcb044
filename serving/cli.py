"""`python -m serving [serve]` / `mlstack-serve`: start the inference server.

SageMaker starts a hosting container as `docker run IMAGE serve`; everything else is configured
through the environment (see `serving.settings`).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from mlstack_common.exits import ExitStatus, exit_status_help

COMMAND = "mlstack-serve"
log = logging.getLogger("mlstack.serving")
# One thread per worker process: workers are sized to the cores, and an OpenMP pool started in
# the parent (the warm-up prediction) would deadlock in the forked workers. Set before numpy or
# scikit-learn load their thread pools; an explicit setting in the environment wins.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    ExitStatus.UNREACHABLE,
    details={
        ExitStatus.OK: "stopped on SIGTERM after draining",
        ExitStatus.REFUSED: "the model cannot be served (not a model, not the registered one, "
        "or its metadata disagrees with it), or workers kept failing or outlived the grace "
        "period",
        ExitStatus.USAGE: "a setting is refused, or the address or work directory cannot be used",
        ExitStatus.UNREACHABLE: "storage or the registry could not be reached, failed, or has "
        "no such version",
    },
)


def main(argv: Sequence[str] | None = None) -> int:
    from serving.settings import settings_help

    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__,
        epilog=f"{settings_help()}\n\n{EXIT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", choices=["serve"], help="as SageMaker passes it")
    parser.parse_args(argv)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")

    from mlstack_common.artifact import ArtifactError
    from mlstack_common.logs import configure_logging
    from mlstack_common.registry import RegistryError
    from mlstack_common.storage import StorageError
    from serving.server import serve
    from serving.settings import SettingsError, from_environment

    configure_logging(COMMAND)
    try:
        return serve(from_environment())
    except SettingsError as error:
        return _fail(f"cannot start: {error}", ExitStatus.USAGE)
    except ArtifactError as error:
        return _fail(f"cannot start: {error}", ExitStatus.REFUSED)
    except (StorageError, RegistryError) as error:
        return _fail(f"cannot start: {error}", ExitStatus.UNREACHABLE)
    except OSError as error:
        return _fail(f"cannot listen: {error}", ExitStatus.USAGE)


def _fail(message: str, status: ExitStatus) -> int:
    log.error(message, extra={"exit_status": int(status)})
    return status
