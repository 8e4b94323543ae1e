"""A database named in the URL that does not exist is created, as `prisma migrate deploy` creates it.

Each test names a database that is not there, on the suite's real server, and checks pg_database after:
run creates it (once, however many replicas race), the switch and the read-only commands never do, a role
without CREATEDB and a pooler get one true line and exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobtools import MIGRATIONS_DIR, ROOT, JobRun, finish, job_env, ledger, parse_events, run_job, start_job
from pgbouncer import PgBouncer, pgbouncer_binary
from pgcluster import PG_USER, PgCluster
from psycopg import sql

from job.config import load_config
from job.database import Database
from job.migrations import load_migrations

SHIPPED = [m.name for m in load_migrations(MIGRATIONS_DIR)]


@pytest.fixture
def missing(pg: PgCluster) -> Iterator[str]:
    """A database name that does not exist; dropped after the test, whoever created it."""
    pg.start()
    name = f"new_{uuid.uuid4().hex[:10]}"
    yield name
    pg.drop_database(name)


def exists(pg: PgCluster, name: str) -> bool:
    with pg.admin() as conn:
        return conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", [name]).fetchone() \
            is not None


def events(run: JobRun, name: str) -> list[dict[str, object]]:
    return [e for e in run.events if e.get("event") == name]


def assert_one_line_exit_2(run: JobRun, *parts: str) -> None:
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr and all(e["event"] != "<not json>" for e in run.events)
    reason = run.summary["reason"]
    assert "\n" not in reason and all(p in reason for p in parts), reason


@pytest.mark.matrix  # cheap (a second or two): CREATE DATABASE on every supported major
def test_a_missing_database_is_created_then_deployed_and_verified(pg: PgCluster, missing: str) -> None:
    run = run_job(pg.url(missing))
    assert run.code == 0, run.stderr
    created = events(run, "database.created")
    assert len(created) == 1 and created[0]["database"] == missing
    assert created[0]["severity"] == "WARNING" and created[0]["at"] == f"127.0.0.1:{pg.port}"
    assert pg.password not in run.stderr
    assert run.summary["migrations_applied"] == SHIPPED
    with pg.admin(missing) as conn:
        assert [r["migration_name"] for r in ledger(conn, "public")] == SHIPPED
    assert run_job(pg.url(missing), "verify").code == 0
    again = run_job(pg.url(missing))
    assert again.code == 0 and not again.has("database.created") and not again.summary["changed"]


@pytest.mark.matrix  # cheap (a second or two): CREATE DATABASE on every supported major
def test_two_replicas_racing_on_a_missing_database_both_succeed_and_apply_each_migration_once(
        pg: PgCluster, missing: str) -> None:
    started = time.monotonic()
    procs = [start_job(pg.url(missing)) for _ in range(2)]
    runs = [finish(p, started) for p in procs]
    assert [r.code for r in runs] == [0, 0], [r.stderr for r in runs]
    assert sum(len(events(r, "database.created")) for r in runs) == 1
    assert sorted(n for r in runs for n in r.summary["migrations_applied"]) == sorted(SHIPPED)
    with pg.admin(missing) as conn:
        rows = ledger(conn, "public")
    assert [r["migration_name"] for r in rows] == SHIPPED and all(r["finished_at"] for r in rows)


def test_a_database_made_meanwhile_is_not_an_error(pg: PgCluster, missing: str) -> None:
    """What the replica that loses the race meets, every time: 42P04, taken as "it exists now"."""
    admin = Database.open({"host": str(pg.socket_dir), "port": str(pg.port), "user": PG_USER,
                           "dbname": "postgres"})
    try:
        assert admin.create_database(missing) is True
        assert admin.create_database(missing) is False
    finally:
        admin.close()


@pytest.mark.parametrize(("value", "on"), [("true", True), ("FALSE", False), ("0", False), ("yes", True),
                                           ("off", False)])
def test_the_variable_reads_true_or_false(value: str, on: bool) -> None:
    config = load_config({}, {"DATABASE_URL": "postgresql://u@h/db", "DB_INIT_CREATE_DATABASE": value})
    assert config.create_database is on
    assert load_config({}, {"DATABASE_URL": "postgresql://u@h/db"}).create_database is True


@pytest.mark.parametrize("switch", [("--no-create-database",), ()], ids=["flag", "variable"])
def test_switched_off_a_missing_database_is_exit_2_and_nothing_is_created(
        pg: PgCluster, missing: str, switch: tuple[str, ...]) -> None:
    env = {} if switch else {"DB_INIT_CREATE_DATABASE": "false"}
    run = run_job(pg.url(missing), "run", *switch, **env)
    assert_one_line_exit_2(run, f'database "{missing}" does not exist at 127.0.0.1:{pg.port}',
                           "creating it is off")
    assert run.seconds < 8  # not retried for the connect budget
    assert not exists(pg, missing)


def test_the_switch_takes_true_or_false_only(pg: PgCluster, missing: str) -> None:
    run = run_job(pg.url(missing), DB_INIT_CREATE_DATABASE="maybe")
    assert_one_line_exit_2(run, "DB_INIT_CREATE_DATABASE='maybe' is not true or false")


@pytest.mark.matrix  # cheap (a second or two): CREATE DATABASE on every supported major
def test_a_role_without_createdb_gets_one_line_and_exit_2(pg: PgCluster, missing: str) -> None:
    role = f"nocreate_{uuid.uuid4().hex[:6]}"
    with pg.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD 'Role-pw-123'")
                     .format(sql.Identifier(role)))
    try:
        runs = [run_job(pg.url(missing, user=role, password="Role-pw-123"), command)
                for command in ("run", "plan")]  # plan asks the catalog what run's CREATE DATABASE would meet
    finally:
        with pg.admin() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    for run in runs:
        assert_one_line_exit_2(run, f'database "{missing}" does not exist',
                               f'role "{role}" may not create it', "CREATEDB")
        assert "Role-pw-123" not in run.stderr
    assert not exists(pg, missing)


def test_a_role_kept_out_of_postgres_creates_it_from_template1(pg: PgCluster, missing: str) -> None:
    """Prisma's order: postgres, then template1. The database belongs to the role that made it."""
    role = f"owner_{uuid.uuid4().hex[:6]}"
    with pg.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD 'Role-pw-123'")
                     .format(sql.Identifier(role)))
        conn.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
    try:
        run = run_job(pg.url(missing, user=role, password="Role-pw-123"))
        with pg.admin() as conn:
            owner = conn.execute("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database"
                                 " WHERE datname = %s", [missing]).fetchone()
    finally:
        pg.drop_database(missing)
        with pg.admin() as conn:
            conn.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert run.code == 0, run.stderr
    assert events(run, "database.created")[0]["via"] == "template1" and owner == (role,)


