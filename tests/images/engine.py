"""A container engine for building and running the project's images on a machine without one.

Debian's `docker.io`, `containerd` and `runc` are downloaded with `apt-get download` and
unpacked with `dpkg -x` into a private cache directory (nothing is installed system-wide), and
`dockerd` runs there on its own socket with the vfs storage driver and no bridge or iptables,
so containers use the host's network. No base image can be pulled, so a stand-in for
`python:3.11-slim-bookworm` is made with `debootstrap` (bookworm's Python is 3.11) and passed to
the Dockerfiles as `BASE_IMAGE`. The engine's data root stays in the cache, so layers built by
one run are reused by the next.

Where something cannot be done (not root, no apt, a download refused), `EngineUnavailableError`
says what, and the tests that need the engine are skipped with that reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from infra.operations.processes import stop
from infra.project.paths import PROJECT_ROOT

PACKAGES = ("docker.io", "containerd", "runc", "debootstrap")
BASE_IMAGE = "mlstack-base:bookworm"
BASE_PACKAGES = "python3,python3-pip,python3-venv,ca-certificates"
# The machine's CA bundle: package downloads may go through a proxy that only it trusts.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class EngineUnavailableError(RuntimeError):
    """No engine can run here; the message says why."""


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "mlstack" / "engine"


def _run(
    command: Sequence[str],
    what: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
        )
    except OSError as error:
        raise EngineUnavailableError(f"{what}: {error}") from error
    if result.returncode != 0:
        raise EngineUnavailableError(f"{what} failed: {(result.stderr or result.stdout)[-800:]}")
    return result


def unpack(cache: Path) -> Path:
    """The unpacked Debian packages' root (downloaded on first use)."""
    root = cache / "root"
    if (root / "usr" / "sbin" / "dockerd").exists() and (
        root / "usr" / "sbin" / "debootstrap"
    ).exists():
        return root
    if os.geteuid() != 0:
        raise EngineUnavailableError("dockerd and debootstrap need root, and this user is not root")
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise EngineUnavailableError("apt-get and dpkg are needed to fetch Debian's docker.io")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", *PACKAGES], "apt-get download " + " ".join(PACKAGES), cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(root)], f"dpkg -x {deb.name}")
    return root


@dataclass
class Engine:
    """A running dockerd and the client that talks to it."""

    root: Path
    socket: Path

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.root / 'usr' / 'bin'}:{self.root / 'usr' / 'sbin'}:{os.environ['PATH']}"
        # The classic builder: BuildKit would need the buildx plugin, not in these packages.
        return {
            **os.environ,
            "PATH": path,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "0",
        }

    def docker(
        self,
        *args: str,
        what: str | None = None,
        stdin: IO[bytes] | None = None,
        timeout: float | None = 300,
    ) -> subprocess.CompletedProcess[str]:
        docker = str(self.root / "usr" / "bin" / "docker")
        return _run(
            [docker, *args], what or f"docker {args[0]}", env=self.env, stdin=stdin, timeout=timeout
        )

    def has_image(self, name: str) -> bool:
        docker = str(self.root / "usr" / "bin" / "docker")
        found = subprocess.run(
            [docker, "image", "inspect", name], capture_output=True, env=self.env, check=False
        )
        return found.returncode == 0

    def keep_only(self, repository: str, tag: str) -> None:
        """Remove `repository`'s other tags and the layers only they used: vfs stores each
        layer in full, so earlier builds would fill the disk run by run."""
        listed = self.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository)
        stale = [name for name in listed.stdout.split() if name != tag]
        if stale:
            self.docker("image", "rm", *stale)
        self.docker("image", "prune", "--force")

    def history(self, tag: str) -> list[str]:
        """The instruction that made each of the image's layers, newest first."""
        made = self.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
        return made.stdout.splitlines()

    def build(self, image: str, tag: str, base: str) -> None:
        """`docker build` of `<image>/Dockerfile` from the repository root, as CI builds it."""
        self.docker(
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-f",
            str(PROJECT_ROOT / image / "Dockerfile"),
            "-t",
            tag,
            str(PROJECT_ROOT),
            what=f"docker build of {image}/Dockerfile",
            timeout=1800,
        )


@contextmanager
def running_engine(cache: Path | None = None) -> Iterator[Engine]:
    """dockerd on a private socket for the block's duration; its mounts are undone after.

    The cache (packages, data root, socket) is shared by every test run of the machine's user,
    so the block holds an exclusive lock on it: a second run waits for the first's engine to
    stop instead of stopping it (`_stop_leftover`) under the first run's tests."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "engine.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _engine_in(cache) as engine:
            yield engine


@contextmanager
def _engine_in(cache: Path) -> Iterator[Engine]:
    root = unpack(cache)
    state = cache / "state"
    state.mkdir(parents=True, exist_ok=True)
    _stop_leftover(state)
    engine = Engine(root, state / "docker.sock")
    log = (state / "dockerd.log").open("ab")
    # vfs: no overlay filesystem needed; no bridge or iptables: containers use the host network.
    dockerd = [
        str(root / "usr" / "sbin" / "dockerd"),
        f"--host=unix://{engine.socket}",
        f"--data-root={state / 'data'}",
        f"--exec-root={state / 'exec'}",
        f"--pidfile={state / 'docker.pid'}",
        "--storage-driver=vfs",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
    ]
    process = subprocess.Popen(
        dockerd,
        env=engine.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = (state / "dockerd.log").read_text(errors="replace")[-800:]
                raise EngineUnavailableError(f"dockerd exited {process.returncode}: {tail}")
            try:
                engine.docker("version")
                break
            except EngineUnavailableError:
                if time.monotonic() > deadline:
                    raise EngineUnavailableError("dockerd did not answer within 60 s") from None
                time.sleep(0.5)
        yield engine
    finally:
        stop(process)
        log.close()
        _unmount_under(state)


def _stop_leftover(state: Path) -> None:
    """A dockerd of this cache that an interrupted run left behind holds the data root; stop it
    (it is ours: nothing else uses this directory)."""
    try:
        pid = int((state / "docker.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"dockerd" not in command or str(state).encode() not in command:
        return  # the pid is another process's now
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    _unmount_under(state)


def _unmount_under(directory: Path) -> None:
    """dockerd leaves bind and overlay mounts under its roots when it stops."""
    prefix = str(directory.resolve())
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def base_image(engine: Engine) -> str:
    """The stand-in for python:3.11-slim-bookworm, made once with debootstrap."""
    if engine.has_image(BASE_IMAGE):
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="mlstack-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _run(
            [
                str(engine.root / "usr" / "sbin" / "debootstrap"),
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            "debootstrap of Debian bookworm",
            env={**engine.env, "DEBOOTSTRAP_DIR": str(engine.root / "usr/share/debootstrap")},
            timeout=900,
        )
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            engine.docker("import", "-", f"{BASE_IMAGE}-rootfs", stdin=tar.stdout, what="import")
        context = Path(scratch) / "context"
        context.mkdir()
        shutil.copy(HOST_CA_BUNDLE, context / "ca-certificates.crt")
        (context / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}-rootfs\n"
            "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\\n"
            "    PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
            # bookworm marks its Python as externally managed; the slim image's is not.
            "RUN rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED && ln -sf python3 /usr/bin/python\n"
        )
        engine.docker(
            "build", "--network", "host", "-t", BASE_IMAGE, str(context), what="base image"
        )
    return BASE_IMAGE
