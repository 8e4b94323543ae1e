"""Isolation and security at the edges (issue 22): what an unlucky timing or a hostile role can do.

Real servers, real roles, real concurrent sessions: a row committed while the job waits for a lock, a
database whose default isolation is REPEATABLE READ, functions and operators planted in `public` by a role
with CREATE there, scratch schemas made by someone else.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR, finish, run_job, start_job, wait_for_job_session
from pgbouncer import PgBouncer, pgbouncer_binary
from pgcluster import Db
from psycopg import sql
from scenarios import STATES, add_sessions
from test_gentle import BUILT, indexes, partial_big

# The lock the job's drop of an "empty" table waits for, from another session.
_WAITING_ON = """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE NOT l.granted AND c.relname = %s AND l.database = (SELECT oid FROM pg_database
WHERE datname = current_database())"""


def _wait_until(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...], timeout: float = 30
                ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(query, params).fetchone() != (0,):
            return
        time.sleep(0.02)
    raise AssertionError(f"never true: {query}")


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
@pytest.mark.parametrize(("state", "empty"), [("both_lower_empty", "session"),
                                              ("both_upper_empty", "Session")])
def test_a_row_committed_while_the_job_waits_for_its_lock_is_never_dropped(db: Db, isolation: str, state: str,
                                                                           empty: str) -> None:
    """An old pod inserts into the "empty" table and commits while the job waits to lock it: whatever
    the database's default isolation, the job's re-check under the lock sees the row, and keeps it."""
    with db.connect() as conn:
        STATES[state](conn, "public", MIGRATIONS_DIR)
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_isolation = {}").format(
            sql.Identifier(db.name), sql.Literal(isolation)))
    with db.connect() as pod, db.connect() as watcher:
        pod.execute("BEGIN")
        add_sessions(pod, "public", empty, 1, prefix="late_pod")
        started = time.monotonic()
        job = start_job(db.url, DB_INIT_MIGRATIONS_DIR=str(MIGRATIONS_DIR), DB_INIT_DDL_LOCK_TIMEOUT="20s")
        try:
            _wait_until(watcher, _WAITING_ON, (empty,))
            pod.execute("COMMIT")
            _, err = job.communicate(timeout=120)
        finally:
            job.kill()
    assert time.monotonic() - started < 60
    with db.connect() as conn:
        tables = [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname IN"
                                             " ('session', 'Session') AND relkind = 'r'")]
        found = sum(len(conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = 'late_pod1.myshopify.com'")
                                     .format(sql.Identifier("public", t))).fetchall()) for t in tables)
    assert found == 1, err


# --- the replay's scratch schema ------------------------------------------------------------------------

def _role(db: Db, *grants: str) -> str:
    """A login role of its own (roles are cluster-wide), with CREATE on the test's database; its URL."""
    name = f"intruder_{uuid.uuid4().hex[:8]}"
    with db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'Intruder-pw-1'").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(db.name),
                                                                        sql.Identifier(name)))
        for grant in grants:
            conn.execute(sql.SQL(grant).format(role=sql.Identifier(name)))
    return db.cluster.url(db.name, user=name, password="Intruder-pw-1")


def _schemas(db: Db, prefix: str = "db_init_replay_") -> set[str]:
    with db.connect() as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                           (prefix,))}


def test_schemas_named_like_the_scratch_schema_are_never_ours(db: Db) -> None:
    """Names the old stale-scratch query cast to int (exit 5 on every run), and another role's schema
    of that name holding a lock on a table in it: none is dropped, none is waited for, the run succeeds."""
    intruder = _role(db)
    with db.connect() as conn:
        STATES["empty"](conn, "public", MIGRATIONS_DIR)
        conn.execute('CREATE SCHEMA "db_init_replay_"')
        conn.execute('CREATE SCHEMA "db_init_replay_99999999999"')
    with psycopg.connect(intruder, autocommit=True) as hostile:
        hostile.execute('CREATE SCHEMA "db_init_replay_1"')
        hostile.execute('CREATE TABLE "db_init_replay_1".held (id int)')
        hostile.execute("BEGIN")
        hostile.execute('LOCK TABLE "db_init_replay_1".held IN ACCESS SHARE MODE')
        run = finish(start_job(db.url, DB_INIT_MIGRATIONS_DIR=str(MIGRATIONS_DIR)), time.monotonic(),
                     timeout=60)
        hostile.execute("ROLLBACK")
    assert run.code == 0, run.stderr
    assert run.seconds < 30
    assert _schemas(db) == {"db_init_replay_", "db_init_replay_99999999999", "db_init_replay_1"}


