"""Bad input from every side, each with one clear line, its documented code, no traceback, no password.

With test_exit_codes.py (configuration, credentials, unreachable servers, the
migrations folder) and test_dburl.py (malformed URLs), these make the list of
bad inputs in README.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from jobtools import run_job
from pgcluster import Db
from test_exit_codes import assert_clean_failure
from test_run import check_contract, check_ledger


@pytest.fixture
def not_postgres() -> Iterator[int]:
    """A TCP service that answers like a web server, not like PostgreSQL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    server.close()


def test_a_service_that_is_not_postgresql_exits_2(not_postgres: int) -> None:
    run = run_job(f"postgresql://postgres:pw-Secr3t!@127.0.0.1:{not_postgres}/db?sslmode=disable",
                  DB_INIT_CONNECT_TIMEOUT="5s")
    assert_clean_failure(run, 2, "database refused the connection")


def test_ssl_required_by_the_url_but_not_offered_by_the_server_exits_2(db: Db) -> None:
    assert_clean_failure(run_job(db.url + "?sslmode=require"), 2, "SSL")


def test_a_socket_directory_with_no_server_is_waited_for_then_exits_3() -> None:
    run = run_job("postgresql://postgres@localhost/db?host=/nonexistent/socket/dir",
                  DB_INIT_CONNECT_TIMEOUT="2s")
    assert_clean_failure(run, 3, "unreachable")


def test_read_only_database_needs_a_human(db: Db) -> None:
    with db.cluster.admin() as admin:
        admin.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    assert_clean_failure(run_job(db.url), 5, "read-only")


def test_role_without_create_privilege_fails_cleanly_and_changes_nothing(db: Db) -> None:
    with db.connect() as conn:
        conn.execute("CREATE ROLE app_reader LOGIN PASSWORD 'Reader-pw-123'")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = db.cluster.url(db.name, user="app_reader", password="Reader-pw-123")
    run = run_job(url)
    assert_clean_failure(run, 6, "permission denied", "42501", "rolled back", secret="Reader-pw-123")
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


@pytest.mark.parametrize("schema", ['we"ird', "with space", "ünïcødé_схема", "MixedCase"])
def test_schema_names_with_quotes_spaces_or_unicode_work(db: Db, schema: str) -> None:
    from urllib.parse import quote

    run = run_job(f"{db.url}?schema={quote(schema)}")
    assert run.code == 0, run.stderr
    with db.connect() as conn:
        check_contract(conn, schema)
        check_ledger(conn, schema)
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_reserved_text_in_the_schema_name_is_refused() -> None:
    run = run_job("postgresql://u:pw-Secr3t!@h/db?schema=a$db_init_guard$b")
    assert_clean_failure(run, 2, "reserved")


@pytest.mark.parametrize("env, words", [
    ({"DB_INIT_CONNECT_TIMEOUT": "0"}, "out of range"),
    ({"DB_INIT_CONNECT_TIMEOUT": "-5s"}, "not a duration"),
    ({"DB_INIT_STATEMENT_TIMEOUT": "1e9"}, "not a duration"),
    ({"DB_INIT_LOCK_TIMEOUT": "99999999999999999999m"}, "out of range"),
    ({"DB_INIT_LOG_FORMAT": "xml"}, "DB_INIT_LOG_FORMAT"),
    ({"DB_INIT_APPLICATION_NAME": "x" * 64}, "1 to 63"),
])
def test_absurd_settings_exit_2(env: dict[str, str], words: str) -> None:
    assert_clean_failure(run_job("postgresql://u:pw-Secr3t!@h/db", **env), 2, words)
