"""`python -m serving [serve]` / `mlstack-serve`: start the inference server.

SageMaker starts a hosting container as `docker run IMAGE serve`; everything else is configured
through the environment (see `serving.settings`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# One thread per worker process: workers are sized to the cores, and an OpenMP pool started in
# the parent (the warm-up prediction) would deadlock in the forked workers. Set before numpy or
# scikit-learn load their thread pools; an explicit setting in the environment wins.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    from serving.settings import settings_help

    parser = argparse.ArgumentParser(
        prog="mlstack-serve",
        description=__doc__,
        epilog=settings_help(),
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

    configure_logging()
    try:
        return serve(from_environment())
    except (SettingsError, ArtifactError, StorageError, RegistryError) as error:
        print(f"mlstack-serve: cannot start: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"mlstack-serve: cannot listen: {error}", file=sys.stderr)
        return 2
