"""Every exit code, each from a real cause: one clear line, no traceback, no password."""

from __future__ import annotations

import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jobtools import (
    MIGRATIONS_DIR,
    JobRun,
    finish,
    job_sessions,
    rows_by_table,
    run_job,
    start_job,
    wait_for_job_session,
)
from pgcluster import Db
from scenarios import STATES

from job import cli
from job.statements import PRISMA_LOCK_KEY


def assert_clean_failure(run: JobRun, code: int, *words: str, secret: str = "pw-Secr3t!") -> None:
    assert run.code == code, run.stderr
    reason = run.summary["reason"]
    assert "\n" not in reason
    for w in words:
        assert w in reason, reason
    assert "Traceback" not in run.stderr
    assert secret not in run.stdout + run.stderr
    assert run.summary["severity"] == "ERROR"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def holding_prisma_lock(db: Db) -> Iterator[psycopg.Connection[Any]]:
    """A session that holds Prisma Migrate's lock, as a running `prisma migrate deploy` would."""
    with psycopg.connect(db.url, autocommit=True, application_name="prisma-migrate") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
        yield conn






# --- 2: configuration -------------------------------------------------------------------

@pytest.mark.parametrize("env, words", [
    ({}, "no database URL"),
    ({"DATABASE_URL": "mysql://u:pw-Secr3t!@h/db"}, "scheme"),
    ({"DATABASE_URL": "postgresql://u:pw-Secr3t!@h:70000/db"}, "invalid port"),
    ({"DATABASE_URL": "postgresql://u:pw-Secr3t!@h/db", "DB_INIT_LOCK_TIMEOUT": "soon"}, "not a duration"),
    ({"DATABASE_URL": "postgresql://u:pw-Secr3t!@h/db", "DB_INIT_DDL_LOCK_TIMEOUT": "10m"}, "out of range"),
    ({"DATABASE_URL": "postgresql://u:pw-Secr3t!@h/db", "DB_INIT_LOG_LEVEL": "loud"}, "DB_INIT_LOG_LEVEL"),
    ({"DATABASE_URL": "postgresql://u:pw-Secr3t!@h/db", "DB_INIT_MIGRATIONS_DIR": "/nonexistent"},
     "does not exist"),
])
def test_bad_configuration_exits_2(env: dict[str, str], words: str) -> None:
    assert_clean_failure(run_job(None, **env), 2, words)


def test_wrong_password_exits_2_at_once_without_leaking_it(db: Db) -> None:
    url = db.cluster.url(db.name, password="Wr0ng-Passw0rd")
    run = run_job(url, DB_INIT_CONNECT_TIMEOUT="30s")
    assert_clean_failure(run, 2, "password authentication failed", secret="Wr0ng-Passw0rd")
    assert run.seconds < 15, "an authentication failure must not be retried"


def test_unknown_database_exits_2_when_creating_it_is_off(db: Db) -> None:
    """(With creation on, the default, run creates it: tests/test_create_database.py.)"""
    run = run_job(db.cluster.url("no_such_db"), DB_INIT_CREATE_DATABASE="false")
    assert_clean_failure(run, 2, 'database "no_such_db" does not exist', "creating it is off")


def test_direct_url_wins_over_database_url(db: Db) -> None:
    run = run_job("postgresql://u:pw-Secr3t!@127.0.0.1:1/unused", DIRECT_URL=db.url)
    assert run.code == 0
    assert run.event("run.started")["url_source"] == "DIRECT_URL"


def test_pgbouncer_flag_switches_to_the_transaction_scoped_lock(db: Db) -> None:
    run = run_job(db.url + "?pgbouncer=true")
    assert run.code == 0, run.stderr
    assert run.event("db.pooler")["lock_scope"] == "transaction"
    assert run.event("lock.acquired")["scope"] == "transaction"
    assert not run.has("lock.released")  # it went with the transaction


def _damage(folder: Path, change: str) -> None:
    lock = folder / "migration_lock.toml"
    if change == "empty":
        for sub in folder.iterdir():
            if sub.is_dir():
                shutil.rmtree(sub)
    elif change == "no_lock_file":
        lock.unlink()
    elif change == "sqlite":
        lock.write_text('provider = "sqlite"\n')
    elif change == "not_utf8":
        (folder / "20260101000000_latin1").mkdir()
        (folder / "20260101000000_latin1" / "migration.sql").write_bytes(b"-- caf\xe9\nSELECT 1;\n")
    elif change == "garbage_lock":
        lock.write_text("\x00 this is not toml [[[\n")
    else:  # the lock file cannot be read
        lock.unlink()
        lock.mkdir()


@pytest.mark.parametrize("change, words", [
    ("empty", "holds no"),
    ("sqlite", "not 'postgresql'"),
    ("not_utf8", "is not UTF-8"),
    ("garbage_lock", "names provider None"),
    ("lock_is_dir", "cannot read"),
])
def test_bad_migrations_folder_exits_2(db: Db, tmp_path: Path, change: str, words: str) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    _damage(folder, change)
    assert_clean_failure(run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder)), 2, words)


