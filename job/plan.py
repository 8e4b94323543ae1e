"""Planning: a pure function from what inspection found to the steps that fix it.

No database here.  The plan has two parts, as the runner applies them:

- ``prepare``: one short transaction before any migration: the schema, the
  app's repairs (``job.app_history``), the ledger table, failed ledger rows
  closed;
- ``healing``: each step its own short transaction (or, for CREATE/DROP INDEX
  CONCURRENTLY, none): INVALID indexes of the contract dropped (an interrupted
  concurrent build), then healing toward what the *recorded* migrations built
  (``target``), never toward a migration that is still pending;
- ``merge``: the app's session merge, in batches;
- ``migrations``: each pending migration, in name order, as its own unit with
  its ledger row, as `prisma migrate deploy` applies them.

Foreign keys and CHECKs added by healing are validated after, each on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from job import app_history
from job import statements as q
from job.errors import NeedsHuman
from job.migrations import Migration
from job.schemamodel import Catalog
from job.state import DatabaseState, LedgerRow
from job.steps import Step
from job.units import PROGRESS_TAG, Unit, cut, plan_units
from job.verify import edited

if TYPE_CHECKING:
    from job.lockestimate import Estimate

MIN_SERVER_VERSION = 120000
RETRY = "retry"  # in a validation's details: a retry of one whose rows refused it before


# The start of `logs` on a ledger row the job leaves failed after a file committed part of itself:
# running such a file again could apply its first part twice, so it is left for a human.
PARTIAL_TAG = "db-init: the file committed part of itself, then failed: "


@dataclass(frozen=True)
class Plan:
    prepare: tuple[Step, ...]  # one transaction, before anything else; a failure stops the run
    migrations: tuple[Step, ...]  # each pending migration, a unit of its own
    validations: tuple[Step, ...]  # after, each on its own; a failure is reported, not fatal
    notes: tuple[str, ...]  # things found and deliberately left alone
    unresolved: tuple[str, ...]  # differences from the contract the job will not change on its own
    healing: tuple[Step, ...] = ()  # after prepare, each its own short transaction; never fatal
    merge: tuple[Step, ...] = ()  # after healing (the merged table needs its columns), one transaction
    locks: tuple[Estimate, ...] = ()  # each statement of the pending migrations, weighed (job.lockguard)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.prepare + self.healing + self.merge + self.migrations

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def pending(self) -> bool:
        """`run` would change the database: a step to apply, or a constraint to validate (a table scan).
        The one definition: plan's exit code and JSON, ``plan.ready`` and ``run.finished`` all use it."""
        return bool(self.steps or self.validations)

    @property
    def owed(self) -> bool:
        """Pending work a database owes before it counts as converged: a step, or a validation no run has
        tried; retrying one whose rows refused it (``--heal always``) is not owed (fleet status)."""
        return bool(self.steps or any(RETRY not in v.details for v in self.validations))

    @property
    def migrations_applied(self) -> tuple[str, ...]:
        return tuple(s.migration for s in self.migrations if s.migration)

    @property
    def ledger_rows_repaired(self) -> int:
        return sum(1 for s in self.prepare if s.action == "close_failed_row")


EMPTY = Plan((), (), (), (), ())


def how_it_runs(plan: Plan, step: Step) -> str:
    """How ``step`` of ``plan`` will run, as the text plan heads each part (job.cli)."""
    if any(step is s for s in plan.prepare):
        return "the repairs, all in one transaction (a failure rolls them all back and stops the run)"
    if any(step is s for s in plan.healing):
        if step.outside_transaction:
            return "healing outside a transaction (CONCURRENTLY), each statement on its own; never fatal"
        return "healing, each step in its own transaction; never fatal"
    if any(step is s for s in plan.merge):
        return (f"the session merge: batches of {q.MERGE_BATCH_ROWS} ids, each in its own transaction,"
                ' then one transaction that stops writes to "session", copies the ids still missing and'
                " renames it")
    return migration_header(step)


def migration_header(step: Step) -> str:
    """How a pending migration will run: the one place that says it (for files run as several units)."""
    if step.units:
        return ("a migration PostgreSQL will not run as one transaction, in the fewest units it allows (each"
                " one transaction, or one statement outside any), its ledger row counting the statements"
                " committed")
    return "each migration in its own transaction with its ledger row, as `prisma migrate deploy` runs it"


