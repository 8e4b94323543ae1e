"""PostgreSQL 12 to 17: the supported range, each version tested; and 11, which the job must refuse.

This pytest run uses one server for everything (conftest's `pg`: the newest found, PostgreSQL 16 from the
pgserver wheel unless TEST_PG_BINDIR says otherwise). Every other supported major gets its own pytest run
of the tests marked `matrix` (conftest.MATRIX_FILES' tests that use a server, each state once, in
`public`; and test_interop.py's marked ones: the real Prisma CLI and PrismaSessionStorage on that
version), against a throwaway cluster of that version. The runs go two at a time in the background, after
everything else (conftest sorts this file last); each test here waits for its own version's run.
Server binaries: tests/matrix.py (`install` puts pinned registry copies in a cache outside the repo).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from jobtools import ROOT, rows_by_table, run_job
from matrix import REFUSED, SUPPORTED, bindir_for, prerequisite_missing
from pgcluster import PgCluster, find_postgres_bindirs

_found = find_postgres_bindirs()
MAIN = max(_found) if _found else None  # the version conftest's `pg` runs everything on
OTHERS = [m for m in SUPPORTED if m != MAIN]
LANES = 2  # the machine has 2 cores; a run is mostly one busy process at a time


@dataclass(frozen=True)
class SuiteRun:
    major: int
    source: str
    code: int
    output: str
    seconds: float


def _run_suites(major: int, bindir: Path, source: str) -> SuiteRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_PG_BINDIR", "PYTEST_"))}
    env["TEST_PG_BINDIR"] = str(bindir)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "matrix", "-q", "-p", "no:cacheprovider", "-rfE",
         "--no-header", "tests"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    return SuiteRun(major, source, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)


@pytest.fixture(scope="session")
def suite_runs() -> Iterator[dict[int, Future[SuiteRun]]]:
    """Every other major's run, started at once, LANES at a time."""
    found = {m: bindir_for(m) for m in OTHERS}
    missing = [m for m, f in found.items() if f is None]
    if missing:
        prerequisite_missing(f"no server binaries for PostgreSQL {', '.join(map(str, missing))}")
    with ThreadPoolExecutor(max_workers=LANES) as pool:
        futures = {}
        for m, f in found.items():
            assert f is not None
            futures[m] = pool.submit(_run_suites, m, *f)
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("major", OTHERS, ids=[f"pg{m}" for m in OTHERS])
def test_the_matrix_suites_pass_on(major: int, suite_runs: dict[int, Future[SuiteRun]]) -> None:
    run = suite_runs[major].result()
    summary = run.output.strip().splitlines()[-1] if run.output.strip() else "(no output)"
    print(f"PostgreSQL {major} ({run.source}): {summary} [{run.seconds:.0f}s]")
    assert run.code == 0, f"PostgreSQL {major} ({run.source}), exit {run.code}:\n{run.output[-6000:]}"
    assert " passed" in summary, summary


def test_the_main_run_is_on_a_supported_version(pg: PgCluster) -> None:
    assert pg.major in SUPPORTED


@pytest.fixture(scope="module")
def old_server() -> Iterator[PgCluster]:
    found = bindir_for(REFUSED)
    if found is None:
        prerequisite_missing(f"no server binaries for PostgreSQL {REFUSED}")
    with PgCluster(found[0]) as cluster:
        yield cluster


def test_the_job_refuses_postgresql_11_clearly_and_changes_nothing(old_server: PgCluster) -> None:
    name = old_server.create_database()
    with old_server.admin(name) as conn:
        before = rows_by_table(conn, "public")
    for command in ("run", "plan"):
        run = run_job(old_server.url(name), command)
        assert run.code == 5, run.stderr
        assert run.summary["outcome"] == "needs_human"
        assert run.summary["reason"] == ("PostgreSQL 11 is not supported: the job needs PostgreSQL 12"
                                         " or newer"), run.summary
    with old_server.admin(name) as conn:
        assert rows_by_table(conn, "public") == before
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname !~ '^(pg_|information_schema)'"
                            " AND nspname <> 'public'").fetchone() == (0,)
