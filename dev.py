#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+: `python3 dev.py demo|test|bench`.

Each command creates ./.venv on first use and installs the project with its
test extras into it (again only when pyproject.toml changes), then runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed-from"


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PY.exists():
        print("== creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    print("== installing the project and its test tools into .venv", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def run(*cmd: str | Path) -> int:
    print("==", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    ensure_venv()
    if command == "demo":
        return run(PY, "-m", "job", "demo")
    if command == "bench":
        return run(PY, "bench/bench_run.py", *argv[1:])
    for step in ([PY, "-m", "ruff", "check", "."], [PY, "-m", "mypy"]):
        if code := run(*step):
            return code
    return run(PY, "-m", "pytest", *argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
