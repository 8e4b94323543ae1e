"""The production states of HISTORY.md, rebuilt on a throwaway database.

Fixtures, not product code: the demo and the tests use them to put a database
into the state the job must fix.  Each builder takes an autocommit admin
connection and the target schema, and writes what that era left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from job.migrations import load_migrations

SQLITE_FAILED = "20251008130439_update_for_new_pricing"
LOWERCASE = "20251204205052_map_session_table_to_lowercase"
BASELINE = "20251024020000_postgresql_baseline_migration"
FIX = "20251213003742_fix_session_table_uppercase"
AHEAD = "20260301000000_add_wishlist"

Conn = psycopg.Connection[Any]


def _exec(conn: Conn, schema: str, text: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    with conn.transaction():
        conn.execute(sql.SQL("SELECT set_config('search_path', {}, true)").format(
            sql.Literal(sql.Identifier(schema).as_string())))
        conn.execute(sql.SQL(text))


def _ensure_ledger(conn: Conn, schema: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    _exec(conn, schema, """CREATE TABLE IF NOT EXISTS _prisma_migrations (
        id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
        migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)""")


def ledger_row(conn: Conn, schema: str, name: str, *, finished: bool, logs: str | None = None,
               checksum: str = "0" * 64) -> None:
    _ensure_ledger(conn, schema)
    conn.execute(sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, applied_steps_count)"
        " VALUES (%s, %s, CASE WHEN %s THEN now() END, %s, %s, %s)").format(
        sql.Identifier(schema, "_prisma_migrations")),
        (str(uuid.uuid4()), checksum, finished, name, logs, 1 if finished else 0))


def apply_shipped(conn: Conn, schema: str, migrations_dir: Path, name: str, *, record: bool) -> None:
    m = next(m for m in load_migrations(migrations_dir) if m.name == name)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    _exec(conn, schema, m.sql)
    if record:
        ledger_row(conn, schema, name, finished=True, checksum=m.checksum)


def to_lowercase(conn: Conn, schema: str) -> None:
    """What the lowercase era left: "session", with the names db push gives a @@map("session") model."""
    _exec(conn, schema, 'ALTER TABLE "Session" RENAME TO "session";'
                        ' ALTER INDEX "Session_pkey" RENAME TO "session_pkey";'
                        ' ALTER INDEX "Session_shop_idx" RENAME TO "session_shop_idx"')


def add_sessions(conn: Conn, schema: str, table: str, count: int, prefix: str = "offline_shop",
                 mark: str = "shpat_") -> None:
    conn.execute(sql.SQL(
        'INSERT INTO {} ("id", "shop", "state", "isOnline", "accessToken")'
        " SELECT %s || g || '.myshopify.com', 'shop' || g || '.myshopify.com', 'state' || g, false,"
        " %s || md5(g::text) FROM generate_series(1, %s) g").format(
        sql.Identifier(schema, table)), (prefix, mark, count))


def add_tenant_rows(conn: Conn, schema: str, count: int) -> None:
    conn.execute(sql.SQL(
        'INSERT INTO {} ("id", "shop", "updatedAt") SELECT \'t\' || g, \'shop\' || g || \'.myshopify.com\','
        " now() FROM generate_series(1, %s) g").format(sql.Identifier(schema, "Tenant")), (count,))


# --- the states of HISTORY.md -------------------------------------------------------------

def state_empty(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """1. Nothing of the app's; other schemas (as on a fresh Supabase project) must stay untouched."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS auth")
    conn.execute("CREATE TABLE IF NOT EXISTS auth.users (id uuid PRIMARY KEY, email text)")
    conn.execute("INSERT INTO auth.users VALUES (md5(random()::text)::uuid, 'a@example.com')")


