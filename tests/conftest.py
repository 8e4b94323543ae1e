"""Fixtures: one real PostgreSQL server per session, one fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgcluster import Db, PgCluster, find_postgres_bindirs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds (e.g. starts its own cluster)")


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
