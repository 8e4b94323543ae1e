"""Planning: a pure function from what inspection found to the steps that fix it.

No database here.  ``make_plan`` is called twice in a run, before the lock (to
take the fast path when there is nothing to do) and again under the lock, so
what is applied is planned from what is there at that moment.

Order inside the one transaction: schema, session tables, ledger table, failed
ledger rows, healing of an existing partial schema, the session merge, then each
pending migration with its ledger row.  Validation of new foreign keys follows
after the commit, each in its own short transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from job import statements as q
from job.errors import NeedsHuman
from job.heal import heal
from job.migrations import RETIRED, Migration
from job.schemamodel import Schema
from job.sessions import resolve, session_columns
from job.state import DatabaseState
from job.steps import Step

MIN_SERVER_VERSION = 120000
BASELINE_SUFFIX = "_postgresql_baseline_migration"

@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # one transaction
    validations: tuple[Step, ...]  # after the commit, each on its own; a failure is reported, not fatal
    notes: tuple[str, ...]  # things found and deliberately left alone
    unresolved: tuple[str, ...]  # differences from the contract the job will not change on its own

    @property
    def empty(self) -> bool:
        return not self.steps

    def statements(self) -> list[q.Statement]:
        return [s for step in self.steps for s in step.statements]

    @property
    def migrations_applied(self) -> tuple[str, ...]:
        return tuple(s.migration for s in self.steps if s.action == "apply_migration" and s.migration)

    @property
    def ledger_rows_repaired(self) -> int:
        return sum(1 for s in self.steps if s.action == "close_failed_row")


def make_plan(state: DatabaseState, migrations: Sequence[Migration], contract: Schema,
              new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
              today: date | None = None) -> Plan:
    _refuse_unsafe(state)
    schema = state.schema
    today = today or datetime.now(UTC).date()
    steps: list[Step] = []
    notes: list[str] = []

    if not state.schema_exists:
        steps.append(Step("create_schema", f"create schema {schema}", (q.create_schema(schema),)))
    sessions = resolve(state, session_columns(contract), today)
    steps += sessions.before
    if state.ledger is None:
        steps.append(Step("create_ledger", "create Prisma's _prisma_migrations table",
                          (q.create_ledger(schema),)))
    steps += _close_failed_rows(state, migrations, notes)

    ahead = _ahead(state, migrations)
    present = contract.keys() & sessions.live.keys()
    validations: tuple[Step, ...] = ()
    unresolved: tuple[str, ...] = ()
    if ahead:
        notes.append(f"the ledger holds migrations newer than the job's ({', '.join(ahead)}):"
                     " the app moved on, so its schema is not healed to the job's contract")
    elif present:
        healing = heal(contract, sessions.live, schema, state.unvalidated_fks)
        steps += healing.steps
        validations, unresolved = healing.validations, healing.unresolved
    if sessions.merge:
        steps.append(sessions.merge)

    pending = [m for m in migrations if not state.applied(m.name)]
    if not present and not ahead:
        steps += _reapply_baseline(migrations, contract, pending)
    for m in pending:
        steps.append(Step("apply_migration", f"apply {m.name}", (q.script(m.sql),), m.name))
        steps.append(Step("record_migration", f"record {m.name} in _prisma_migrations",
                          (q.record_migration(schema, new_id(), m.name, m.checksum),), m.name, True))
    return Plan(tuple(steps), validations, tuple(notes), unresolved)


def refuse_old_server(server_version: int) -> None:
    """Checked first, right after connecting: older servers lack settings the job makes."""
    if server_version < MIN_SERVER_VERSION:
        major = server_version // 10000
        raise NeedsHuman(f"PostgreSQL {major} is not supported: the job needs PostgreSQL 12 or newer")


def _refuse_unsafe(state: DatabaseState) -> None:
    refuse_old_server(state.server_version)
    if state.in_recovery:
        raise NeedsHuman("the server is a read-only standby (in recovery): point the URL at the primary")
    if state.read_only:
        raise NeedsHuman("the session is read-only (default_transaction_read_only is on):"
                         " use a role or server that can write")


def _close_failed_rows(state: DatabaseState, migrations: Sequence[Migration], notes: list[str]) -> list[Step]:
    """Failed rows block every later `prisma migrate deploy` (P3009): close those we know."""
    shipped = {m.name for m in migrations}
    steps = []
    for row in state.ledger or ():
        if not row.failed:
            continue
        if row.migration_name in RETIRED or row.migration_name in shipped:
            steps.append(Step("close_failed_row",
                              f"mark failed ledger row of {row.migration_name} as rolled back",
                              (q.close_failed_row(state.schema, row.id),), row.migration_name, True))
        else:
            notes.append(f"failed ledger row of unknown migration {row.migration_name} left alone"
                         " (prisma migrate deploy will report P3009 until it is resolved)")
    return steps


def _ahead(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Applied migrations the job does not know, named after its newest one."""
    newest = max(m.name for m in migrations)
    known = {m.name for m in migrations} | RETIRED
    return sorted({r.migration_name for r in state.ledger or ()
                   if r.applied and r.migration_name not in known and r.migration_name > newest})


def _reapply_baseline(migrations: Sequence[Migration], contract: Schema,
                      pending: Sequence[Migration]) -> list[Step]:
    """Recorded, yet none of its tables is there (dropped by hand): run the idempotent baseline again."""
    baseline = next((m for m in migrations if m.name.endswith(BASELINE_SUFFIX)), None)
    if baseline is None or baseline in pending or not contract:
        return []
    return [Step("reapply_baseline", f"re-run {baseline.name}: it is recorded, but none of the contract's"
                 f" {len(contract)} tables exists", (q.script(baseline.sql),), baseline.name)]
