"""One run, top to bottom: config → connect → inspect → plan → lock → re-inspect → apply,
migration by migration → record → verify → report.

``plan`` and ``run`` share every stage but the last, so what is shown is what is done.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from job import app_history, units
from job import statements as q
from job.config import Config
from job.connect import wait_for_database
from job.database import Database, DatabaseFault, ReplayFault
from job.errors import DatabaseUnavailable, JobError, LockBusy, MigrationFailed, MissingDatabase, NeedsHuman
from job.lock import LockWait, session_lock
from job.migrations import Migration, load_migrations, same_timestamps
from job.plan import (
    EMPTY,
    MIN_SERVER_VERSION,
    PARTIAL_TAG,
    Plan,
    heal_target,
    make_plan,
    refuse_old_server,
    refuse_unsafe,
    settled,
    unknown_outcome,
)
from job.schemamodel import Catalog
from job.sqllexer import Statement
from job.state import DatabaseState
from job.steps import Step
from job.units import Unit
from job.verify import ledger_differences, notes

T = TypeVar("T")
_NO_TRANSACTION_BLOCK = "25001"
_UNDEFINED_TYPE = re.compile(r'type "([^"]+)" does not exist')
# What the replay may refuse in a pending file that `prisma migrate deploy` would refuse too:
# a syntax error (SQLite's AUTOINCREMENT, PRAGMA), or a type PostgreSQL does not have (DATETIME).
_BAD_INPUT = {"42601", "42704"}
_UNIQUE_VIOLATION = "23505"
# A long concurrent build reports its progress: first after this long, then this often.
PROGRESS_FIRST_S, PROGRESS_EVERY_S = 5.0, 10.0
_ROWS_BREAK_IT = {"23503", "23514", "23502"}  # a foreign key, CHECK or NOT NULL that rows violate
_NOT_CREATED = "creating it is off (--no-create-database or DB_INIT_CREATE_DATABASE=false)"
# Why a validation that rows did not refuse stopped; none of it is marked: the next run tries again.
_NOT_NOW = {"55P03": "its table stayed locked past lock_timeout; the next run tries again",
            "57014": "the validation was cancelled; the next run tries again",
            "40P01": "a deadlock with another session; the next run tries again"}


@dataclass(frozen=True)
class RunResult:
    plan: Plan  # what was applied (run) or would be (plan)
    applied: bool  # False for a dry run or when there was nothing to do
    differences: tuple[str, ...] = ()  # verify's findings; after a run, the drift left
    orphans: int | None = 0  # rows left pointing at nothing by constraints that could not be validated
    # (None: some could not be counted)
    migrations_applied: tuple[str, ...] = ()  # what this run committed (not what another runner did)


def execute(config: Config, *, mode: str, log: Any, allow_extra: bool = False,
            resolve: tuple[str, str] | None = None) -> RunResult:
    """``mode``: "run" applies; "plan" stops before the lock; "verify" compares only; "resolve" records
    ``resolve`` = ("applied" | "rolled_back", migration) in the ledger, as `prisma migrate resolve`."""
    migrations = load_migrations(config.migrations_dir)
    for names in same_timestamps(migrations):
        log.warning("migrations.same_timestamp", migrations=list(names),
                    note="applied in name order, as Prisma does")
    if config.target.dropped_params:
        log.info("config.url_params_ignored", params=list(config.target.dropped_params))
    try:
        db = wait_for_database(config.target, budget_s=config.connect_timeout,
                               application_name=config.application_name, log=log,
                               create=config.create_database and mode in ("run", "plan"),
                               dry_run=mode != "run",
                               why_not=_NOT_CREATED if not config.create_database
                               else f"{mode} creates no database (`run` creates it)")
    except MissingDatabase as missing:
        if mode == "plan" and missing.fields.get("creatable"):
            return _plan_new_database(missing, config, migrations, log)
        raise
    job: _Job | None = None
    try:
        refuse_old_server(db.server_version)
        if mode == "resolve" and resolve is not None:
            from job.resolve import resolve_row
            pooled = _pooled(db, config, log)
            wait = LockWait(db, config.lock_timeout, log)
            with nullcontext() if pooled else session_lock(db, wait, log):
                return RunResult(EMPTY, applied=resolve_row(db, config.target.schema, migrations, *resolve,
                                                            pooled=pooled, log=log))
        if mode not in ("verify", "resolve") and config.heal == "pending":
            # Every pod start asks this first: one round trip, no session setup, no lock.
            glanced = db.glance(config.target.schema)
            if glanced is not None:
                refuse_unsafe(glanced)
                if settled(glanced, migrations):
                    plan = Plan((), (), (), tuple(notes(glanced, migrations)), ())
                    announce(plan, config.target.schema, log)
                    return RunResult(plan, applied=False)
        job = _Job(db, config, migrations, log, pooled=_pooled(db, config, log))
        if mode == "verify":
            return job.verify(allow_extra)
        plan = job.plan()
        # Constraints left NOT VALID by a run that stopped before validating them are validated by the
        # next; those whose rows refused it only with --heal always (each try scans the table).
        if mode == "plan" or not plan.pending:
            return RunResult(plan, applied=False)
        if plan.locks:  # the opt-in guard of job.lockguard: before the lock, nothing applied
            from job.lockguard import refuse_blocking
            refuse_blocking(plan, config)
        return job.apply()
    except DatabaseFault as fault:  # outside a unit of work (inspection, the replay): nothing half-done
        committed = list(job.committed) if job else []
        if fault.connection_lost:
            raise DatabaseUnavailable(f"connection lost: {fault.message}; {_committed_text(committed)}",
                                      sqlstate=fault.sqlstate, committed=committed) from None
        if fault.retryable:
            raise DatabaseUnavailable(f"database call failed: {fault.message}",
                                      sqlstate=fault.sqlstate) from None
        raise NeedsHuman(f"the database refused a catalog query: {fault.message}"
                         f" (SQLSTATE {fault.sqlstate})", sqlstate=fault.sqlstate) from None
    finally:
        db.close()


def _plan_new_database(missing: MissingDatabase, config: Config, migrations: Sequence[Migration],
                       log: Any) -> RunResult:
    """``plan`` where ``run`` would create the database (the role may, no pooler is in the way): the plan
    of an empty one (a fresh copy of template1, whose ``public`` schema exists), the whole folder pending.
    Nothing is created."""
    schema = config.target.schema
    # wait_for_database checked the server's version on a maintenance database; the plan checks only that.
    state = DatabaseState(server_version=MIN_SERVER_VERSION, in_recovery=False, read_only=False,
                          schema=schema, schema_exists=schema == "public", tables=frozenset(),
                          relations=frozenset(), ledger=None)
    plan = make_plan(state, migrations, target=Catalog(), contract=None)
    create = q.create_database(str(missing.fields["database"])).as_string()
    note = (f"{missing.reason.partition('; ')[0]}: run creates it ({create}, as prisma migrate deploy does),"
            " then applies every migration below; planned as on an empty database")
    plan = replace(plan, notes=(note, *plan.notes))
    announce(plan, schema, log)
    return RunResult(plan, applied=False)


def _pooled(db: Database, config: Config, log: Any) -> bool:
    """Behind a pooler the lock is taken per transaction and no session setting is made.

    Session settings would stay on a server connection that the pooler hands to
    another client next, and so would a session lock.
    """
    pooled = config.target.pgbouncer or db.behind_pooler()
    if pooled:
        log.info("db.pooler", lock_scope="transaction",
                 reason="pgbouncer=true in the URL" if config.target.pgbouncer
                 else "the server's backend pid differs from the one the connection announced")
    else:
        db.configure_session(config.target.schema)
    return pooled


def announce(plan: Plan, schema: str, log: Any) -> None:
    """What was planned, once per run: the notes, the drift left for a human, the steps."""
    for note in plan.notes:
        log.warning("plan.note", note=note)
    for line in plan.unresolved:
        log.warning("drift.found", difference=line, note="left for a human; not changed")
    log.info("plan.ready", schema=schema, steps=len(plan.steps), actions=[s.action for s in plan.steps],
             validations=len(plan.validations), pending=plan.pending)


class _Busy(Exception):
    """The transaction-scoped lock is held by someone else: roll back and wait."""


@dataclass
class _Job:
    db: Database
    config: Config
    migrations: tuple[Migration, ...]
    log: Any
    pooled: bool
    _replays: dict[tuple[str, ...], Catalog | None] = field(default_factory=dict)
    committed: list[str] = field(default_factory=list)  # what this run has committed, in order
    validated: int = 0  # constraints this run validated, or marked as refused by their rows
    applied_migrations: list[str] = field(default_factory=list)  # migrations this run applied
    _progress: Progress = field(default_factory=lambda: Progress(0, 0))  # of the file being run in units
    _spanning: bool = False  # behind a pooler: a second connection holds the lock across statements

    @property
    def schema(self) -> str:
        return self.config.target.schema

    # --- inspect and plan -----------------------------------------------------------------------

    def inspect(self) -> DatabaseState:
        return self.db.inspect(self.schema, app_history.COUNTED)

    def verify(self, allow_extra: bool) -> RunResult:
        state = self.inspect()
        contract = self.contract(self.migrations)
        found = [] if contract is None else _diff(contract, state.catalog,
                                                          allowed_extra_tables=_extras(state))
        if allow_extra:
            found = [ln for ln in found if "unexpected " not in ln]
        if contract is None:
            found.append("the contract could not be built: the migrations folder does not replay")
        found += ledger_differences(state, self.migrations)
        return RunResult(EMPTY, applied=False, differences=tuple(found))

    def plan(self, *, state: DatabaseState | None = None, quiet: bool = False) -> Plan:
        state = state or self.inspect()
        refuse_unsafe(state)  # before the replay, which would meet a read-only session less clearly
        if self.config.heal == "pending" and settled(state, self.migrations):
            plan = Plan((), (), (), tuple(notes(state, self.migrations)), ())
        else:
            pending = {m.name for m in self.migrations if not state.applied(m.name)}
            target = self.contract(heal_target(state, self.migrations), pending)  # first: one replay
            plan = make_plan(state, self.migrations, target=target,
                             contract=self.contract(self.migrations, pending),
                             retry_refused=self.config.heal == "always",
                             proven_absent=frozenset(n for n in unknown_outcome(state, self.migrations)
                                                     if self._nothing_of(n, state)))
        if not quiet:
            if plan.migrations:  # job.lockguard: each pending statement's lock against its table's rows
                from job.lockguard import weigh_locks
                plan = weigh_locks(plan, self.db, state, self.migrations, self.config, self.log)
            announce(plan, self.schema, self.log)
        return plan

    def _nothing_of(self, name: str, state: DatabaseState) -> bool:
        """Whether the catalog shows nothing of a migration whose failed row hides how far it got: every
        statement of it changes the schema only, and each difference it makes (what the folder's replay
        builds before and after it) is still a difference of the live schema."""
        at = next(i for i, m in enumerate(self.migrations) if m.name == name)
        if not units.only_ddl(self.migrations[at].sql):
            return False
        before, after = self.contract(self.migrations[:at]), self.contract(self.migrations[:at + 1])
        if before is None or after is None:
            return False
        live = state.catalog  # an INVALID index is no index: an interrupted build left it, nothing uses it
        tables = {n: replace(t, indexes=tuple(i for i in t.indexes if i.valid))
                  for n, t in live.tables.items()}
        made = set(_diff(after, before))
        return made <= set(_diff(after, replace(live, tables=tables)))

    def contract(self, migrations: Sequence[Migration], pending: frozenset[str] | set[str] = frozenset()
                 ) -> Catalog | None:
        """What ``migrations`` build, replayed by PostgreSQL in a scratch schema (once per run).

        A pending file PostgreSQL cannot even parse (or whose types it lacks) stops the run
        before anything is applied; any other replay failure leaves the contract unknown,
        which only turns healing and the final check off: the migrations still run.
        """
        key = tuple(m.name for m in migrations)
        if not key:
            return Catalog()
        if key in self._replays:
            return self._replays[key]
        # One replay serves both the folder and a prefix of it (the recorded migrations).
        names = [m.name for m in self.migrations]
        whole = key == tuple(names[:len(key)])
        scripts = self.migrations if whole else tuple(migrations)
        try:
            replay = self.db.replay([(m.name, m.sql) for m in scripts],
                                    lock_timeout_ms=int(self.config.ddl_lock_timeout * 1000),
                                    statement_timeout_ms=int(self.config.statement_timeout * 1000),
                                    home=self.schema, pooled=self.pooled,
                                    checkpoints=(len(key),) if whole else ())
        except ReplayFault as refused:
            self._refuse_bad_input(refused, pending)
            self.log.warning("contract.unavailable", migration=refused.migration,
                             sqlstate=refused.fault.sqlstate, reason=refused.fault.message,
                             note="migrations still run; healing and the final check are off")
            self._replays[key] = None
            return None
        if replay.skipped:
            self.log.info("contract.replay_skipped", migrations=list(replay.skipped),
                          note="statements that run only outside a transaction and build no schema object")
        if whole:
            self._replays[tuple(names)] = replay.catalogs[len(scripts)]
        self._replays[key] = replay.catalogs[len(key) if whole else len(scripts)]
        return self._replays[key]

    def _refuse_bad_input(self, refused: ReplayFault, pending: frozenset[str] | set[str]) -> None:
        fault = refused.fault
        if refused.migration not in pending or fault.sqlstate not in _BAD_INPUT:
            return
        missing = _UNDEFINED_TYPE.search(fault.message)
        if fault.sqlstate == "42704" and (missing is None or self.db.type_exists(self.schema, missing[1])):
            return  # the type exists where the migration will run: the scratch schema just lacks it
        where = f"{refused.migration}/migration.sql" + (f" line {refused.line}" if refused.line else "")
        raise MigrationFailed(f"{where}: {fault.message} (SQLSTATE {fault.sqlstate}); PostgreSQL refuses"
                              " this file, found before anything ran: nothing applied",
                              migration=refused.migration, sqlstate=fault.sqlstate, committed=[])

    # --- apply ----------------------------------------------------------------------------------

    def _transaction(self, *, statement_timeout: bool = True) -> Any:
        return self.db.transaction(schema=self.schema,
                                   lock_timeout_ms=int(self.config.ddl_lock_timeout * 1000),
                                   statement_timeout_ms=int(self.config.statement_timeout * 1000)
                                   if statement_timeout else 0)

    def apply(self) -> RunResult:
        """Under the lock: re-inspect and re-plan (another runner may have done the work), then
        the repairs in one transaction, each migration in its own, the validations, the check."""
        wait = LockWait(self.db, self.config.lock_timeout, self.log)  # one budget for every wait
        with nullcontext() if self.pooled else session_lock(self.db, wait, self.log):
            plan = self._prepare(wait)
            for unit in plan.migrations:
                self._migrate(unit, wait)
            orphans = self._validate(plan)
            drift = self._check() if plan.steps else ()
        if not plan.pending:
            self.log.info("apply.nothing_left", reason="another runner applied everything meanwhile")
        return RunResult(plan, applied=bool(plan.steps) or self.validated > 0, differences=drift,
                         orphans=orphans, migrations_applied=tuple(self.applied_migrations))

    def _prepare(self, wait: LockWait) -> Plan:
        """The plan, made again under the lock; its repairs committed in one transaction, then each
        healing step in its own short one (a failure there is reported, never fatal: `prisma migrate
        deploy` would not have stopped on it), then the session merge."""
        plan = self._repaired(wait)
        skipped = [line for step in plan.healing if (line := self._heal_one(step, wait))]
        for step in plan.merge:
            self._merge(step, wait)
        if skipped:
            plan = replace(plan, unresolved=plan.unresolved + tuple(skipped))
        return plan

    def _repaired(self, wait: LockWait) -> Plan:
        """The repairs of a plan made under the lock.  A session table planned as empty that gained a
        row before its drop (the guard of q.drop_if_empty refuses it; nothing applied) is planned
        again, within the lock budget: with rows in both tables, it is merged instead."""
        deadline, attempt = wait.started + self.config.lock_timeout, 0
        while True:
            attempt += 1
            try:
                return self._repair_once(wait)
            except MigrationFailed as failed:
                if failed.fields.get("sqlstate") != q.GAINED_ROWS:
                    raise
                delay = min(0.2 * 2 ** attempt, 5.0) * random.uniform(0.5, 1.5)
                if time.monotonic() + delay >= deadline:
                    raise LockBusy(f"a session table planned as empty kept gaining rows until the lock budget"
                                   f" ran out ({failed.reason})", attempts=attempt,
                                   committed=list(self.committed)) from None
                self.log.warning("apply.replan", attempt=attempt, delay_s=round(delay, 2),
                                 sqlstate=q.GAINED_ROWS, reason=failed.reason,
                                 note="an empty table gained rows before its drop: planned again")
                time.sleep(delay)

    def _repair_once(self, wait: LockWait) -> Plan:
        if not self.pooled:
            plan = self.plan(quiet=True)
            self._repairs(plan.prepare, wait)
            return plan
        holder: list[Plan] = []

        def replan_and_repair() -> None:  # behind a pooler the lock lasts as long as this transaction
            holder[:] = [self.plan(quiet=True)]
            self.db.execute([s for st in holder[0].prepare for s in st.statements])

        started = time.monotonic()
        self._unit(Step("prepare", "the repairs", ()), wait, replan_and_repair, steps=None, began=started)
        self._log_applied(holder[0].prepare, started)
        return holder[0]

    def _repairs(self, steps: Sequence[Step], wait: LockWait) -> None:
        statements = [s for step in steps for s in step.statements]
        if statements:
            self._unit(Step("prepare", "the repairs", tuple(statements)), wait,
                       lambda: self.db.execute(statements), steps=steps)

    def _heal_one(self, step: Step, wait: LockWait) -> str | None:
        return self._outside(step, wait) if step.outside_transaction else self._heal(step, wait)

    def _heal(self, step: Step, wait: LockWait) -> str | None:
        """One healing step in its own transaction; what PostgreSQL refuses (duplicates under a
        unique key, NOT NULL over rows) is reported and left for a human."""
        try:
            self._unit(step, wait, lambda: self.db.execute(step.statements), steps=(step,))
        except (MigrationFailed, LockBusy) as refused:
            self.log.warning("heal.skipped", action=step.action, summary=step.summary,
                             sqlstate=refused.fields.get("sqlstate"), reason=refused.reason,
                             note="left for a human; the run goes on")
            return f"{step.summary}: refused by PostgreSQL (SQLSTATE {refused.fields.get('sqlstate')})"
        return None

    def _outside(self, step: Step, wait: LockWait) -> str | None:
        """CREATE or DROP INDEX CONCURRENTLY: app reads and writes go on.  Outside a transaction block,
        with the migration lock held on (behind a pooler, by a second connection's open transaction),
        lock waits bounded and retried within the budget; the index's validity checked after: an
        INVALID index is dropped, never left behind.  Duplicate keys under a unique index stop the run
        when a pending migration builds that index too (it would fail the same way); otherwise, like any
        refusal here, they are reported and the run goes on."""
        index = str(step.details["index"])
        deadline = wait.started + self.config.lock_timeout
        started = time.monotonic()
        with self._lock_spanning_statements(wait):
            attempt = 0
            while True:
                attempt += 1
                found = self.db.index_state(self.schema, index)
                if found is not None and found[1]:
                    return self._skip(step, None, "another session is building this index right now")
                try:
                    with self._session_timeouts(), self._build_progress(step):
                        self.db.execute(step.statements)
                except DatabaseFault as fault:
                    if fault.connection_lost:
                        raise
                    self._drop_leftover(index)
                    if fault.sqlstate == _UNIQUE_VIOLATION and step.action == "create_index_concurrently":
                        return self._duplicates(step, fault)
                    try:
                        self._retry_or_raise(fault, step, attempt, deadline)
                    except (MigrationFailed, LockBusy) as refused:
                        return self._skip(step, refused.fields.get("sqlstate"), refused.reason)
                    continue
                break
            if step.action == "create_index_concurrently":
                found = self.db.index_state(self.schema, index)
                if found is None or not found[0]:  # IF NOT EXISTS met an INVALID index, or it went away
                    return self._skip(step, None, "the index is not valid after its build")
        self._log_applied([step], started)
        return None

    def _skip(self, step: Step, sqlstate: Any, reason: str) -> str:
        self.log.warning("heal.skipped", action=step.action, summary=step.summary, sqlstate=sqlstate,
                         reason=reason, note="left for a human; the run goes on")
        return f"{step.summary}: {reason}"

    def _drop_leftover(self, index: str) -> None:
        """A failed concurrent build leaves its index INVALID (and in the way of the next build)."""
        found = self.db.index_state(self.schema, index)
        if found is None or found[0] or found[1]:
            return
        try:
            with self._session_timeouts():
                self.db.execute([q.drop_index_concurrently(self.schema, index)])
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise
            self.log.warning("index.invalid_left", index=index, reason=fault.message,
                             note="the next run drops it and builds it again")

    def _duplicates(self, step: Step, fault: DatabaseFault) -> str:
        table, index = str(step.details["table"]), str(step.details["index"])
        columns = [c.strip() for c in str(step.details["columns"]).split(", ")]
        where = f'"{table}" ({", ".join(columns)})'
        counted = ""
        if all(columns):  # an expression index has no plain columns to group by
            keys, rows = self.db.fetch_one(q.duplicate_keys(self.schema, table, columns), {})
            counted = (f": {keys} key{'s are' if keys != 1 else ' is'} held by more than one row"
                       f" ({rows} rows)")
        line = (f'unique index "{index}" cannot be built on {where}{counted}; nothing was dropped or'
                " changed in the rows")
        if "needed_by" in step.details:
            raise NeedsHuman(f"{line}; {step.details['needed_by']} builds this index too and would fail the"
                             " same way: merge or remove the duplicates, then run again",
                             sqlstate=fault.sqlstate, committed=list(self.committed))
        return self._skip(step, fault.sqlstate, line)

    @contextmanager
    def _lock_spanning_statements(self, wait: LockWait) -> Iterator[None]:
        """Directly connected, the session lock is held already.  Behind a transaction pooler, a second
        connection holds the transaction-scoped lock in an open transaction that does nothing else: it
        holds no snapshot, so the concurrent build does not wait for it."""
        if not self.pooled:
            yield
            return
        holder = Database.open({"connect_timeout": "10", **self.config.target.conninfo,
                                "application_name": self.config.application_name})
        try:
            holder.begin()
            while not holder.try_xact_lock():
                wait.pause()
            self._spanning = True
            yield
        finally:
            self._spanning = False
            holder.close()  # the transaction ends with the connection: the lock is released

    @contextmanager
    def _session_timeouts(self) -> Iterator[None]:
        """lock_timeout for a statement outside a transaction block: a session setting, reset after.
        Behind a pooler no session setting is made (it would stay on a server connection that others
        get next): the build waits as the server's settings say, blocking no app query while it does."""
        if self.pooled:
            yield
            return
        self.db.execute([q.session_timeouts(int(self.config.ddl_lock_timeout * 1000), 0)])
        try:
            yield
        finally:
            self.db.execute(q.RESET_TIMEOUTS)

    @contextmanager
    def _build_progress(self, step: Step) -> Iterator[None]:
        """On a long build, its progress from pg_stat_progress_create_index every few seconds."""
        if step.action != "create_index_concurrently" or self.pooled:  # the pooler hides the server pid
            yield
            return
        done = threading.Event()
        pid = self.db.backend_pid

        def report() -> None:
            if done.wait(PROGRESS_FIRST_S):
                return
            try:
                watcher = Database.open({"connect_timeout": "5", **self.config.target.conninfo,
                                         "application_name": f"{self.config.application_name} progress"})
            except DatabaseFault:
                return
            try:
                while True:
                    row = watcher.index_progress(pid)
                    if row:
                        phase, blocks_done, blocks_total, tuples_done, tuples_total, *_ = row
                        self.log.info("index.progress", index=step.details["index"],
                                      table=step.details["table"],
                                      phase=phase, blocks_done=blocks_done, blocks_total=blocks_total,
                                      tuples_done=tuples_done, tuples_total=tuples_total,
                                      elapsed_s=round(time.monotonic() - began, 1))
                    if done.wait(PROGRESS_EVERY_S):
                        return
            except DatabaseFault:
                return
            finally:
                watcher.close()

        began = time.monotonic()
        thread = threading.Thread(target=report, name="index-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _merge(self, step: Step, wait: LockWait) -> None:
        """The two session tables: copied in batches, each its own short transaction; then, in one
        last transaction, writes to the old table stopped, the ids still missing copied (an old pod's
        rows written meanwhile) and the old table renamed aside: no row written to it is left
        behind.  Interrupted, the next run copies only the ids still missing."""
        batch, stop_writes, last_copy, rename = step.statements
        started = time.monotonic()
        after: str | None = None
        seen_total = copied_total = batches = 0
        while True:
            fetch = functools.partial(self.db.fetch_one, batch, {"after": after})
            last, seen, copied = self._unit(step, wait, fetch, steps=None)
            if not seen:
                break
            after, batches = last, batches + 1
            seen_total, copied_total = seen_total + seen, copied_total + copied
            self._repairs_committed()
            self.log.debug("merge.batch", batch=batches, rows_read=seen, rows_copied=copied)

        def finish() -> int:
            self.db.execute([stop_writes])
            late = int(self.db.fetch_one(last_copy, {})[0])
            self.db.execute([rename])
            return late

        last = time.monotonic()
        late = self._unit(step, wait, finish, steps=None)
        self.log.info("step.applied", action=step.action, summary=step.summary, transaction_ms=round(
            (time.monotonic() - started) * 1000, 1), **{**step.details, "rows_copied": copied_total + late,
                                                        "rows_read": seen_total, "batches": batches,
                                                        "rows_copied_last": late, "last_transaction_ms":
                                                        round((time.monotonic() - last) * 1000, 1)})
        self._repairs_committed()

    def _unit(self, step: Step, wait: LockWait, body: Callable[[], T], *, steps: Sequence[Step] | None,
              began: float | None = None, statement_timeout: bool = True) -> T:
        """One transaction with bounded lock waits; rolled back and retried with backoff while
        tables or the lock stay busy, so app queries never queue behind it for longer than the
        DDL lock_timeout."""
        deadline = wait.started + self.config.lock_timeout
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                with self._transaction(statement_timeout=statement_timeout):
                    if self.pooled and not self._spanning:
                        if not self.db.try_xact_lock():
                            raise _Busy
                        wait.acquired("transaction")
                    result = body()
            except _Busy:
                wait.pause()
                continue
            except DatabaseFault as fault:
                failed = _step_of(steps, fault.statement) if steps else step
                self._retry_or_raise(fault, failed, attempt, deadline)
                continue
            if steps:
                self._log_applied(steps, began or started)
            return result

    def _log_applied(self, steps: Sequence[Step], started: float) -> None:
        duration = round((time.monotonic() - started) * 1000, 1)
        for s in steps:
            event = "ledger.failed_row_closed" if s.action == "close_failed_row" else "step.applied"
            self.log.info(event, action=s.action, migration=s.migration, summary=s.summary,
                          transaction_ms=duration, **s.details)
        if steps:
            self._repairs_committed()

    def _repairs_committed(self) -> None:
        """The job's own repairs count once in ``committed``, however many transactions they took."""
        if self.committed[-1:] != ["repairs"]:
            self.committed.append("repairs")

    def _migrate(self, unit: Step, wait: LockWait) -> None:
        """One migration file and its ledger row: as one transaction when PostgreSQL allows it, else in
        the fewest units it allows (decided by the plan, from the file's statements)."""
        if unit.units:
            self._migrate_in_units(unit, wait)
            return
        name = unit.migration or ""
        started_row, script, finished_row = unit.statements
        ended: list[str] = []  # "commit" or "rollback": the file ended our transaction itself
        partial: list[DatabaseFault] = []

        def body() -> None:
            if self.pooled and self.db.count(q.applied_rows(self.schema, name)):
                ended.append("applied")  # another runner applied it between our transactions
                return
            self.db.execute([started_row])
            try:
                self.db.execute([script])
            except DatabaseFault as fault:
                fault.statement = 1
                if not self.db.in_transaction:  # the file committed, then a later statement of it failed
                    partial.append(fault)
                    fault.retryable = False  # never again: its first part is committed
                    fault.statement = None  # nor statement by statement: not a refusal of the whole file
                raise
            if not self.db.in_transaction:  # the file ended our transaction with a COMMIT or ROLLBACK
                kept = self.db.count(q.row_exists(self.schema, str(unit.details["row_id"])))
                ended.append("commit" if kept else "rollback")
                if not kept:  # its ROLLBACK took our started row with it: as Prisma, the file is applied
                    self.db.execute([started_row])
                else:
                    self.committed.append(f"{name} (committed by the file itself)")
            if self.db.execute([finished_row]) != 1:
                raise DatabaseFault("the ledger row of the migration was not found to finish", statement=2)

        started = time.monotonic()
        try:
            self._unit(unit, wait, body, steps=None, statement_timeout=False)
        except _RefusedInTransaction as refused:
            # PostgreSQL refused what the plan took for one transaction (a statement the plan does not
            # know): nothing of it ran.  Statement by statement then, as Prisma 7 runs every file.
            self.log.warning("migration.split_after_refusal", migration=name, sqlstate=refused.sqlstate,
                             note="run statement by statement, each in a transaction of its own where"
                                  " PostgreSQL allows one")
            migration = next(m for m in self.migrations if m.name == name)
            self._migrate_in_units(_one_by_one(unit, migration), wait)
            return
        except MigrationFailed:
            if not partial:
                raise
            fault = partial[0]
            self.db.execute([q.record_failure(self.schema, str(unit.details["row_id"]),
                                              PARTIAL_TAG + fault.message)])
            raise MigrationFailed(
                f"{name} committed part of itself (a COMMIT of its own), then failed: {fault.message}"
                f" (SQLSTATE {fault.sqlstate}); its ledger row stays failed and the job will not run it"
                f" again: a human decides (`db-init resolve`); {_committed_text(self.committed)}",
                action=unit.action, migration=name, sqlstate=fault.sqlstate,
                committed=[*self.committed, f"{name} (in part)"]) from None
        if ended == ["applied"]:
            self.log.info("apply.already_applied", migration=name, reason="another runner applied it")
            return
        if ended == ["commit"]:
            self.log.warning("migration.committed_itself", migration=name,
                             note="the file holds its own COMMIT: what ran before it was committed by it")
            self.committed.pop()
        elif ended == ["rollback"]:
            self.log.warning("migration.rolled_back_itself", migration=name,
                             note="the file holds its own ROLLBACK: what ran before it is not in the"
                                  " database; the migration is recorded as applied, as Prisma records it")
        self._applied(name)
        self.log.info("step.applied", action=unit.action, migration=name, summary=unit.summary,
                      duration_ms=round((time.monotonic() - started) * 1000, 1),
                      transaction="own" if ended == ["commit"] else "one")

    def _applied(self, name: str) -> None:
        self.committed.append(name)
        self.applied_migrations.append(name)

    def _migrate_in_units(self, step: Step, wait: LockWait) -> None:
        """A file PostgreSQL will not run as one transaction, unit by unit (job.units).

        The ledger row is written as started with the first unit (alone first, when that unit runs
        outside a transaction, so a crash fails closed); each unit then records in the row how many of
        the file's statements are committed, in its own transaction where it has one, and the last one
        finishes the row.  A run that stopped part-way is continued by the next from that count.
        """
        name = step.migration or ""
        row_id, total = str(step.details["row_id"]), int(step.details["statements"])
        done = int(step.details.get("resume_from", 0))
        resumed = "resume_from" in step.details
        started = time.monotonic()
        if resumed:
            self.log.warning("migration.resumed", migration=name, statements_committed=done,
                             statements=total, note="a run stopped part-way through this file: it goes on"
                                                    " after the statements committed")
        progress = self._progress = Progress(total, done)
        todo = list(step.units)
        with self._lock_spanning_statements(wait):
            if self.pooled and self.db.count(q.applied_rows(self.schema, name)):
                self.log.info("apply.already_applied", migration=name, reason="another runner applied it")
                return
            if not todo:  # every statement committed, only the row left to finish
                self._count(row_id, done, done, finish=True)
            number = 0
            while todo:
                unit = todo.pop(0)
                number += 1
                first_of_row = number == 1 and not resumed
                try:
                    if unit.transaction:
                        self._transactional_unit(step, unit, first_of_row, wait)
                    else:
                        self._outside_unit(step, unit, first_of_row, resumed and number == 1, wait)
                except _RefusedInTransaction as refused:
                    # PostgreSQL refused in a transaction what the plan did not foresee: nothing of the
                    # unit ran.  Its statements then go one by one, each alone outside a transaction
                    # where PostgreSQL refuses one (as Prisma 7 runs every statement).
                    number -= 1
                    todo = [*_split_refused(self._sql(name), unit, refused.sqlstate), *todo]
                    self.log.warning("migration.split_after_refusal", migration=name,
                                     sqlstate=refused.sqlstate, statement=unit.first + 1, line=unit.line)
                    continue
                except (MigrationFailed, LockBusy, DatabaseUnavailable) as failed:
                    raise self._unit_failed(step, unit, number, number + len(todo), progress,
                                            failed) from None
                progress.done = unit.last
                self.log.info("migration.unit_applied", migration=name, unit=number, units=number + len(todo),
                              statements=f"{unit.first + 1}-{unit.last}", line=unit.line,
                              transaction="one" if unit.transaction else "none")
        self._applied(name)
        self.log.info("step.applied", action=step.action, migration=name, summary=step.summary,
                      duration_ms=round((time.monotonic() - started) * 1000, 1), transaction="units",
                      units=len(step.units))

    def _transactional_unit(self, step: Step, unit: Unit, first_of_row: bool, wait: LockWait) -> None:
        name, row_id, progress = step.migration or "", str(step.details["row_id"]), self._progress
        last = unit.last == progress.total

        def body() -> None:
            if first_of_row:
                self.db.execute([q.record_started_in_units(self.schema, row_id, name,
                                                           str(step.details["checksum"]),
                                                           progress.logs(0))])
            try:
                self.db.execute([q.script(unit.text)])
            except DatabaseFault as fault:
                fault.statement = 1
                raise
            self._count(row_id, progress.done, unit.last, finish=last)

        self._unit(Step("apply_migration", f"{name} unit", (), name), wait, body, steps=None,
                   statement_timeout=False)

    def _outside_unit(self, step: Step, unit: Unit, first_of_row: bool, after_stop: bool,
                      wait: LockWait) -> None:
        """A statement PostgreSQL runs only outside a transaction block, as Prisma runs it: no
        statement_timeout; lock waits bounded by what is left of the lock budget (these statements
        take no lock an app read or write waits behind), unless the file set its own lock_timeout."""
        name, row_id, progress = step.migration or "", str(step.details["row_id"]), self._progress
        statement = unit.statements[0]
        if first_of_row:
            self.db.execute([q.record_started_in_units(self.schema, row_id, name,
                                                       str(step.details["checksum"]), progress.logs(0))])
        if after_stop and self._done_before(name, statement, unit):
            self._count(row_id, progress.done, unit.last, finish=unit.last == progress.total)
            return
        self.log.info("migration.outside_transaction", migration=name, statement=unit.first + 1,
                      line=unit.line, note="PostgreSQL runs it only outside a transaction block; the ledger"
                      " row counts the statements committed, so a stop here is found again by the next run")
        own_timeout = units.sets_lock_timeout(self._sql(name), unit.first)
        deadline = wait.started + self.config.lock_timeout
        try:
            if not self.pooled and not own_timeout:
                left_ms = max(int((deadline - time.monotonic()) * 1000), 1000)
                self.db.execute([q.set_lock_timeout(left_ms)])
            try:
                self.db.execute([q.script(unit.text)])
            finally:
                if not self.pooled and not own_timeout:
                    self.db.execute([q.RESET_LOCK_TIMEOUT])
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise DatabaseUnavailable(f"connection lost: {fault.message}", sqlstate=fault.sqlstate,
                                          committed=list(self.committed)) from None
            if (index := units.creates_index(statement)) is not None:
                self._drop_leftover(index)  # nothing half-built is left INVALID
            if fault.sqlstate == "55P03":
                raise LockBusy(f"{fault.message}", sqlstate=fault.sqlstate) from None
            raise MigrationFailed(fault.message, sqlstate=fault.sqlstate, migration=name) from None
        self._count(row_id, progress.done, unit.last, finish=unit.last == progress.total)

    def _done_before(self, name: str, statement: Statement, unit: Unit) -> bool:
        """After a stop right behind a statement run outside a transaction: did it take effect?
        An index of its name, valid and as the contract has it, is built; an INVALID one is dropped and
        built again; dropped indexes are gone; a statement that does the same again runs again."""
        kind = units.after_a_stop(statement)
        where = f"statement {unit.first + 1} (line {unit.line}: {unit.snippet})"
        if kind is None:
            raise NeedsHuman(f"{name}: a run stopped right after {where}, which runs outside a transaction"
                             " and whose effect the job cannot check; check it, then `db-init resolve"
                             f" --applied {name}` (finish the rest by hand) or `--rolled-back {name}`",
                             migration=name)
        if kind == units.RUN_AGAIN:
            return False
        if kind == units.INDEXES_DROPPED:
            return all(self.db.index_state(self.schema, n) is None for n in units.drops_indexes(statement))
        index = units.creates_index(statement) or ""
        found = self.db.index_state(self.schema, index)
        if found is None:
            return False
        valid, building = found
        if building:
            raise LockBusy(f"{name}: index \"{index}\" of {where} is being built by another session")
        if not valid:
            self._drop_leftover(index)
            return False
        if not self._index_as_built(index):
            raise NeedsHuman(f"{name}: after a stop right behind {where}, an index \"{index}\" exists that"
                             " is not the one the file builds; drop or rename it, then run again",
                             migration=name)
        self.log.info("migration.statement_found_done", migration=name, statement=unit.first + 1,
                      index=index, note="built before the last run stopped; not run again")
        return True

    def _index_as_built(self, index: str) -> bool:
        """The live index has the definition the folder's replay gives it (unknown contract: trusted)."""
        contract = self.contract(self.migrations)
        if contract is None:
            return True
        want = next((i for t in contract.tables.values() for i in t.indexes if i.name == index), None)
        got = next((i for t in self.inspect().live.values() for i in t.indexes if i.name == index), None)
        return want is None or (got is not None and (got.definition, got.unique) == (want.definition,
                                                                                     want.unique))

    def _count(self, row_id: str, done: int, now_done: int, *, finish: bool) -> None:
        """The file's progress in its ledger row; only from the count this run read, so two runners
        never both count the same statements."""
        statement = (q.record_finished_units(self.schema, row_id, done) if finish
                     else q.record_progress(self.schema, row_id, done, now_done,
                                            self._progress.logs(now_done)))
        if self.db.execute([statement]) != 1:
            raise DatabaseFault("the ledger row of the migration changed under this run (another runner?)",
                                statement=2)

    def _sql(self, name: str) -> str:
        return next(m.sql for m in self.migrations if m.name == name)

    def _unit_failed(self, step: Step, unit: Unit, number: int, total_units: int, progress: Progress,
                     failed: MigrationFailed | LockBusy | DatabaseUnavailable) -> JobError:
        """One line: the unit that failed, and exactly what of the file is committed."""
        name = step.migration or ""
        where = (f"unit {number} of {total_units} (statement {unit.first + 1}, line {unit.line}:"
                 f" {unit.snippet})")
        row_kept = progress.done > 0 or number > 1 or "resume_from" in step.details or not unit.transaction
        if row_kept and not isinstance(failed, DatabaseUnavailable):
            with contextlib.suppress(DatabaseFault):  # else the row still says how far it got, not why
                self.db.execute([q.record_progress(self.schema, str(step.details["row_id"]),
                                                   progress.done, progress.done,
                                                   progress.logs(progress.done, failed.reason))])
        kept = progress.summary()
        text = (f"{name} failed at {where}: {failed.reason}; "
                + (f"{kept} committed; the next run continues after them" if progress.done
                   else "nothing of it is committed" + ("; the next run starts it again" if row_kept else ""))
                + f"; before it: {_committed_text(self.committed).removeprefix('committed before it: ')}")
        committed = [*self.committed, f"{name} ({kept})"] if progress.done else list(self.committed)
        return type(failed)(text, migration=name, sqlstate=failed.fields.get("sqlstate"), committed=committed)

    def _retry_or_raise(self, fault: DatabaseFault, step: Step, attempt: int, deadline: float) -> None:
        committed = _committed_text(self.committed)
        if fault.connection_lost:
            raise DatabaseUnavailable(f"connection lost during {step.summary}: {fault.message}; its"
                                      f" transaction was rolled back; {committed}",
                                      committed=list(self.committed)) from None
        if fault.sqlstate in _REFUSED_IN_TRANSACTION and step.action == "apply_migration" \
                and fault.statement == 1:
            raise _RefusedInTransaction(fault.sqlstate or "")
        if not fault.retryable:
            raise MigrationFailed(f"{step.summary} failed: {fault.message} (SQLSTATE {fault.sqlstate});"
                                  f" rolled back; {committed}", action=step.action,
                                  migration=step.migration, sqlstate=fault.sqlstate,
                                  committed=list(self.committed)) from None
        delay = min(0.2 * 2 ** attempt, 5.0) * random.uniform(0.5, 1.5)
        if time.monotonic() + delay >= deadline:
            raise LockBusy(f"tables stayed locked by other sessions until the lock budget ran out"
                           f" ({fault.message}) during {step.summary}; rolled back; {committed}",
                           attempts=attempt, committed=list(self.committed)) from None
        self.log.warning("apply.retry", attempt=attempt, delay_s=round(delay, 2), action=step.action,
                         migration=step.migration, sqlstate=fault.sqlstate, reason=fault.message)
        time.sleep(delay)

    def _validate(self, plan: Plan) -> int | None:
        """VALIDATE each new constraint in its own transaction; count and report what stops it.

        Never under statement_timeout: VALIDATE takes SHARE UPDATE EXCLUSIVE, which blocks no app
        read or write, and a scan cut short would be tried again at every pod start, forever.
        lock_timeout still bounds its wait for the lock."""
        orphans: int | None = 0
        for step in plan.validations:
            table, name = str(step.details["table"]), str(step.details["constraint"])
            try:
                with self._transaction(statement_timeout=False):
                    if self.pooled and not self.db.try_xact_lock():
                        self.log.warning("fk.not_validated", action=step.action, table=table,
                                         constraint=name, reason="migration lock busy; next run retries")
                        continue
                    self.db.execute(step.statements)
                self.validated += 1
                self.log.info("step.applied", action=step.action, summary=step.summary, **step.details)
            except DatabaseFault as fault:
                if fault.connection_lost:
                    raise
                if fault.sqlstate not in _ROWS_BREAK_IT:  # not the rows: nothing marked, the next run retries
                    self.log.warning("fk.not_validated", action=step.action, table=table, constraint=name,
                                     sqlstate=fault.sqlstate, reason=fault.message,
                                     note=_NOT_NOW.get(fault.sqlstate or "", "the next run tries again"))
                    continue
                count, not_counted = self._count_orphans(table, name)
                orphans = None if orphans is None or count is None else orphans + count
                self._mark_refused(table, name, count)
                self.log.warning("fk.not_validated", action=step.action, table=table, constraint=name,
                                 orphan_rows=count, sqlstate=fault.sqlstate, reason=fault.message,
                                 note="new writes are checked; existing rows that break it are kept"
                                 + (f"; they were not counted: {not_counted}" if not_counted else ""))
        return orphans

    def _count_orphans(self, table: str, name: str) -> tuple[int | None, str]:
        """The rows a foreign key's validation refused, counted under statement_timeout (the count scans
        the table too); when it could not be counted, None and why.  A CHECK's count is 0: only its
        refusal is known."""
        live = self.inspect().live.get(table)
        fk = live.foreign_key(name) if live else None
        if fk is None:
            return 0, ""
        try:
            with self._transaction():
                return self.db.count(q.count_orphans(self.schema, table, fk)), ""
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise
            timed_out = fault.sqlstate == "57014" and "statement timeout" in fault.message
            return None, ("the count outlasted statement_timeout" if timed_out
                          else f"{fault.message} (SQLSTATE {fault.sqlstate})")

    def _mark_refused(self, table: str, name: str, rows: int | None) -> None:
        """So that the next pod start does not scan the table again for nothing."""
        broken = {None: "existing rows break it (not counted)", 0: "existing rows break it",
                  1: "1 row breaks it"}.get(rows, f"{rows} rows break it")
        reason = (f"not validated on {time.strftime('%Y-%m-%d')}: {broken}; VALIDATE CONSTRAINT once they"
                  " are fixed, or run with DB_INIT_HEAL=always")
        try:
            with self._transaction():
                self.db.execute([q.mark_not_validated(self.schema, table, name, reason)])
            self.validated += 1
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise
            self.log.warning("fk.mark_failed", table=table, constraint=name, reason=fault.message)

    def _check(self) -> tuple[str, ...]:
        """After everything: the schema against what the whole folder builds (drift is reported,
        never fatal: `prisma migrate deploy` would not stop on it either; `verify` exits 8)."""
        contract = self.contract(self.migrations)
        if contract is None:
            return ()
        state = self.inspect()
        drift = tuple(_diff(contract, state.catalog, allowed_extra_tables=_extras(state)))
        if drift:
            self.log.warning("drift.remaining", differences=list(drift),
                             note="the schema differs from what the migrations build; see `db-init verify`")
        return drift


class _RefusedInTransaction(Exception):
    """PostgreSQL refused in a transaction block what the plan took for transactional: nothing ran."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


# What PostgreSQL refuses in a transaction block: a statement that must run alone (25001), a procedure
# that commits (2D000), a new enum value used before its commit (55P04).
_REFUSED_IN_TRANSACTION = {_NO_TRANSACTION_BLOCK, "2D000", "55P04"}


@dataclass
class Progress:
    """How far a file run in units got: its statements committed, as its ledger row counts them."""

    total: int
    done: int
    start: int = field(init=False)  # the count this run began from (what earlier runs committed)

    def __post_init__(self) -> None:
        self.start = self.done

    def logs(self, done: int, failure: str | None = None) -> str:
        text = (f"{units.PROGRESS_TAG}: {done} of {self.total} committed; the next db-init run continues"
                " after them")
        return text + (f"; the last try failed: {failure}" if failure else "")

    def summary(self) -> str:
        earlier = f", {self.start} of them by an earlier run" if self.start else ""
        return f"statements 1-{self.done} of {self.total}{earlier}"


def _one_by_one(step: Step, migration: Migration) -> Step:
    """A whole-file step as units of one statement each (after PostgreSQL refused it as one)."""
    cut = units.one_by_one(migration.sql, 0)
    return replace(step, units=cut, details={**step.details, "checksum": migration.checksum,
                                             "statements": cut[-1].last if cut else 0, "units": len(cut)})


def _split_refused(sql: str, unit: Unit, sqlstate: str) -> list[Unit]:
    """A refused unit again: one statement a unit; a single statement refused goes outside."""
    if len(unit.statements) == 1:
        if sqlstate == "55P04":  # one statement that uses a value it cannot see: nothing to split
            raise MigrationFailed(f"statement {unit.first + 1} (line {unit.line}) uses an enum value before"
                                  " the transaction that added it committed (SQLSTATE 55P04)",
                                  sqlstate=sqlstate)
        return [replace(unit, transaction=False, why="PostgreSQL refused it in a transaction block")]
    return list(units.one_by_one(sql, unit.first, stop=unit.last))


def _committed_text(committed: Sequence[str]) -> str:
    return f"committed before it: {', '.join(committed)}" if committed else "nothing was applied"


def _diff(expected: Catalog, live: Catalog, allowed_extra_tables: frozenset[str] = frozenset()) -> list[str]:
    # Imported here: a no-op (every pod start) never compares schemas, so it does not load the diff engine.
    from job.schemadiff import diff_catalogs
    return diff_catalogs(expected, live, allowed_extra_tables=allowed_extra_tables)


def _extras(state: DatabaseState) -> frozenset[str]:
    return frozenset(t for t in state.live if t == q.LEDGER or app_history.is_kept_copy(t))


def _step_of(steps: Sequence[Step] | None, statement: int | None) -> Step:
    if not steps:
        return Step("prepare", "preparing the transaction", ())
    index = statement or 0
    for step in steps:
        if index < len(step.statements):
            return step
        index -= len(step.statements)
    return steps[-1]
