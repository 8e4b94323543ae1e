"""Fixtures: one real PostgreSQL server per session, one fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgcluster import Db, PgCluster, find_postgres_bindirs
from test_interop import peer, peer6  # noqa: F401  (the real Prisma CLI 7 and 6.19, for every suite)

# Suites whose server-touching tests also run on every supported PostgreSQL major (test_interop_matrix.py);
# each file's tests that use no server (config, URL parsing, timeouts without a server) are left out.
MATRIX_FILES = ("test_pgcluster.py", "test_run.py", "test_exit_codes.py", "test_runner.py")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds (e.g. starts its own cluster)")
    config.addinivalue_line("markers", "interop: runs the app's real Node clients (tests/interop)")
    config.addinivalue_line("markers", "matrix: also runs on every supported PostgreSQL major version")


def _in_matrix(item: pytest.Item) -> bool:
    """Tests of MATRIX_FILES that use a server, each state once: in `public` (its schema variants stay on
    the main version)."""
    if item.path.name not in MATRIX_FILES or "pg" not in getattr(item, "fixturenames", ()):
        return False
    callspec = getattr(item, "callspec", None)
    return callspec is None or callspec.params.get("schema", "public") == "public"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _in_matrix(item):
            item.add_marker(pytest.mark.matrix)
    # The matrix runs whole suites on the other versions, two at a time: last, when nothing else runs.
    items.sort(key=lambda item: item.path.name == "test_interop_matrix.py")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    bindirs = find_postgres_bindirs()  # raises if TEST_PG_BINDIR is set but wrong
    if not bindirs:
        pytest.skip("no PostgreSQL binaries (pip install pgserver, or set TEST_PG_BINDIR)")
    with PgCluster(bindirs[max(bindirs)]) as cluster:
        yield cluster


@pytest.fixture
def db(pg: PgCluster) -> Iterator[Db]:
    """A fresh database per test; annotate with `from pgcluster import Db`."""
    pg.start()  # no-op unless an earlier test stopped or killed the shared server
    name = pg.create_database()
    yield Db(name=name, url=pg.url(name), cluster=pg)
    pg.start()
    pg.drop_database(name)  # terminates leftover sessions first
