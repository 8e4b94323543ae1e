"""Planning: a pure function from what inspection found to the steps that fix it.

No database here.  ``make_plan`` is called twice in a run, before the lock (to
take the fast path when there is nothing to do) and again under the lock, so
what is applied is planned from what is there at that moment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from job import statements as q
from job.errors import NeedsHuman
from job.migrations import RETIRED, Migration
from job.state import DatabaseState

MIN_SERVER_VERSION = 120000
LOWER, UPPER = "session", "Session"
# Prisma's names for the Session table's primary key and index; the lowercase
# era left them as session_pkey / session_shop_idx.
SESSION_RENAMES = (("session_pkey", "Session_pkey"), ("session_shop_idx", "Session_shop_idx"))
BASELINE_SUFFIX = "_postgresql_baseline_migration"


@dataclass(frozen=True)
class Step:
    action: str  # stable name, logged as the ``action`` field
    summary: str  # one line for people
    statements: tuple[q.Statement, ...]
    migration: str | None = None  # the migration this step applies or records
    ledger_change: bool = False  # a ledger row written or closed

    def sql_text(self) -> str:
        return ";\n".join(s.as_string().strip().rstrip(";") for s in self.statements) + ";"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # things found and deliberately left alone

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


def make_plan(state: DatabaseState, migrations: Sequence[Migration], contract_tables: frozenset[str],
              new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> Plan:
    _refuse_unsafe(state)
    schema = state.schema
    steps: list[Step] = []
    notes: list[str] = []

    if not state.schema_exists:
        steps.append(Step("create_schema", f"create schema {schema}", (q.create_schema(schema),)))
    steps += _session_table_steps(state)
    if state.ledger is None:
        steps.append(Step("create_ledger", "create Prisma's _prisma_migrations table",
                          (q.create_ledger(schema),)))

    shipped = {m.name for m in migrations}
    for row in state.ledger or ():
        if not row.failed:
            continue
        if row.migration_name in RETIRED or row.migration_name in shipped:
            steps.append(Step("close_failed_row",
                              f"mark failed ledger row of {row.migration_name} as rolled back",
                              (q.close_failed_row(schema, row.id),), row.migration_name, True))
        else:
            notes.append(f"failed ledger row of unknown migration {row.migration_name} left alone"
                         " (prisma migrate deploy will report P3009 until it is resolved)")

    for m in migrations:
        if state.applied(m.name):
            continue
        steps.append(Step("apply_migration", f"apply {m.name}", (q.script(m.sql),), m.name))
        steps.append(Step("record_migration", f"record {m.name} in _prisma_migrations",
                          (q.record_migration(schema, new_id(), m.name, m.checksum),), m.name, True))

    steps += _heal_baseline(state, migrations, contract_tables, steps)
    return Plan(tuple(steps), tuple(notes))


def _refuse_unsafe(state: DatabaseState) -> None:
    if state.server_version < MIN_SERVER_VERSION:
        major = state.server_version // 10000
        raise NeedsHuman(f"PostgreSQL {major} is not supported: the job needs PostgreSQL 12 or newer")
    if state.in_recovery:
        raise NeedsHuman("the server is a read-only standby (in recovery): point the URL at the primary")
    if state.read_only:
        raise NeedsHuman("the session is read-only (default_transaction_read_only is on):"
                         " use a role or server that can write")
    if LOWER in state.tables and UPPER in state.tables:
        lower_rows = state.rows_in(LOWER) or 0
        if lower_rows:
            upper_rows = state.rows_in(UPPER) or 0
            raise NeedsHuman(
                f'both "{LOWER}" ({lower_rows} rows) and "{UPPER}" ({upper_rows} rows) exist in'
                f" schema {state.schema}: refusing to guess which sessions to keep",
                session_rows=lower_rows, Session_rows=upper_rows)


def _session_table_steps(state: DatabaseState) -> list[Step]:
    """The lowercase era's table comes back as "Session" before anything else runs.

    Done ahead of the baseline on purpose: the baseline would otherwise create an
    empty "Session" beside the populated "session".
    """
    if LOWER not in state.tables or UPPER in state.tables:
        return []
    statements = [q.rename_table(state.schema, LOWER, UPPER)]
    statements += [q.rename_index(state.schema, old, new) for old, new in SESSION_RENAMES
                   if old in state.relations and new not in state.relations]
    return [Step("rename_session_table", f'rename "{LOWER}" to "{UPPER}" with Prisma\'s key and index names',
                 tuple(statements))]


def _heal_baseline(state: DatabaseState, migrations: Sequence[Migration],
                   contract_tables: frozenset[str], planned: list[Step]) -> list[Step]:
    """Re-run the idempotent baseline when it is recorded but its tables are gone."""
    baseline = next((m for m in migrations if m.name.endswith(BASELINE_SUFFIX)), None)
    if baseline is None or any(s.migration == baseline.name for s in planned):
        return []
    present = state.tables | ({UPPER} if LOWER in state.tables else set())
    missing = sorted(contract_tables - present)
    if not missing:
        return []
    return [Step("reapply_baseline",
                 f"re-run {baseline.name} (recorded, but {len(missing)} contract tables are missing:"
                 f" {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''})",
                 (q.script(baseline.sql),), baseline.name)]
