"""The image installs requirements.lock: it must pin, by hash, what pyproject.toml asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    text = (ROOT / "requirements.lock").read_text()
    pins = {}
    for block in re.split(r"\n(?=\S)", text):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if m:
            pins[m[1].lower().replace("_", "-")] = (m[2], block.count("--hash=sha256:"))
    return pins


def test_every_runtime_dependency_is_locked_with_hashes_in_its_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = locked()
    for dep in map(Requirement, deps):
        version, hashes = pins[dep.name.lower()]
        assert dep.specifier.contains(version), f"{dep.name}=={version} is outside {dep.specifier}"
        assert hashes >= 1
        for extra in dep.extras:  # psycopg[binary] -> psycopg-binary
            assert f"{dep.name}-{extra}".lower() in pins
    assert all(h >= 1 for _, h in pins.values())
