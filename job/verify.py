"""``verify``: the live database against the contract and the migrations folder.

What `prisma migrate diff --exit-code` and `prisma migrate status` would say
together, without Node and without a shadow database.  Pure: it compares data
that inspection read.
"""

from __future__ import annotations

from collections.abc import Sequence

from job.migrations import Migration
from job.schemadiff import diff_schemas
from job.schemamodel import Schema
from job.sessions import is_kept_copy
from job.state import DatabaseState
from job.statements import LEDGER


def differences(state: DatabaseState, contract: Schema, migrations: Sequence[Migration],
                *, allow_extra: bool = False) -> list[str]:
    extras = frozenset(t for t in state.live if t == LEDGER or is_kept_copy(t))
    lines = diff_schemas(contract, state.live, allowed_extra_tables=extras)
    if allow_extra:
        lines = [ln for ln in lines if "unexpected " not in ln]
    return lines + ledger_differences(state, migrations)


def notes(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Worth knowing, not a difference: neither the contract nor Prisma's deploy/status weigh these."""
    found = [f'foreign key "{name}" is NOT VALID: existing rows point at nothing (new writes are checked)'
             for name in sorted(state.unvalidated_fks)]
    for m in migrations:
        for r in state.ledger or ():
            if r.migration_name == m.name and r.applied and r.checksum != m.checksum:
                found.append(f"migration {m.name} was recorded with checksum {r.checksum[:12]}..., the"
                             f" file's is {m.checksum[:12]}... (the file changed after it was applied)")
    return found


def ledger_differences(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    if state.ledger is None:
        return [f"no {LEDGER} table: the database is not managed by Prisma Migrate"]
    lines = [f"failed ledger row {r.migration_name} (prisma migrate deploy stops with P3009)"
             for r in state.ledger if r.failed]
    for m in migrations:
        rows = [r for r in state.ledger if r.migration_name == m.name and r.applied]
        if not rows:
            lines.append(f"migration {m.name} is not recorded as applied")
        elif len(rows) > 1:
            lines.append(f"migration {m.name} is recorded as applied {len(rows)} times")
    return lines