def test_a_url_that_names_no_database_never_creates_one(pg: PgCluster) -> None:
    """libpq then asks for the role's own name (Prisma would take postgres): nothing is made of that."""
    role = f"nodb_{uuid.uuid4().hex[:6]}"
    with pg.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD 'Role-pw-123'")
                     .format(sql.Identifier(role)))
    try:
        url = pg.url(role, user=role, password="Role-pw-123").rsplit("/", 1)[0]
        runs = [run_job(url, command) for command in ("run", "plan")]
    finally:
        with pg.admin() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    for run in runs:
        assert_one_line_exit_2(run, f'database "{role}" does not exist', "the URL names no database")
    assert not exists(pg, role)


def test_plan_shows_the_whole_folder_pending_and_verify_fails_both_creating_nothing(
        pg: PgCluster, missing: str) -> None:
    plan = run_job(pg.url(missing), "plan", "--exit-code")
    assert plan.code == 10, plan.stderr
    assert f'database "{missing}" does not exist' in plan.stdout
    assert f'run creates it (CREATE DATABASE "{missing}"' in plan.stdout
    assert all(f"apply {name}" in plan.stdout for name in SHIPPED)
    doc = json.loads(run_job(pg.url(missing), "plan", "--json").stdout)
    assert [s["migration"] for s in doc["steps"] if s["action"] == "apply_migration"] == SHIPPED
    verify = run_job(pg.url(missing), "verify")
    assert_one_line_exit_2(verify, f'database "{missing}" does not exist', "verify creates no database")
    off = run_job(pg.url(missing), "plan", "--no-create-database")  # plan ends as run would: exit 2
    assert_one_line_exit_2(off, "creating it is off")
    assert not any(r.has("database.created") for r in (plan, verify, off))
    assert not exists(pg, missing)


def fleet(targets: Path, *args: str) -> JobRun:
    started = time.monotonic()
    env = job_env(None, DB_INIT_FLEET_TARGETS=str(targets))
    proc = subprocess.run([sys.executable, "-m", "job", "fleet", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return JobRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started,
                  parse_events(proc.stderr))


def test_the_fleet_creates_a_missing_target_database_unless_switched_off(
        pg: PgCluster, missing: str, tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"name": "tenant-new", "url": pg.url(missing)}]))
    status = fleet(targets, "status", "--json")  # read-only: the whole folder pending, nothing created
    assert status.code == 10, status.stderr
    assert json.loads(status.stdout)["targets"][0]["pending"] == SHIPPED
    off = fleet(targets, "run", "--no-create-database")
    assert off.code == 2, off.stderr
    finished = next(e for e in off.events if e["event"] == "target.finished")
    assert "creating it is off" in finished["reason"] and not exists(pg, missing)
    run = fleet(targets, "run")
    assert run.code == 0, run.stderr
    created = events(run, "database.created")
    assert len(created) == 1 and created[0]["database"] == missing
    assert created[0]["target_name"] == "tenant-new"
    finished = next(e for e in run.events if e["event"] == "target.finished")
    assert finished["migrations_applied"] == SHIPPED


needs_pgbouncer = pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is not installed")


@needs_pgbouncer
@pytest.mark.parametrize("params", ["", "?pgbouncer=true"], ids=["detected", "pgbouncer=true"])
def test_behind_pgbouncer_a_missing_database_is_exit_2_and_not_created(
        pg: PgCluster, missing: str, params: str) -> None:
    """PgBouncer (its `*` entry) relays the server's refusal; the job says a pooler reported it, creates
    nothing through it. (A pooler each: after a failed server login PgBouncer holds the next client of
    that database for server_login_retry.)"""
    for command in ("run", "plan"):
        with PgBouncer(pg, "transaction") as bouncer:
            run = run_job(bouncer.url(missing, params), command)
        assert_one_line_exit_2(run, f'database "{missing}" does not exist', "connection pooler",
                               "only over a direct connection")
    assert not exists(pg, missing)


@needs_pgbouncer
def test_a_database_pgbouncer_does_not_know_is_its_own_refusal_exit_2_at_once(
        pg: PgCluster, missing: str) -> None:
    with PgBouncer(pg, "transaction", wildcard=False) as bouncer:
        run = run_job(bouncer.url(missing))
    assert_one_line_exit_2(run, f'knows no database "{missing}"', f"no such database: {missing}")
    assert run.seconds < 8 and not run.has("db.connect.retry")
    assert not exists(pg, missing)
