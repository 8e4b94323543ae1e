"""Every SQL statement the job sends, built with psycopg.sql.

Names are always ``sql.Identifier`` and values ``sql.Literal`` (or bound
parameters), never string formatting.  Nothing here executes anything.
"""

from __future__ import annotations

from psycopg import sql

# What the driver executes: a composed statement, or a migration file as it is.
Statement = sql.SQL | sql.Composed

# Prisma Migrate's advisory lock key (schema-engine, flavour/postgres.rs): sharing it
# is what keeps this job and `prisma migrate deploy` from ever running at once.
PRISMA_LOCK_KEY = 72707369
LEDGER = "_prisma_migrations"

# One round trip: server facts plus the target schema's tables.
INSPECT = sql.SQL("""
SELECT current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       current_setting('transaction_read_only') = 'on',
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s),
       coalesce(ARRAY(SELECT c.relname::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
                      ORDER BY 1), '{}'),
       coalesce(ARRAY(SELECT c.relname::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s ORDER BY 1), '{}')
""")


def ledger_rows(schema: str) -> sql.Composed:
    return sql.SQL(
        "SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at,"
        " applied_steps_count FROM {} ORDER BY started_at, migration_name"
    ).format(sql.Identifier(schema, LEDGER))


def count_rows(schema: str, table: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))


# Session settings that let the server notice a dead job in seconds, not hours,
# and drop its lock: TCP keepalives/user timeout (ignored on Unix sockets) and a
# cap on idling inside a transaction.  Names are fixed here, values are literals.
def session_settings(version: int) -> sql.Composed:
    settings = [
        ("tcp_keepalives_idle", "10"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
        ("idle_in_transaction_session_timeout", "60000"),
    ]
    if version >= 140000:
        settings.append(("client_connection_check_interval", "2000"))
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(k), sql.Literal(v))
        for k, v in settings))


TRY_LOCK = sql.SQL("SELECT pg_try_advisory_lock({})").format(sql.Literal(PRISMA_LOCK_KEY))
UNLOCK = sql.SQL("SELECT pg_advisory_unlock({})").format(sql.Literal(PRISMA_LOCK_KEY))

# Who holds the lock: advisory locks on a bigint key show as classid 0 / objid key / objsubid 1.
LOCK_HOLDERS = sql.SQL("""
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
       a.backend_start, a.state
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = {}
  AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
""").format(sql.Literal(PRISMA_LOCK_KEY))


def transaction_settings(schema: str, lock_timeout_ms: int, statement_timeout_ms: int) -> sql.Composed:
    """SET LOCAL for one DDL transaction: bounded waits, and the target schema first."""
    return sql.SQL(
        "SELECT set_config('lock_timeout', {}, true), set_config('statement_timeout', {}, true),"
        " set_config('search_path', {}, true)"
    ).format(sql.Literal(f"{lock_timeout_ms}ms"), sql.Literal(f"{statement_timeout_ms}ms"),
             sql.Literal(sql.Identifier(schema).as_string()))


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_ledger(schema: str) -> sql.Composed:
    # Prisma's own DDL, column for column, so its engine reads the table as its own.
    return sql.SQL("""CREATE TABLE {} (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)""").format(sql.Identifier(schema, LEDGER))


def close_failed_row(schema: str, row_id: str) -> sql.Composed:
    # What `prisma migrate resolve --rolled-back` writes.
    return sql.SQL("UPDATE {} SET rolled_back_at = now() WHERE id = {} AND finished_at IS NULL"
                   " AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, LEDGER), sql.Literal(row_id))


def record_migration(schema: str, row_id: str, name: str, checksum: str) -> sql.Composed:
    # What a successful `prisma migrate deploy` leaves: logs NULL, one applied step.
    # started_at is the transaction's start, finished_at the moment of recording.
    return sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, rolled_back_at,"
        " started_at, applied_steps_count) VALUES ({}, {}, clock_timestamp(), {}, NULL, NULL,"
        " now(), 1)"
    ).format(sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(checksum),
             sql.Literal(name))


def rename_table(schema: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def rename_index(schema: str, old: str, new: str) -> sql.Composed:
    # A primary key's index carries the constraint's name: renaming it renames both.
    return sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def script(text: str) -> sql.SQL:
    """A migration file, sent as it is (no parameters, so no placeholder parsing)."""
    return sql.SQL(text)


# The live shape of one schema's tables, for verification (job.catalog turns rows into Tables).
DESCRIBE_COLUMNS = sql.SQL("""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
""")

DESCRIBE_INDEXES = sql.SQL("""
SELECT t.relname, i.relname, x.indisunique, x.indisprimary,
       ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relkind IN ('r', 'p')
ORDER BY t.relname, i.relname
""")

DESCRIBE_FOREIGN_KEYS = sql.SQL("""
SELECT t.relname, k.conname, r.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.ord),
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.ord),
       k.confdeltype::text, k.confupdtype::text
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND k.contype = 'f'
ORDER BY t.relname, k.conname
""")
