"""The test harness itself: real servers, real authentication."""

from __future__ import annotations

import os

import psycopg
import pytest
from pgcluster import Db, PgCluster


def test_cluster_is_up(pg: PgCluster) -> None:
    assert pg.running
    assert pg.version // 10000 == pg.major
    with pg.admin() as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_url_with_password_connects_over_tcp(pg: PgCluster) -> None:
    with psycopg.connect(pg.url(), connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT host(inet_server_addr()), rolpassword LIKE 'SCRAM-SHA-256$%'"
            " FROM pg_authid WHERE rolname = current_user"
        ).fetchone()
    assert row == ("127.0.0.1", True)  # NULL address would mean the unix socket


@pytest.mark.parametrize("password", ["wrong", None])
def test_bad_password_fails_over_tcp(
    pg: PgCluster, password: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq would otherwise fall back to these for a missing password
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg.url(password=password), connect_timeout=5)


def test_db_fixture_gives_fresh_database(db: Db) -> None:
    with psycopg.connect(db.url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (db.name,)
    with db.connect() as conn:
        conn.execute("CREATE TABLE t (x int)")  # autocommit: no commit needed
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (1,)


def test_create_and_drop_database(pg: PgCluster) -> None:
    name = pg.create_database("Mixed Case-db")  # needs quoting in SQL and in the URL
    exists = "SELECT count(*) FROM pg_database WHERE datname = %s"
    held = psycopg.connect(pg.url(name), connect_timeout=5)  # must not block the drop
    try:
        with pg.admin() as conn:
            assert conn.execute(exists, [name]).fetchone() == (1,)
            pg.drop_database(name)
            assert conn.execute(exists, [name]).fetchone() == (0,)
    finally:
        held.close()


@pytest.mark.slow
def test_stop_start_and_crash_recovery(pg: PgCluster) -> None:
    # Its own cluster: stopping the shared one would disturb other tests.
    nasty = "p@ss:w/rd %?#&'\"\\ ü"
    with PgCluster(pg.bindir, password=nasty) as c:
        url = c.url(params="application_name=harness")
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("CREATE TABLE t (x int)")
        c.stop()
        assert not c.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        c.start()
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (1)")
        c.kill()  # right after the commit: it must survive, as on a real server
        assert not c.running
        c.start()  # crash recovery
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        c.restart()
        assert c.running
    assert not c.dir.exists()
