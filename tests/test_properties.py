"""Property-based: random starting states built from HISTORY.md's ingredients.

For every generated state, a run must (1) succeed, (2) leave the contract in place
(verify finds nothing), (3) keep every row, and (4) make a second run a no-op.
The job runs in-process here (same code as the CLI) to afford many examples.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import psycopg
import scenarios
from catalogjson import load_contract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobtools import MIGRATIONS_DIR, rows_by_table
from pgcluster import PgCluster
from psycopg import sql
from test_run import rows_kept

from job import cli

CONTRACT = load_contract().tables
OPTIONAL_SESSION_COLUMNS = ("firstName", "lastName", "email", "locale", "collaborator", "emailVerified",
                            "refreshToken", "refreshTokenExpires")
OTHER_TABLES = sorted(set(CONTRACT) - {"Session"})


@dataclass(frozen=True)
class Ingredients:
    schema: str
    baseline_tables: bool  # the baseline's tables exist (possibly some dropped again)
    dropped_tables: tuple[str, ...]
    dropped_session_columns: tuple[str, ...]
    sessions: str  # "none" | "upper" | "lower" | "both"
    lower_rows: int
    upper_rows: int
    shared: int
    ledger: tuple[str, ...]  # ledger rows to write, by kind


ingredients = st.builds(
    Ingredients,
    schema=st.sampled_from(["public", "shop_app"]),
    baseline_tables=st.booleans(),
    dropped_tables=st.lists(st.sampled_from(OTHER_TABLES), max_size=4, unique=True).map(tuple),
    dropped_session_columns=st.lists(st.sampled_from(OPTIONAL_SESSION_COLUMNS), max_size=3,
                                     unique=True).map(tuple),
    sessions=st.sampled_from(["none", "upper", "lower", "both"]),
    lower_rows=st.integers(0, 6),
    upper_rows=st.integers(0, 6),
    shared=st.integers(0, 3),
    ledger=st.lists(st.sampled_from(["sqlite_failed", "lowercase_applied", "lowercase_failed",
                                     "baseline_applied", "baseline_failed", "fix_applied"]),
                    max_size=3, unique=True).map(tuple),
)


def build(conn: psycopg.Connection[Any], ing: Ingredients) -> None:
    schema = ing.schema
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    if ing.baseline_tables:
        scenarios.apply_shipped(conn, schema, MIGRATIONS_DIR, scenarios.BASELINE, record=False)
        for table in ing.dropped_tables:
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(schema, table)))
        for col in ing.dropped_session_columns:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                sql.Identifier(schema, "Session"), sql.Identifier(col)))
        scenarios.add_tenant_rows(conn, schema, 2) if "Tenant" not in ing.dropped_tables else None
        _arrange_sessions(conn, ing)
    for kind in ing.ledger:
        name, finished = {
            "sqlite_failed": (scenarios.SQLITE_FAILED, False),
            "lowercase_applied": (scenarios.LOWERCASE, True),
            "lowercase_failed": (scenarios.LOWERCASE, False),
            "baseline_applied": (scenarios.BASELINE, True),
            "baseline_failed": (scenarios.BASELINE, False),
            "fix_applied": (scenarios.FIX, True),
        }[kind]
        scenarios.ledger_row(conn, schema, name, finished=finished)


def _arrange_sessions(conn: psycopg.Connection[Any], ing: Ingredients) -> None:
    schema = ing.schema
    if ing.sessions == "none":
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, "Session")))
        return
    if ing.sessions in ("lower", "both"):
        scenarios.add_sessions(conn, schema, "Session", ing.lower_rows, mark="old_")
        scenarios.to_lowercase(conn, schema)
    if ing.sessions == "both":  # a fresh "Session" beside it, some ids shared
        scenarios.apply_shipped(conn, schema, MIGRATIONS_DIR, scenarios.BASELINE, record=False)
        scenarios.add_sessions(conn, schema, "Session", min(ing.shared, ing.lower_rows), mark="new_")
        scenarios.add_sessions(conn, schema, "Session", ing.upper_rows, prefix="online", mark="new_")
    if ing.sessions == "upper":
        scenarios.add_sessions(conn, schema, "Session", ing.upper_rows)


@contextmanager
def database(pg: PgCluster) -> Iterator[str]:
    name = pg.create_database()
    try:
        yield name
    finally:
        pg.drop_database(name)


def job(url: str, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(["--log-format", "json", *args])
    finally:
        os.environ.pop("DATABASE_URL")
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
    return code, out.getvalue() + err.getvalue()


EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))  # more for a longer hunt


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ing=ingredients)
def test_any_mix_of_ingredients_converges_without_losing_a_row(pg: PgCluster, ing: Ingredients) -> None:
    with database(pg) as name:
        url = pg.url(name) + ("" if ing.schema == "public" else f"?schema={ing.schema}")
        with pg.admin(name) as conn:
            build(conn, ing)
            before = rows_by_table(conn, ing.schema)

        code, output = job(url)
        assert code == 0, output
        code, output = job(url, "verify", "--json")
        assert code == 0, output
        with pg.admin(name) as conn:
            after = rows_by_table(conn, ing.schema)
        rows_kept(before, after)

        code, output = job(url)
        assert code == 0, output
        finished = [json.loads(ln) for ln in output.splitlines() if '"run.finished"' in ln][-1]
        assert finished["changed"] is False
        with pg.admin(name) as conn:
            assert rows_by_table(conn, ing.schema) == after
