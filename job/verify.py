"""``verify``'s ledger half, and the notes every command shows.

What `prisma migrate status` would say, and what it would keep quiet about,
without Node.  Pure: it reads data that inspection returned.  The schema half is
``job.schemadiff.diff_catalogs`` against the replayed contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from job.migrations import Migration
from job.state import DatabaseState
from job.statements import LEDGER


def notes(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Worth knowing, not a difference: neither the contract nor Prisma's deploy/status weigh these."""
    return [f'constraint "{name}" is NOT VALID: existing rows break it (new writes are checked)'
            if name in state.refused else f'constraint "{name}" is NOT VALID: not validated yet'
            for name in sorted(state.unvalidated)] + edited(state, migrations)


def edited(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Files changed after they were applied: Prisma no longer warns, nor applies them again."""
    return [f"migration {m.name} was modified after it was applied (recorded checksum {r.checksum[:12]}...,"
            f" the file's {m.checksum[:12]}...): not applied again"
            for m in migrations for r in state.ledger or ()
            if r.migration_name == m.name and r.applied and r.checksum != m.checksum]


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