def test_a_schema_planted_under_the_old_scratch_name_is_never_used(db: Db) -> None:
    """Another role makes `db_init_replay_<the job's backend pid>` (the old name) with a table "Backdoor",
    while the job waits on a table lock before its replay: the replay never uses a schema it did not make,
    so "Backdoor" is neither in the contract nor healed into public."""
    intruder = _role(db)
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
    with db.connect() as holder, psycopg.connect(intruder, autocommit=True) as hostile:
        holder.execute("BEGIN")
        holder.execute('LOCK TABLE public."session" IN ACCESS EXCLUSIVE MODE')
        started = time.monotonic()
        job = start_job(db.url, "run", "--heal", "always", DB_INIT_MIGRATIONS_DIR=str(MIGRATIONS_DIR))
        try:
            pid = wait_for_job_session(db)
            _wait_until(holder, _WAITING_ON, ("session",))
            planted = sql.Identifier(f"db_init_replay_{pid}")
            hostile.execute(sql.SQL("CREATE SCHEMA {}").format(planted))
            hostile.execute(sql.SQL('CREATE TABLE {}."Backdoor" (id int)').format(planted))
            holder.execute("ROLLBACK")
            run = finish(job, started, timeout=60)
        finally:
            job.kill()
    assert run.code == 0, run.stderr
    assert "Backdoor" not in run.stderr
    assert _schemas(db) == {f"db_init_replay_{pid}"}
    with db.connect() as conn:
        assert conn.execute("""SELECT to_regclass('public."Backdoor"')""").fetchone() == (None,)


