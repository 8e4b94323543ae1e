"""README tells the truth about the settings and exit codes the code has."""

from __future__ import annotations

import re
from pathlib import Path

from job.config import SETTINGS
from job.errors import OUTCOMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def table_rows(heading: str) -> list[list[str]]:
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows[1:]]


def test_exit_code_table_matches_the_code() -> None:
    rows = table_rows("Exit codes")
    assert [(int(r[0]), r[1].strip("`")) for r in rows] == [(int(o.code), o.name) for o in OUTCOMES]
    for row, outcome in zip(rows, OUTCOMES, strict=True):
        assert row[3] == outcome.meaning
        if outcome.code:
            assert row[2] == ("yes" if outcome.retryable else "no")


def test_configuration_table_matches_the_code() -> None:
    rows = table_rows("Configuration")
    assert [r[0].strip("`") for r in rows] == [s.flag for s in SETTINGS]
    assert [r[1].replace("`", "") for r in rows] == [s.env for s in SETTINGS]
    for row, s in zip(rows, SETTINGS, strict=True):
        if s.default:
            assert re.match(rf"`{re.escape(s.default)}`", row[2]), (row, s.default)


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "python3 dev.py test" in README
    assert ci.rstrip().endswith("python3 dev.py test")
