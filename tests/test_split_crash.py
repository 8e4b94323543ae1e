"""A crash at every unit boundary of a file run in units, then one run must end as a clean run ends.

The release below runs in six units (two transactions, a transaction that adds an enum value and one
that uses it, three statements outside any transaction). The job is killed (SIGKILL) or the server
stopped (immediate mode) right after each unit's commit line (`migration.unit_applied`) and right after
each `migration.outside_transaction` line (during the statement that runs outside a transaction: an
index half built, or built and not yet counted). The next run must exit 0 and leave exactly what a clean
run leaves (tests/test_crash_boundaries.py's fingerprint: schema, rows, indexes valid, the ledger with one
finished row per migration), from the previous release and from every state of HISTORY.md with the
app's own folder (the release runs after the job's repairs of each state).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

import pytest
from jobtools import MIGRATIONS_DIR, ROOT, job_env, parse_events, run_job
from pgcluster import Db, PgCluster
from scenarios import STATES
from test_crash_boundaries import _settled, copy_of, differences, fingerprint
from test_split_files import INIT, ROWS, make_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
Crash = Literal["sigkill", "server_immediate"]

MIX = '''CREATE TABLE "Tag" ("id" TEXT NOT NULL, CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"));
ALTER TABLE "Post" ADD COLUMN "tagId" TEXT;
CREATE INDEX CONCURRENTLY "Post_tagId_idx" ON "Post"("tagId");
ALTER TYPE "Role" ADD VALUE 'GUEST';
UPDATE "User" SET "role" = 'GUEST' WHERE "email" LIKE 'guest%';
CREATE UNIQUE INDEX CONCURRENTLY "User_email_key" ON "User"("email");
DROP INDEX CONCURRENTLY "Post_title_idx";
'''
# The same shape on the app's own schema (prisma/migrations), appended as its next release.
APP_RELEASE = '''CREATE TABLE "Label" ("id" TEXT NOT NULL, CONSTRAINT "Label_pkey" PRIMARY KEY ("id"));
ALTER TABLE "Session" ADD COLUMN "labelId" TEXT;
CREATE INDEX CONCURRENTLY "Session_labelId_idx" ON "Session"("labelId");
CREATE TYPE "Tier" AS ENUM ('FREE');
ALTER TYPE "Tier" ADD VALUE 'PRO';
ALTER TABLE "Session" ADD COLUMN "tier" "Tier" NOT NULL DEFAULT 'PRO';
CREATE UNIQUE INDEX CONCURRENTLY "Label_id_key" ON "Label"("id");
'''
WATCHED = ("migration.unit_applied", "migration.outside_transaction")


def crash_run(db: Db, folder: Path, after: int, crash: Crash) -> tuple[bool, int | None]:
    """Start the job; crash right after the ``after``-th watched line."""
    proc = subprocess.Popen([sys.executable, "-m", "job", "run"], cwd=ROOT,
                            env=job_env(db.url, DB_INIT_MIGRATIONS_DIR=str(folder)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    seen, fired = 0, False
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if parse_events(line)[0].get("event") in WATCHED:
                seen += 1
                if seen == after:
                    fired = True
                    if crash == "sigkill":
                        proc.send_signal(signal.SIGKILL)
                    else:
                        db.cluster.stop("immediate")
                    break
        proc.stderr.read()
        proc.wait(120)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        db.cluster.start()
    return fired, proc.returncode


def the_app_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "20270101000000_labels").mkdir()
    (folder / "20270101000000_labels" / "migration.sql").write_text(APP_RELEASE)
    return folder


CASES = ["previous_release", *STATES]  # and every state of HISTORY.md, the release on the app's own folder


@pytest.mark.parametrize("crash", ["sigkill", "server_immediate"])
@pytest.mark.parametrize("case", CASES)
def test_a_crash_at_every_unit_boundary_then_one_run_ends_as_a_clean_run(
        pg: PgCluster, tmp_path: Path, case: str, crash: Crash) -> None:
    pg.start()
    template = f"split_tmpl_{case}"
    pg.drop_database(template)
    pg.create_database(template)
    if case == "previous_release":
        folder = make_folder(tmp_path / "next", {"20260101000000_init": INIT, "20260201000000_mix": MIX})
        first = run_job(pg.url(template), DB_INIT_MIGRATIONS_DIR=str(make_folder(
            tmp_path / "init", {"20260101000000_init": INIT})))
        assert first.code == 0, first.stderr
        with pg.admin(template) as conn:
            conn.execute(ROWS)
    else:
        folder = the_app_folder(tmp_path)
        with pg.admin(template) as conn:
            STATES[case](conn, "public", MIGRATIONS_DIR)
    try:
        reference = copy_of(pg, f"{template}_ref", template)
        clean = run_job(reference.url, DB_INIT_MIGRATIONS_DIR=str(folder))
        assert clean.code == 0, clean.stderr
        with reference.connect() as conn:
            expected = fingerprint(conn, "public")
        points = sum(1 for e in clean.events if e.get("event") in WATCHED)
        assert points >= 7, [e.get("event") for e in clean.events]
        failures = []
        for after in range(1, points + 1):
            db = copy_of(pg, f"{template}_work", template)
            fired, code = crash_run(db, folder, after, crash)
            assert fired, f"the run ended before line {after}"
            _settled(db)
            rerun = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder))
            with db.connect() as conn:
                found = differences(expected, fingerprint(conn, "public"))
            if rerun.code != 0 or found or "Traceback" in rerun.stderr:
                why = rerun.summary.get("reason", "") if rerun.has("run.finished") else rerun.stderr[-300:]
                failures.append(f"after watched line {after} (crashed run exit {code}): rerun exit"
                                f" {rerun.code} {why}; {found[:10]}")
        assert not failures, "\n".join(failures)
    finally:
        pg.start()
        for name in (template, f"{template}_ref", f"{template}_work"):
            pg.drop_database(name)
