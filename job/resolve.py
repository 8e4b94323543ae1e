"""`db-init resolve`: what `prisma migrate resolve` writes, for images that carry no Prisma CLI.

``--rolled-back NAME``: the migration's failed ledger rows closed, so the next run applies the file again
(for a human who checked that nothing of it is in the database, or undid what was).  ``--applied NAME``:
its failed rows closed and a finished row written without running the file (for a human who finished it
by hand).  The same checks as Prisma's: the migration must be in the folder; a row to roll back must be
failed; a migration already applied is not recorded twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from job import statements as q
from job.database import Database
from job.errors import ConfigError, LockBusy
from job.migrations import Migration


def resolve_row(db: Database, schema: str, migrations: Sequence[Migration], how: str, name: str, *,
                pooled: bool, log: Any) -> bool:
    """Record ``name`` as ``how`` ("applied" or "rolled_back") in one transaction; True when written."""
    migration = next((m for m in migrations if m.name == name), None)
    if migration is None:
        raise ConfigError(f"migration {name} is not in the migrations folder (Prisma's P3017)")
    ledger = db.inspect(schema).ledger or ()
    failed = [r for r in ledger if r.migration_name == name and r.failed]
    if how == "rolled_back" and not failed:
        raise ConfigError(f"migration {name} has no failed ledger row to roll back (Prisma's P3012)")
    if how == "applied" and any(r.migration_name == name and r.applied for r in ledger):
        raise ConfigError(f"migration {name} is already recorded as applied (Prisma's P3008)")
    statements = [q.close_failed_row(schema, r.id) for r in failed]
    if how == "applied":
        statements.append(q.resolve_applied(schema, str(uuid.uuid4()), name, migration.checksum))
    with db.transaction(schema=schema, lock_timeout_ms=2000, statement_timeout_ms=60000):
        if pooled and not db.try_xact_lock():
            raise LockBusy("another runner holds the migration lock: try again when it is done")
        db.execute(statements)
    log.warning("ledger.resolved", migration=name, recorded_as=how, failed_rows_closed=len(failed),
                note="as `prisma migrate resolve` writes it")
    return True