def settled(state: DatabaseState, migrations: Sequence[Migration]) -> bool:
    """Nothing to do, judged from the ledger and a glance at the schema, without the contract.

    Every migration of the folder applied, no failed row the job would close, no INVALID
    index, no constraint left NOT VALID that no run tried to validate, app tables present,
    and nothing the app's history marks as worth a look.
    """
    if not state.schema_exists or state.ledger is None:
        return False
    shipped = {m.name for m in migrations}
    if any(not state.applied(m.name) for m in migrations):
        return False
    if any(r.failed and (r.migration_name in shipped or r.migration_name in app_history.RETIRED)
           for r in state.ledger):
        return False
    if state.invalid_indexes:
        return False
    if state.unvalidated - state.refused:  # added NOT VALID by a run that stopped before validating it
        return False
    if not state.tables - {q.LEDGER}:  # recorded, yet no table there: worth a look
        return False
    return not app_history.needs_look(state)


def heal_target(state: DatabaseState, migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    """The migrations whose end state healing aims at: those recorded, and the app's baseline rule."""
    through = app_history.heal_through(state, migrations)
    return tuple(m for m in migrations if state.applied(m.name) or m == through)


def make_plan(state: DatabaseState, migrations: Sequence[Migration], *, target: Catalog | None,
              contract: Catalog | None, new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
              today: date | None = None, retry_refused: bool = True,
              proven_absent: frozenset[str] = frozenset()) -> Plan:
    """``target``: what the recorded migrations built (None: not known, nothing is healed);
    ``contract``: what the whole folder builds; ``retry_refused``: validate again the constraints
    whose validation rows refused before (a table scan; the release Job's `--heal always` does);
    ``proven_absent``: migrations with a failed row of unknown outcome of which the catalog shows
    nothing (``unknown_outcome`` names the candidates): closed and run again."""
    refuse_unsafe(state)
    _refuse_partly_committed(state, migrations)
    resumed = _in_progress(state, migrations)
    schema = state.schema
    today = today or datetime.now(UTC).date()
    prepare: list[Step] = []
    notes = list(_ledger_notes(state, migrations))

    if not state.schema_exists:
        prepare.append(Step("create_schema", f"create schema {schema}", (q.create_schema(schema),)))
    sessions = app_history.resolve(state, contract, today)
    prepare += sessions.before
    if state.ledger is None:
        prepare.append(Step("create_ledger", "create Prisma's _prisma_migrations table",
                            (q.create_ledger(schema),)))
    prepare += _close_failed_rows(state, migrations, notes, resumed, proven_absent)
    dropped = _drop_invalid_indexes(state, contract)

    healing: tuple[Step, ...] = ()
    validations: tuple[Step, ...] = ()
    unresolved: tuple[str, ...] = ()
    gone = {str(s.details["index"]) for s in dropped}
    tables = {name: replace(t, indexes=tuple(i for i in t.indexes if i.name not in gone))
              for name, t in sessions.live.items()}
    live = Catalog(tables, state.catalog.enums, state.catalog.views, state.catalog.sequences)
    if ahead(state, migrations):
        notes.append("the ledger holds migrations newer than the folder's: the app moved on, so its schema"
                     " is not healed back to this folder's")
    elif target is not None:
        from job.heal import heal  # here: a no-op (every pod start) heals nothing, so never loads it
        through = app_history.heal_through(state, migrations)
        again = state.unvalidated if retry_refused else state.unvalidated - state.refused
        healed = heal(target, live, schema, again, rows=state.estimate,
                      needed_by=through.name if through else None)
        healing, validations, unresolved = healed.steps, healed.validations, healed.unresolved
        validations = tuple(replace(v, details={**v.details, RETRY: "its rows refused it before"})
                            if v.details.get("constraint") in state.refused else v for v in validations)
    else:
        notes.append("the contract is not known (its replay failed): nothing is healed")
    pending = [m for m in migrations if not state.applied(m.name)]
    units = tuple(_migration_unit(schema, m, new_id(), resumed.get(m.name)) for m in pending)
    return Plan(tuple(prepare), units, validations, tuple(notes), unresolved, (*dropped, *healing),
                (sessions.merge,) if sessions.merge else ())


def _refuse_partly_committed(state: DatabaseState, migrations: Sequence[Migration]) -> None:
    """A file that committed part of itself and failed cannot be run again safely: Prisma stops
    there too (P3009), and so does the job, saying what a human must decide."""
    shipped = {m.name for m in migrations}
    for row in state.ledger or ():
        if row.failed and row.migration_name in shipped and (row.logs or "").startswith(PARTIAL_TAG):
            why = (row.logs or "")[len(PARTIAL_TAG):][:200]
            raise NeedsHuman(f"{row.migration_name} committed part of itself, then failed ({why}): finish or"
                             " undo it by hand, then `prisma migrate resolve --applied` (or `--rolled-back`)",
                             migration=row.migration_name)


def _migration_unit(schema: str, m: Migration, row_id: str, resumed: LedgerRow | None = None) -> Step:
    """The ledger row started, the file, the row finished: as one transaction when PostgreSQL allows
    it (the file sent whole, as `prisma migrate deploy` 6 sends it); otherwise in units (job.units),
    the row counting the statements committed, or continuing a row a stopped run left."""
    units = cut(m.sql, done=resumed.applied_steps_count) if resumed else plan_units(m.sql)
    if units is None:
        return Step("apply_migration", f"apply {m.name}",
                    (q.record_started(schema, row_id, m.name, m.checksum), q.script(m.sql),
                     q.record_finished(schema, row_id)), m.name, True, details={"row_id": row_id})
    total = units[-1].last if units else (resumed.applied_steps_count if resumed else 0)
    details: dict[str, int | str] = {"row_id": resumed.id if resumed else row_id, "checksum": m.checksum,
                                     "statements": total, "units": len(units)}
    if resumed:
        details["resume_from"] = resumed.applied_steps_count
        summary = (f"continue {m.name} after its first {resumed.applied_steps_count} statements (a run"
                   f" stopped there), in {len(units)} unit{'s' if len(units) != 1 else ''}")
    else:
        summary = f"apply {m.name} in {len(units)} units: {units_reason(units)}"
    return Step("apply_migration", summary, tuple(q.script(u.text) for u in units), m.name, True,
                details=details, units=units)


def units_reason(units: Sequence[Unit]) -> str:
    """Why a file does not run as one transaction, in a few words."""
    reasons = sorted({u.why.split(":")[0].removesuffix(" runs only outside a transaction block")
                      for u in units if u.why})
    return "; ".join(reasons) + (" (each outside a transaction)" if any(not u.transaction for u in units)
                                  else "")


def _in_progress(state: DatabaseState, migrations: Sequence[Migration]) -> dict[str, LedgerRow]:
    """Rows the job left while running a file in units, its count of committed statements in them:
    the next run continues after them.  The file must be the one that ran (its checksum)."""
    by_name = {m.name: m for m in migrations}
    found: dict[str, LedgerRow] = {}
    for row in state.ledger or ():
        m = by_name.get(row.migration_name)
        if m is None or not row.failed or not (row.logs or "").startswith(PROGRESS_TAG) \
                or state.applied(m.name):
            continue
        if row.checksum != m.checksum:
            raise NeedsHuman(f"{m.name} was applied in part (its first {row.applied_steps_count} statements"
                             " are committed), and its file has changed since: the job will not run the new"
                             " file over the old one's first part; decide by hand, then `db-init resolve"
                             f" --applied {m.name}` (or `--rolled-back`)", migration=m.name)
        found[m.name] = row
    return found


def unknown_outcome(state: DatabaseState, migrations: Sequence[Migration]) -> tuple[str, ...]:
    """Pending migrations whose failed ledger row may hide committed work: a run stopped or failed
    part-way, and nothing says how far it got (Prisma 7 commits a file statement by statement)."""
    shipped = {m.name for m in migrations}
    found = []
    for row in state.ledger or ():
        name, logs = row.migration_name, row.logs or ""
        if (row.failed and name in shipped and not state.applied(name) and not logs.startswith(PROGRESS_TAG)
                and not logs.startswith(PARTIAL_TAG) and not app_history.runs_again_safely(name)):
            found.append(name)
    return tuple(dict.fromkeys(found))


def refuse_old_server(server_version: int) -> None:
    """Checked first, right after connecting: older servers lack settings the job makes."""
    if server_version < MIN_SERVER_VERSION:
        major = server_version // 10000
        raise NeedsHuman(f"PostgreSQL {major} is not supported: the job needs PostgreSQL 12 or newer")


def refuse_unsafe(state: DatabaseState) -> None:
    refuse_old_server(state.server_version)
    if state.in_recovery:
        raise NeedsHuman("the server is a read-only standby (in recovery): point the URL at the primary")
    if state.read_only:
        raise NeedsHuman("the session is read-only (default_transaction_read_only is on):"
                         " use a role or server that can write")


def _close_failed_rows(state: DatabaseState, migrations: Sequence[Migration], notes: list[str],
                       resumed: dict[str, LedgerRow], proven_absent: frozenset[str]) -> list[Step]:
    """Failed rows block every later `prisma migrate deploy` (P3009): close those that are safe to close.

    Safe: a retired migration's, one whose migration another row records as applied, one the app's
    history knows runs again harmlessly, and one of which the catalog shows nothing.  A row the job
    left while running a file in units is continued, not closed.  Any other failed row of a shipped
    migration may hide committed work: the run stops there, as Prisma does (P3009), saying how to decide.
    """
    shipped = {m.name for m in migrations}
    steps = []
    for row in state.ledger or ():
        name = row.migration_name
        if not row.failed or (name in resumed and resumed[name].id == row.id):
            continue
        if name in shipped and name not in proven_absent and not state.applied(name) \
                and name in unknown_outcome(state, migrations):
            raise NeedsHuman(_unknown_outcome_text(row), migration=name)
        if name in app_history.RETIRED or name in shipped:
            steps.append(Step("close_failed_row", f"mark failed ledger row of {name} as rolled back",
                              (q.close_failed_row(state.schema, row.id),), name, True))
        else:
            notes.append(f"failed ledger row of unknown migration {name} left alone"
                         " (prisma migrate deploy will report P3009 until it is resolved)")
    return steps


def _unknown_outcome_text(row: LedgerRow) -> str:
    what = (f"it failed with: {' '.join(row.logs.split())[:200]}" if row.logs
            else "no outcome is recorded (the run that applied it stopped)")
    return (f"{row.migration_name} has a failed ledger row ({what}); part of it may be committed, and the job"
            " cannot prove that none is, so running it again could apply it twice: check the database, then"
            f" `db-init resolve --rolled-back {row.migration_name}` (nothing of it is there: it runs again)"
            f" or `db-init resolve --applied {row.migration_name}` (it is all there)")


def _drop_invalid_indexes(state: DatabaseState, contract: Catalog | None) -> list[Step]:
    """An INVALID index of the contract is what an interrupted CREATE INDEX CONCURRENTLY leaves:
    never used by queries, and in the way of the build that runs again."""
    if contract is None:
        return []
    ours = {i.name for t in contract.tables.values() for i in t.indexes}
    return [Step("drop_invalid_index", f'drop INVALID index "{i.name}" on "{t.name}" (an interrupted'
                 " concurrent build); it is built again", (q.drop_index_concurrently(state.schema, i.name),),
                 details={"table": t.name, "index": i.name}, outside_transaction=True)
            for t in state.live.values() for i in t.indexes if not i.valid and i.name in ours]


def ahead(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Applied migrations the folder does not have, named after its newest one."""
    known = {m.name for m in migrations} | app_history.RETIRED
    newest = max((m.name for m in migrations), default="")
    return sorted({r.migration_name for r in state.ledger or ()
                   if r.applied and r.migration_name not in known and r.migration_name > newest})


def _ledger_notes(state: DatabaseState, migrations: Sequence[Migration]) -> list[str]:
    """Worth knowing, not acted on: newer rows (the app moved on) and files edited after they ran."""
    notes = []
    if newer := ahead(state, migrations):
        notes.append(f"the ledger holds migrations newer than the folder's ({', '.join(newer)}): left alone")
    return notes + edited(state, migrations)