def state_sqlite_failed(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """2. The SQLite-era migration failed on PostgreSQL: a failed ledger row, no app tables."""
    ledger_row(conn, schema, SQLITE_FAILED, finished=False,
               logs='ERROR: type "datetime" does not exist')


def state_lowercase(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """4. Baseline applied, then the lowercase migration: a populated "session"."""
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=True)
    add_sessions(conn, schema, "Session", 25)
    add_tenant_rows(conn, schema, 3)
    to_lowercase(conn, schema)
    ledger_row(conn, schema, LOWERCASE, finished=True)


def state_lowercase_failed(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """5. The lowercase migration's row failed; the table is still "Session"."""
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=True)
    add_sessions(conn, schema, "Session", 10)
    ledger_row(conn, schema, LOWERCASE, finished=False, logs="error")


def state_both_populated(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """7. "session" and "Session" both hold rows, some ids in both (with different tokens)."""
    state_lowercase(conn, schema, migrations_dir)
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=False)  # recreates an empty "Session"
    add_sessions(conn, schema, "Session", 5, mark="shpat_new_")
    add_sessions(conn, schema, "Session", 3, prefix="online_shop", mark="shpat_new_")


def state_both_lower_empty(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """6. "Session" holds the sessions; an empty "session" was created again beside it."""
    state_fixed(conn, schema, migrations_dir)
    _exec(conn, schema, 'CREATE TABLE "session" (LIKE "Session" INCLUDING ALL)')


def state_both_upper_empty(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """6. "session" holds the sessions; the baseline re-created an empty "Session"."""
    state_lowercase(conn, schema, migrations_dir)
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=False)


# Hand-made tables of a `prisma db push` era: columns, indexes and keys missing, orphans present.
_PARTIAL = """
CREATE TABLE "Session" ("id" TEXT NOT NULL PRIMARY KEY, "shop" TEXT NOT NULL, "state" TEXT NOT NULL,
    "isOnline" BOOLEAN NOT NULL DEFAULT false, "scope" TEXT, "expires" TIMESTAMP(3),
    "accessToken" TEXT NOT NULL, "userId" BIGINT, "firstName" TEXT, "lastName" TEXT, "email" TEXT,
    "accountOwner" BOOLEAN NOT NULL DEFAULT false, "locale" TEXT, "collaborator" BOOLEAN DEFAULT false);
CREATE TABLE "Plan" ("id" TEXT NOT NULL, "name" TEXT NOT NULL, "priceMonthly" DOUBLE PRECISION NOT NULL,
    "messageLimit" INTEGER NOT NULL, "productLimit" INTEGER NOT NULL, "features" JSONB,
    "isActive" BOOLEAN NOT NULL DEFAULT true, "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Plan_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Tenant" ("id" TEXT NOT NULL, "shop" TEXT NOT NULL, "planId" TEXT,
    "billingStatus" TEXT NOT NULL DEFAULT 'inactive', "chargeId" TEXT, "settings" JSONB,
    "installedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "uninstalledAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Tenant_pkey" PRIMARY KEY ("id"));
CREATE TABLE "ProductProfile" ("id" TEXT NOT NULL, "tenantId" TEXT NOT NULL,
    "shopifyProductId" TEXT NOT NULL, "title" TEXT NOT NULL, "handle" TEXT, "description" TEXT,
    "productType" TEXT, "vendor" TEXT, "tags" TEXT[], "price" DOUBLE PRECISION, "enrichment" JSONB,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "ProductProfile_pkey" PRIMARY KEY ("id"));
INSERT INTO "Plan" ("id", "name", "priceMonthly", "messageLimit", "productLimit")
    VALUES ('basic', 'Basic', 9.5, 100, 50);
INSERT INTO "Tenant" ("id", "shop", "planId", "updatedAt") VALUES
    ('t1', 'a.myshopify.com', 'basic', now()), ('t2', 'b.myshopify.com', 'gone-plan', now()),
    ('t3', 'c.myshopify.com', NULL, now());
INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title", "tags", "updatedAt") VALUES
    ('p1', 't1', 'gid://1', 'Hat', '{red,wool}', now()),
    ('p2', 'no-such-tenant', 'gid://2', 'Scarf', NULL, now());
"""


def state_partial(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """3. The SQLite-era failure, plus tables made by hand: columns, indexes, keys missing; orphans."""
    state_sqlite_failed(conn, schema, migrations_dir)
    _exec(conn, schema, _PARTIAL)
    add_sessions(conn, schema, "Session", 6)


def state_partial_both(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """3 + 7: a partial schema, and an old lowercase "session" (first-version columns) with rows."""
    state_partial(conn, schema, migrations_dir)
    _exec(conn, schema, 'CREATE TABLE "session" ("id" TEXT NOT NULL PRIMARY KEY, "shop" TEXT NOT NULL,'
                        ' "state" TEXT NOT NULL, "isOnline" BOOLEAN NOT NULL DEFAULT false, "scope" TEXT,'
                        ' "expires" TIMESTAMP(3), "accessToken" TEXT NOT NULL, "userId" BIGINT)')
    add_sessions(conn, schema, "session", 9, mark="shpat_old_")


def state_lowercase_v1(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """4, older still: only "session", with the first version's columns (no firstName..., no refreshToken)."""
    _exec(conn, schema, 'CREATE TABLE "session" ("id" TEXT NOT NULL, "shop" TEXT NOT NULL,'
                        ' "state" TEXT NOT NULL, "isOnline" BOOLEAN NOT NULL DEFAULT false, "scope" TEXT,'
                        ' "expires" TIMESTAMP(3), "accessToken" TEXT NOT NULL, "userId" BIGINT,'
                        ' CONSTRAINT "session_pkey" PRIMARY KEY ("id"));'
                        ' CREATE INDEX "session_shop_idx" ON "session" ("shop")')
    add_sessions(conn, schema, "session", 4)


def state_fixed(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """8. Everything applied and recorded."""
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=True)
    apply_shipped(conn, schema, migrations_dir, FIX, record=True)
    add_sessions(conn, schema, "Session", 7)
    add_tenant_rows(conn, schema, 2)


def state_ahead(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """9. The app moved on: the ledger holds a migration newer than any the job ships."""
    state_fixed(conn, schema, migrations_dir)
    _exec(conn, schema, 'CREATE TABLE "Wishlist" ("id" TEXT NOT NULL PRIMARY KEY)')
    ledger_row(conn, schema, AHEAD, finished=True, checksum="a" * 64)


def state_demo(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """The production break: a failed SQLite-era row, and the sessions in lowercase "session"."""
    ledger_row(conn, schema, SQLITE_FAILED, finished=False,
               logs='ERROR: type "datetime" does not exist')
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=False)
    add_sessions(conn, schema, "Session", 12)
    to_lowercase(conn, schema)


def state_no_ledger(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """Prisma's P3005: the tables exist (db push, or a restore), but no _prisma_migrations."""
    apply_shipped(conn, schema, migrations_dir, BASELINE, record=False)
    add_sessions(conn, schema, "Session", 4)
    add_tenant_rows(conn, schema, 2)


def state_baseline_failed(conn: Conn, schema: str, migrations_dir: Path) -> None:
    """A shipped migration's own row failed (its transaction rolled back, so no table was left)."""
    ledger_row(conn, schema, BASELINE, finished=False, logs="ERROR: canceling statement due to lock timeout")


STATES: dict[str, Callable[[Conn, str, Path], None]] = {
    "empty": state_empty,
    "sqlite_failed": state_sqlite_failed,
    "lowercase": state_lowercase,
    "lowercase_failed": state_lowercase_failed,
    "both_populated": state_both_populated,
    "both_lower_empty": state_both_lower_empty,
    "both_upper_empty": state_both_upper_empty,
    "partial": state_partial,
    "partial_both": state_partial_both,
    "lowercase_v1": state_lowercase_v1,
    "no_ledger": state_no_ledger,
    "baseline_failed": state_baseline_failed,
    "fixed": state_fixed,
    "ahead": state_ahead,
    "demo": state_demo,
}