def test_folder_without_a_lock_file_is_applied_as_prisma_applies_it(db: Db, tmp_path: Path) -> None:
    """`prisma migrate deploy` checks the provider only when migration_lock.toml exists."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    _damage(folder, "no_lock_file")
    run = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder))
    assert run.code == 0, run.stderr
    assert run.summary["migrations_applied"] == sorted(p.name for p in folder.iterdir() if p.is_dir())


# --- 3: database unavailable --------------------------------------------------------------

def test_nothing_listening_exits_3_at_the_budget_after_logged_retries() -> None:
    url = f"postgresql://postgres:pw-Secr3t!@127.0.0.1:{free_port()}/postgres"
    run = run_job(url, DB_INIT_CONNECT_TIMEOUT="3s")
    assert_clean_failure(run, 3, "unreachable after 3s", "refused")
    retries = [e for e in run.events if e["event"] == "db.connect.retry"]
    assert len(retries) >= 2
    assert {"attempt", "delay_s", "reason"} <= retries[0].keys()
    assert 2.5 < run.seconds < 10


def test_unknown_host_is_retried_then_exits_3() -> None:
    url = "postgresql://postgres:pw-Secr3t!@no-such-host.invalid:5432/db"
    run = run_job(url, DB_INIT_CONNECT_TIMEOUT="2s")
    assert_clean_failure(run, 3, "no-such-host.invalid")


# --- 4: lock busy -----------------------------------------------------------------------

def test_lock_held_by_prisma_exits_4_and_names_the_holder(db: Db) -> None:
    with holding_prisma_lock(db) as holder:
        run = run_job(db.url, DB_INIT_LOCK_TIMEOUT="1.5s")
        holder_pid = holder.info.backend_pid
    assert_clean_failure(run, 4, "migration lock still held", f"pid {holder_pid}", "prisma-migrate")
    waiting = run.event("lock.waiting")
    assert waiting["holder_pid"] == holder_pid and waiting["holder_application"] == "prisma-migrate"


def test_job_waits_for_the_lock_then_proceeds(db: Db) -> None:
    with holding_prisma_lock(db) as holder:
        started = time.monotonic()
        proc = start_job(db.url, DB_INIT_LOCK_TIMEOUT="30s")
        wait_for_job_session(db)
        time.sleep(0.5)  # let it poll a few times while the lock is held
        holder.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_LOCK_KEY,))
        run = finish(proc, started)
    assert run.code == 0, run.stderr
    assert run.event("lock.acquired")["waited_s"] > 0
    assert run.has("lock.waiting")


def test_busy_table_makes_ddl_back_off_instead_of_queueing_app_queries(db: Db) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
    with psycopg.connect(db.url) as app:  # an app transaction reading "session", left open
        app.execute('SELECT count(*) FROM "session"')
        run = run_job(db.url, DB_INIT_LOCK_TIMEOUT="3s", DB_INIT_DDL_LOCK_TIMEOUT="200ms")
        assert_clean_failure(run, 4, "tables stayed locked")
        assert any(e["event"] == "apply.retry" and e["sqlstate"] == "55P03" for e in run.events)
        app.rollback()
    assert run_job(db.url).code == 0


# --- 5: needs a human is covered in test_run (both session tables populated) ------------

# --- 6: migration failed ------------------------------------------------------------------

def test_a_migration_postgresql_cannot_parse_exits_6_before_anything_runs(db: Db, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "20260101000000_broken").mkdir()
    (folder / "20260101000000_broken" / "migration.sql").write_text(
        'CREATE TABLE "Half" (id int);\nSELEC oops;\n')
    run = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder))
    assert_clean_failure(run, 6, "20260101000000_broken/migration.sql line 2", "42601", "nothing applied")
    assert run.summary["migration"] == "20260101000000_broken" and run.summary["committed"] == []
    with db.connect() as conn:
        assert rows_by_table(conn, "public") == {}, "found before the baseline ran: nothing at all"


# --- 7: interrupted -----------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_waiting_for_the_lock_exits_7_and_leaves_no_session(db: Db, sig: signal.Signals) -> None:
    with holding_prisma_lock(db):
        started = time.monotonic()
        proc = start_job(db.url, DB_INIT_LOCK_TIMEOUT="60s")
        wait_for_job_session(db)
        sent = time.monotonic()
        proc.send_signal(sig)
        run = finish(proc, started)
        assert time.monotonic() - sent < 5
    assert_clean_failure(run, 7, f"interrupted by {sig.name}")
    assert job_sessions(db) == 0


# --- 1: a bug -----------------------------------------------------------------------------

def test_unexpected_error_exits_1_with_a_traceback_in_the_log(db: Db, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("planner bug")

    monkeypatch.setattr("job.run.make_plan", broken)
    monkeypatch.setenv("DATABASE_URL", db.url)
    assert cli.main(["--log-format", "json"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "internal_error" in err
