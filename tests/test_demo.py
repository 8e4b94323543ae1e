"""README's first command, `python3 dev.py demo`, run as a newcomer runs it: exit 0 and what it shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jobtools import ROOT

README = (ROOT / "README.md").read_text()


def clean_env() -> dict[str, str]:
    """A newcomer's shell: no virtualenv, no PYTHONPATH, no database or job settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
            "PIP_CONFIG_FILE", "CI")
    env = {k: v for k, v in os.environ.items() if k in keep}
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:  # the test runner's own venv must not be the one the demo finds first
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if not p.startswith(venv))
    return env


@pytest.mark.slow
def test_readme_demo_command_from_a_clean_environment_fixes_the_break_and_exits_0() -> None:
    assert "python3 dev.py demo" in README
    out = subprocess.run(["python3", "dev.py", "demo"], cwd=ROOT, env=clean_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "Traceback" not in text + out.stderr
    header = next(ln for ln in text.splitlines() if "BEFORE" in ln)
    assert header.split() == ["BEFORE", "AFTER"]

    def row(label: str) -> list[str]:
        line = next(ln for ln in text.splitlines() if ln.startswith(label))
        return [c.strip() for c in re.split(r"\s{2,}", line[len(label):].strip())]

    assert row('table "session"')[:2] == ["12 rows", "missing"]
    assert row('table "Session"')[:2] == ["missing", "12 rows"]
    assert row("prisma migrate deploy")[:2] == ["stops: failed row (P3009)", "no failed row"]
    assert row("Shopify session storage")[:2] == ["MissingSessionTableError", 'finds "Session"']
    assert row("ledger: 20251024020000_postgresql_baseline_migration")[:2] == ["-", "applied"]
    assert row("ledger: 20251213003742_fix_session_table_uppercase")[:2] == ["-", "applied"]
    assert re.search(r"ledger: \d+_\w+\s+FAILED\s+rolled back", text)
    # the plan that was applied, in plain words
    assert re.search(r'1\. rename "session" to "Session"', text)
    assert "verify: 0 differences" in text and "a second run: nothing to do" in text
    assert text.rstrip().endswith("the fix worked: exit 0")
    # the structured log: not in the way, but there
    assert not any(ln.lstrip().startswith("{") for ln in text.splitlines() + out.stderr.splitlines())
    log = Path(re.search(r"structured log \(one JSON line per event\): (\S+)", text)[1])  # type: ignore[index]
    events = [json.loads(ln)["event"] for ln in log.read_text().splitlines()]
    assert "step.applied" in events and "db.connected" in events
    log.unlink()


def test_demo_without_the_development_install_says_so_in_one_line_exit_2() -> None:
    """As in the image, where pgserver is not installed (importing it fails as it would there)."""
    code = "import sys; sys.modules['pgserver'] = None; from job.cli import main; sys.exit(main(['demo']))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "development install" in out.stderr and "python3 dev.py demo" in out.stderr