def test_stale_scratch_schemas_of_ours_are_dropped_within_the_lock_timeout(db: Db) -> None:
    """A scratch schema of ours is known by its owner and the comment naming the backend that made it:
    dropped when that backend is gone (no such pid, or the pid reused by a later backend), kept while it
    lives; one that someone holds a lock in is left for later after lock_timeout, and the run goes on."""
    def ours(name: str, pid: int, started: str) -> None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(name), sql.Literal(f"db-init replay scratch: backend {pid} started {started}")))

    with db.connect() as conn, db.connect() as holder:
        STATES["empty"](conn, "public", MIGRATIONS_DIR)
        pid, started = conn.execute(
            "SELECT pid, to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
            " FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchall()[0]
        ours("db_init_replay_0a0a", 1, "2020-01-01T00:00:00.000000")  # no such backend
        ours("db_init_replay_0b0b", pid, "2020-01-01T00:00:00.000000")  # its pid reused since
        ours("db_init_replay_0c0c", pid, started)  # alive: this very session
        ours("db_init_replay_0d0d", 1, "2020-01-01T00:00:00.000000")  # stale, but someone holds a lock
        conn.execute('CREATE TABLE "db_init_replay_0d0d".held (id int)')
        holder.execute("BEGIN")
        holder.execute('LOCK TABLE "db_init_replay_0d0d".held IN ACCESS SHARE MODE')
        run = finish(start_job(db.url, DB_INIT_MIGRATIONS_DIR=str(MIGRATIONS_DIR),
                               DB_INIT_DDL_LOCK_TIMEOUT="1s"), time.monotonic(), timeout=60)
        holder.execute("ROLLBACK")
    assert run.code == 0, run.stderr
    assert run.seconds < 30
    assert _schemas(db) == {"db_init_replay_0c0c", "db_init_replay_0d0d"}


def test_the_scratch_schema_of_a_killed_replay_is_dropped_by_the_next_run(db: Db, tmp_path: Path) -> None:
    """A file with its own COMMIT makes the replay commit its scratch schema; the job killed right then
    leaves it behind, with the comment naming its backend: the next run, that backend gone, drops it
    (and its own), and nothing else of that name."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    (migrations / "20260107000000_commits").mkdir()
    (migrations / "20260107000000_commits" / "migration.sql").write_text(
        'CREATE TABLE "Committed" (id int);\nCOMMIT;\nSELECT pg_sleep(1.5);\n', encoding="utf-8")
    with db.connect() as conn:
        STATES["empty"](conn, "public", MIGRATIONS_DIR)
    job = start_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations))
    try:
        pid = wait_for_job_session(db)
        deadline = time.monotonic() + 30
        while not _schemas(db) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        job.kill()
        job.communicate()
    left = _schemas(db)
    assert len(left) == 1
    with db.connect() as conn:
        _wait_until(conn, "SELECT (NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s))::int", (pid,))
    run = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations))
    assert run.code == 0, run.stderr
    assert not _schemas(db)


# --- functions and operators planted where the job's statements could find them ---------------------------
# (arguments, what it returns, what pg_catalog's does with them): each name the job calls, with the types
# it passes (an exact match in `public` beats pg_catalog's through an implicit cast) and with pg_catalog's
# own signature (which would win if the job ever put a schema before pg_catalog).  Each records its calls
# in a sequence of its own (nextval survives the rollback of the replay's transaction).
PLANTED_FUNCTIONS = [
    ("pg_try_advisory_lock", "integer", "boolean", "pg_catalog.pg_try_advisory_lock($1::bigint)"),
    ("pg_try_advisory_lock", "bigint", "boolean", "pg_catalog.pg_try_advisory_lock($1)"),
    ("pg_try_advisory_xact_lock", "integer", "boolean", "pg_catalog.pg_try_advisory_xact_lock($1::bigint)"),
    ("pg_try_advisory_xact_lock", "bigint", "boolean", "pg_catalog.pg_try_advisory_xact_lock($1)"),
    ("pg_advisory_unlock", "integer", "boolean", "pg_catalog.pg_advisory_unlock($1::bigint)"),
    ("pg_advisory_unlock", "bigint", "boolean", "pg_catalog.pg_advisory_unlock($1)"),
    ("pg_backend_pid", "", "integer", "pg_catalog.pg_backend_pid()"),
    ("quote_ident", "name", "text", "pg_catalog.quote_ident($1::text)"),
    ("quote_ident", "text", "text", "pg_catalog.quote_ident($1)"),
    ("format_type", "oid, integer", "text", "pg_catalog.format_type($1, $2)"),
    ("pg_get_indexdef", "oid", "text", "pg_catalog.pg_get_indexdef($1)"),
    ("pg_get_expr", "pg_node_tree, oid", "text", "pg_catalog.pg_get_expr($1, $2)"),
    ("pg_get_constraintdef", "oid", "text", "pg_catalog.pg_get_constraintdef($1)"),
    ("pg_get_viewdef", "oid, boolean", "text", "pg_catalog.pg_get_viewdef($1, $2)"),
    ("obj_description", "oid, text", "text", "pg_catalog.obj_description($1, $2::name)"),
    ("obj_description", "oid, name", "text", "pg_catalog.obj_description($1, $2)"),
    ("current_setting", "text", "text", "pg_catalog.current_setting($1)"),
    ("set_config", "text, text, boolean", "text", "pg_catalog.set_config($1, $2, $3)"),
    ("pg_is_in_recovery", "", "boolean", "pg_catalog.pg_is_in_recovery()"),
    ("current_database", "", "name", "pg_catalog.current_database()"),
    ("current_schemas", "boolean", "name[]", "pg_catalog.current_schemas($1)"),
    ("host", "inet", "text", "pg_catalog.host($1)"),
    ("pg_my_temp_schema", "", "oid", "pg_catalog.pg_my_temp_schema()"),
    ("pg_stat_get_live_tuples", "oid", "bigint", "pg_catalog.pg_stat_get_live_tuples($1)"),
    ("starts_with", "text, text", "boolean", "pg_catalog.starts_with($1, $2)"),
    ("starts_with", "name, text", "boolean", "pg_catalog.starts_with($1::text, $2)"),
    ("to_char", "timestamp without time zone, text", "text", "pg_catalog.to_char($1, $2)"),
    ("now", "", "timestamp with time zone", "pg_catalog.now()"),
    ("clock_timestamp", "", "timestamp with time zone", "pg_catalog.clock_timestamp()"),
    ("length", "name", "integer", "pg_catalog.length($1::text)"),
    ("substr", "name, integer", "text", "pg_catalog.substr($1::text, $2)"),
]
PLANTED_SETS = [("unnest", "smallint[]", "smallint", "pg_catalog.unnest($1)"),
                ("unnest", "int2vector", "smallint", "pg_catalog.unnest($1::smallint[])")]
PLANTED_OPERATORS = [
    ("=", "oid", "integer"), ("=", "oid", "regclass"), ("=", "oid", "regnamespace"), ("=", "name", "name"),
    ("=", "name", "text"), ("=", "text", "text"), ("=", "integer", "integer"), ("=", "smallint", "integer"),
    ("=", '"char"', '"char"'), ("<>", "name", "name"), ("<=", "bigint", "smallint"),
    (">", "smallint", "integer"),
    ("~~", "text", "text"), ("!~", "text", "text"),
]


CALLS = "planted_calls"  # the schema of the sequences (out of the job's sight: no drift to report)


def _plant(conn: psycopg.Connection[Any], schema: str) -> list[tuple[str, str]]:
    """Every function, aggregate and operator above, in ``schema``; (signature, its sequence) each."""
    s = sql.Identifier(schema)
    planted: list[tuple[str, str]] = []

    def recorder(signature: str) -> sql.Composed:
        seq = f"{schema}_{len(planted)}"
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(CALLS, seq)))
        planted.append((f"{schema}.{signature}", seq))
        return sql.SQL("PERFORM pg_catalog.nextval({});").format(
            sql.Literal(sql.Identifier(CALLS, seq).as_string()))

    for name, args, returns, body in PLANTED_FUNCTIONS:
        record = recorder(f"{name}({args})")
        conn.execute(sql.SQL("CREATE FUNCTION {}.{}(" + args + ") RETURNS " + returns + " LANGUAGE plpgsql"
                             " AS $f$ BEGIN {} RETURN " + body + "; END $f$").format(s, sql.Identifier(name),
                                                                                     record))
    for name, args, returns, body in PLANTED_SETS:
        record = recorder(f"{name}({args})")
        conn.execute(sql.SQL("CREATE FUNCTION {}.{}(" + args + ") RETURNS SETOF " + returns
                             + " LANGUAGE plpgsql AS $f$ BEGIN {} RETURN QUERY SELECT " + body
                             + "; END $f$").format(
            s, sql.Identifier(name), record))
    for name, stype in (("count", "bigint"), ("max", "text"), ("sum", "bigint")):
        record = recorder(f"{name}(aggregate)")
        step = sql.Identifier(f"planted_{name}_step")
        arg = "" if name == "count" else f", {stype}"
        value = "$1 + 1" if name == "count" else "$2"
        conn.execute(sql.SQL("CREATE FUNCTION {}.{}(" + stype + arg + ") RETURNS " + stype
                             + " LANGUAGE plpgsql AS $f$ BEGIN {} RETURN " + value + "; END $f$").format(
            s, step, record))
        conn.execute(sql.SQL("CREATE AGGREGATE {}.{}(" + ("*" if name == "count" else stype) + ")"
                             " (SFUNC = {}.{}, STYPE = " + stype
                             + (", INITCOND = 0" if name == "count" else "") + ")").format(
            s, sql.Identifier(name), s, step))
    for n, (op, left, right) in enumerate(PLANTED_OPERATORS):
        record = recorder(f"{op}({left}, {right})")
        function = sql.Identifier(f"planted_operator_{n}")
        conn.execute(sql.SQL("CREATE FUNCTION {}.{}(" + left + ", " + right + ") RETURNS boolean"
                             " LANGUAGE plpgsql AS $f$ BEGIN {} RETURN $1::text OPERATOR(pg_catalog." + op
                             + ") $2::text; END $f$").format(s, function, record))
        conn.execute(sql.SQL("CREATE OPERATOR {}." + op + " (LEFTARG = " + left + ", RIGHTARG = " + right
                             + ", FUNCTION = {}.{})").format(s, s, function))
    return planted


def _called(db_name: str, cluster: Any, planted: list[tuple[str, str]]) -> list[str]:
    with cluster.admin(db_name) as conn:
        return [signature for signature, seq in planted
                if conn.execute(sql.SQL("SELECT is_called FROM {}").format(
                    sql.Identifier(CALLS, seq))).fetchall()[0][0]]


def _planted_database(pg: Any, state: str, schema: str, planter: str) -> tuple[str, list[tuple[str, str]]]:
    """A database in ``state``, with every planted object in `public` and in the app schema, made by the
    unprivileged ``planter`` (CREATE on both schemas, as every role has on `public` before PostgreSQL 15)."""
    name = pg.create_database()
    with pg.admin(name) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        STATES[state](conn, schema, MIGRATIONS_DIR)
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(CALLS),
                                                                        sql.Identifier(planter)))
        for target in {"public", schema}:
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
                sql.Identifier(target), sql.Identifier(planter)))
    planted = []
    with psycopg.connect(pg.url(name, user=planter, password="Planter-pw-1"), autocommit=True) as conn:
        for target in sorted({"public", schema}):
            planted += _plant(conn, target)
    return name, planted


@pytest.mark.parametrize("schema", ["public", "shop"])
def test_no_function_or_operator_planted_in_public_or_the_app_schema_is_run_by_the_job(
        pg: Any, schema: str, tmp_path: Path) -> None:
    """`run` from an empty database and from states with work to do (the session merge, healing with
    validations), `plan`, `verify` and `fleet run`, as a superuser: none calls a planted object."""
    planter = f"planter_{uuid.uuid4().hex[:8]}"
    with pg.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'Planter-pw-1'").format(
            sql.Identifier(planter)))
    env = {"DB_INIT_MIGRATIONS_DIR": str(MIGRATIONS_DIR)}
    called: dict[str, list[str]] = {}

    empty, planted = _planted_database(pg, "empty", schema, planter)
    url = pg.url(empty, params=f"schema={schema}")
    for args in (("run",), ("plan",), ("verify",)):
        result = run_job(url, *args, **env)
        assert result.code == 0, result.stderr
        called[f"{args[0]} (empty)"] = _called(empty, pg, planted)

    healing, planted_h = _planted_database(pg, "partial", schema, planter)
    result = run_job(pg.url(healing, params=f"schema={schema}"), "run", "--heal", "always", **env)
    assert result.code in (0, 3), result.stderr
    called["run --heal always (partial)"] = _called(healing, pg, planted_h)

    merging, planted_m = _planted_database(pg, "both_populated", schema, planter)
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"targets": [
        {"name": "merging", "url": pg.url(merging, params=f"schema={schema}")}]}))
    fleet = run_job(None, "fleet", "run", DB_INIT_FLEET_TARGETS=str(targets), **env)
    assert fleet.code == 0, fleet.stderr
    called["fleet run (both_populated)"] = _called(merging, pg, planted_m)
    for name in (empty, healing, merging):
        pg.drop_database(name)
    assert not any(called.values()), called


@pytest.mark.skipif(pgbouncer_binary() is None and os.environ.get("CI") != "true",
                    reason="pgbouncer is not installed (apt-get install pgbouncer)")
def test_behind_a_transaction_pooler_under_repeatable_read_the_lock_holder_holds_no_snapshot(db: Db) -> None:
    """The second connection that holds the transaction-scoped lock across the concurrent builds: were its
    transaction REPEATABLE READ (the database's default here), its snapshot would make each build wait
    for it, and it waits for the builds."""
    partial_big(db)
    with db.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'")
                     .format(sql.Identifier(db.name)))
    with PgBouncer(db.cluster, "transaction") as bouncer:
        job = start_job(bouncer.url(db.name), DB_INIT_LOCK_TIMEOUT="30s")
        try:
            run = finish(job, time.monotonic(), timeout=60)
        finally:
            job.kill()
    assert run.code == 0, run.stderr[-3000:]
    assert run.event("db.pooler")["lock_scope"] == "transaction"
    with db.connect() as conn:
        found = indexes(conn, "ProductProfile")
        assert all(found[name] for name in BUILT), found
