"""Runs a job's container command on this machine the way the image would run it, without
Docker: the image's Python environment is the matching parity virtual env (`.parity/<name>`,
built by `make setup-parity` with the image's library versions), and the job's own folder is
mounted at /opt/ml in a private mount namespace, so entrypoints, arguments and the scripts'
default paths are the definition's own, unchanged.

Linux only: the mount namespace needs `unshare` (util-linux), as root or with user namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, TextIO

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARITY_ROOT = PROJECT_ROOT / ".parity"
OPT_ML = "/opt/ml"

# The ECR repository of each image the definition names -> its parity env. An image not
# listed here has no local twin, and a step that uses it fails with that message.
PARITY_ENV_BY_REPOSITORY = {
    "huggingface-pytorch-training": "training",
    "huggingface-pytorch-inference": "inference",
}


class ContainerError(Exception):
    """The job's image cannot be run here (no parity env, no mount namespace...)."""


def repository_of(image_uri: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` -> `<repository>`."""
    path = image_uri.split("/", 1)[-1]
    return path.split("@", 1)[0].rsplit(":", 1)[0]


@dataclass(frozen=True)
class ParityImage:
    """A local stand-in for one container image."""

    name: str
    env_dir: Path

    @property
    def bin_dir(self) -> Path:
        return self.env_dir / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"


def parity_image(image_uri: str, parity_root: Path = PARITY_ROOT) -> ParityImage:
    repository = repository_of(image_uri)
    name = PARITY_ENV_BY_REPOSITORY.get(repository)
    if name is None:
        raise ContainerError(
            f"image {image_uri} has no local parity environment (known repositories: "
            f"{sorted(PARITY_ENV_BY_REPOSITORY)})"
        )
    image = ParityImage(name, parity_root / name)
    if not image.python.exists():
        raise ContainerError(f"the parity environment for {repository} is missing at {image.env_dir}: run `make setup-parity`")
    return image


def _namespace_prefix() -> list[str]:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        raise ContainerError("running a job needs Linux mount namespaces (`unshare` from util-linux)")
    # As root a mount namespace is enough; otherwise map the user to root in a user namespace.
    return ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--mount", "--map-root-user"]


# Mounts the job's folder at /opt/ml and a hosts file naming the job's hosts, then runs the
# command. Private propagation (unshare's default) keeps both mounts inside the namespace.
_MOUNT_AND_RUN = 'mount --bind "$1" /opt/ml && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    seconds: float
    log_path: Path


def run_container(
    image: ParityImage,
    command: Sequence[str],
    *,
    opt_ml: Path,
    hosts: Sequence[str],
    environment: Mapping[str, str],
    log_path: Path,
    echo: TextIO | None = None,
) -> ContainerRun:
    """Run `command` with `opt_ml` mounted at /opt/ml and the image's env first on PATH.

    The environment is built from scratch, as a container's is: nothing of this process's
    own variables (its virtual env, credentials) leaks into the job.
    """
    if not os.path.isdir(OPT_ML):
        try:
            os.makedirs(OPT_ML, exist_ok=True)
        except PermissionError:
            raise ContainerError(f"{OPT_ML} does not exist and cannot be created: create it once (empty)") from None
    hosts_file = opt_ml.parent / f"{opt_ml.name}.hosts"
    hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {host}\n" for host in hosts))
    job_environment = {
        "PATH": f"{image.bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(opt_ml.parent),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **environment,
    }
    full_command = [*_namespace_prefix(), "sh", "-c", _MOUNT_AND_RUN, "mount-and-run", str(opt_ml), str(hosts_file), *command]
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            full_command, env=job_environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace",
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if echo is not None:
                echo.write(line)
                echo.flush()
        exit_code = process.wait()
    return ContainerRun(exit_code, time.monotonic() - started, log_path)


def log_tail(log_path: Path, lines: int = 15) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])
