"""The job's image, built once per test session from the repository's Dockerfile, for the container tests.

tests/test_container.py (the image run alone) and tests/test_pod.py (the image as the init container of
the Deployment's pod) both need it: the build happens once, whichever asks first. The base comes from
tests/container/build-base.sh (debootstrap + Debian's Python, kept in local storage: no container
registry is reachable), the image from `buildah build` (shared/research/container-build.md).
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/db-init-job:test"
BUILD_TIMEOUT = 600
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def missing_tools() -> str | None:
    for tool in ("podman", "buildah"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install buildah podman runc debootstrap)"
    if os.geteuid() != 0:
        return "the container tests need root (rootful buildah/podman)"
    if not os.environ.get("DB_INIT_TEST_BASE") and shutil.which("debootstrap") is None:
        return "debootstrap is not installed (the test base image is built from it)"
    return None


def skip_or_fail(reason: str, what: str) -> None:
    """Skip with one line naming what is missing; under CI=true fail instead, so CI always proves `what`."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must {what}, but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Image:
    name: str
    id: str  # what this session built: another session may retag `name` meanwhile
    base: str
    build_seconds: float
    size_mb: float


@functools.cache
def build_image() -> Image:
    """Build the base (if local storage lacks it) and the image; cached, so once per session."""
    base = subprocess.run([str(ROOT / "tests" / "container" / "build-base.sh")], capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT, check=False)
    assert base.returncode == 0, base.stderr[-3000:]
    base_name = base.stdout.strip().splitlines()[-1]
    iidfile = Path(tempfile.mkdtemp(prefix="db-init-iid-")) / "iid"
    cmd = ["buildah", "build", "--isolation", "chroot", "--network", "host", "--layers", "--force-rm",
           "--quiet", "--build-arg", f"BASE={base_name}", "--tag", IMAGE, "--iidfile", str(iidfile)]
    if CA_BUNDLE.exists():  # pip in RUN trusts the host's CAs (TLS-inspecting proxy): mounted, not a layer
        cmd += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    started = time.monotonic()
    build = subprocess.run([*cmd, str(ROOT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                           check=False)
    seconds = time.monotonic() - started
    assert build.returncode == 0, build.stderr[-3000:]
    image_id = iidfile.read_text().strip().removeprefix("sha256:")
    shutil.rmtree(iidfile.parent)
    inspect = json.loads(subprocess.run(["podman", "image", "inspect", image_id], capture_output=True,
                                        text=True, check=True).stdout)[0]
    return Image(IMAGE, image_id, base_name, seconds, inspect["Size"] / 1e6)


def image_or_skip(what: str = "build and run the image") -> Image:
    reason = missing_tools()
    if reason:
        skip_or_fail(reason, what)
    return build_image()


def rlimits() -> tuple[int, int]:
    """The nofile and nproc limits podman may set on this host (its defaults exceed what it may raise to)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    return nofile, nproc


def runtime_flags() -> list[str]:
    """What this host's podman needs (shared/research/container-build.md): runc, and rlimits it may set."""
    flags = ["--runtime", "runc"] if shutil.which("runc") else []
    nofile, nproc = rlimits()
    return [*flags, "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
