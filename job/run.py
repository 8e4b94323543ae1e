"""One run, top to bottom: config → connect → inspect → plan → lock → re-inspect → apply → record → report.

``plan`` and ``run`` share every stage but the last, so what is shown is what is done.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from job.config import Config
from job.connect import wait_for_database
from job.contract import load_contract
from job.database import Database, DatabaseFault
from job.errors import ConfigError, DatabaseUnavailable, LockBusy, MigrationFailed, NeedsHuman, SchemaDrift
from job.lock import LockWait, session_lock
from job.migrations import Migration, load_migrations
from job.plan import Plan, make_plan, refuse_old_server
from job.schemamodel import Schema
from job.statements import count_orphans
from job.steps import Step
from job.verify import differences, notes


@dataclass(frozen=True)
class RunResult:
    plan: Plan  # what was applied (run) or would be (plan)
    applied: bool  # False for a dry run or when there was nothing to do
    differences: tuple[str, ...] = ()  # verify's findings
    orphans: int = 0  # rows left pointing at nothing by foreign keys that could not be validated


def execute(config: Config, *, mode: str, log: Any, allow_extra: bool = False) -> RunResult:
    """``mode``: "run" applies; "plan" stops before the lock; "verify" compares only."""
    migrations = load_migrations(config.migrations_dir)
    contract = _contract(config.migrations_dir, log)
    if config.target.dropped_params:
        log.info("config.url_params_ignored", params=list(config.target.dropped_params))
    db = wait_for_database(config.target, budget_s=config.connect_timeout,
                           application_name=config.application_name, log=log)
    try:
        refuse_old_server(db.server_version)
        job = _Job(db, config, migrations, contract, log, pooled=_pooled(db, config, log))
        if mode == "verify":
            return job.verify(allow_extra)
        plan = job.plan()
        if mode == "plan" or plan.empty:
            _refuse_drift(plan, log)
            return RunResult(plan, applied=False)
        plan, orphans = job.apply()
        _refuse_drift(plan, log)
        return RunResult(plan, applied=not plan.empty, orphans=orphans)
    except DatabaseFault as fault:
        if fault.retryable or fault.connection_lost:  # nothing was changed: try again later
            raise DatabaseUnavailable(f"database call failed: {fault.message}",
                                      sqlstate=fault.sqlstate) from None
        raise NeedsHuman(f"the database refused a catalog query: {fault.message}"
                         f" (SQLSTATE {fault.sqlstate})", sqlstate=fault.sqlstate) from None
    finally:
        db.close()


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
        db.configure_session()
    return pooled


class _Busy(Exception):
    """The transaction-scoped lock is held by someone else: roll back and wait."""


@dataclass
class _Job:
    db: Database
    config: Config
    migrations: tuple[Migration, ...]
    contract: Schema
    log: Any
    pooled: bool

    @property
    def schema(self) -> str:
        return self.config.target.schema

    def verify(self, allow_extra: bool) -> RunResult:
        state = self.db.inspect(self.schema)
        found = differences(state, self.contract, self.migrations, allow_extra=allow_extra)
        return RunResult(Plan((), (), tuple(notes(state, self.migrations)), ()), applied=False,
                         differences=tuple(found))

    def plan(self) -> Plan:
        plan = make_plan(self.db.inspect(self.schema), self.migrations, self.contract)
        for note in plan.notes:
            self.log.warning("plan.note", note=note)
        self.log.info("plan.ready", schema=self.schema, steps=len(plan.steps),
                      actions=[s.action for s in plan.steps])
        return plan

    def _transaction(self) -> Any:
        return self.db.transaction(schema=self.schema,
                                   lock_timeout_ms=int(self.config.ddl_lock_timeout * 1000),
                                   statement_timeout_ms=int(self.config.statement_timeout * 1000))

    def apply(self) -> tuple[Plan, int]:
        """Under the lock: re-plan (another runner may have done the work) and apply, then validate."""
        wait = LockWait(self.db, self.config.lock_timeout, self.log)  # one budget for every wait
        with nullcontext() if self.pooled else session_lock(self.db, wait, self.log):
            plan = self._apply_with_retries(wait)
            return plan, self._validate(plan)

    def _apply_with_retries(self, wait: LockWait) -> Plan:
        """One transaction; rolled back and retried with backoff while tables or the lock stay busy.

        Busy tables are not waited on for longer than the DDL lock_timeout, so app
        queries never queue behind the job for longer than that.
        """
        deadline = wait.started + self.config.lock_timeout
        attempt = 0
        while True:
            attempt += 1
            plan: Plan | None = None
            try:
                with self._transaction():
                    if self.pooled:
                        if not self.db.try_xact_lock():
                            raise _Busy
                        wait.acquired("transaction")
                    plan = self.plan()
                    self.db.execute(plan.statements())
            except _Busy:
                wait.pause()
                continue
            except DatabaseFault as fault:
                self._retry_or_raise(fault, plan, attempt, deadline)
                continue
            assert plan is not None
            if plan.empty:
                self.log.info("apply.nothing_left", reason="another runner applied everything meanwhile")
            for step in plan.steps:
                event = "ledger.failed_row_closed" if step.action == "close_failed_row" else "step.applied"
                self.log.info(event, action=step.action, migration=step.migration, summary=step.summary,
                              **step.details)
            return plan

    def _retry_or_raise(self, fault: DatabaseFault, plan: Plan | None, attempt: int, deadline: float
                        ) -> None:
        step = _step_of(plan, fault.statement)
        if fault.connection_lost:
            raise DatabaseUnavailable(f"connection lost during {step.action}: {fault.message};"
                                      " the transaction was rolled back") from None
        if not fault.retryable:
            raise MigrationFailed(f"{step.summary} failed: {fault.message} (SQLSTATE {fault.sqlstate});"
                                  " rolled back, nothing applied", action=step.action,
                                  migration=step.migration, sqlstate=fault.sqlstate) from None
        delay = min(0.2 * 2 ** attempt, 5.0) * random.uniform(0.5, 1.5)
        if time.monotonic() + delay >= deadline:
            raise LockBusy(f"tables stayed locked by other sessions until the lock budget ran out"
                           f" ({fault.message}); rolled back, nothing applied", attempts=attempt) from None
        self.log.warning("apply.retry", attempt=attempt, delay_s=round(delay, 2), action=step.action,
                         sqlstate=fault.sqlstate, reason=fault.message)
        time.sleep(delay)

    def _validate(self, plan: Plan) -> int:
        """VALIDATE each new foreign key in its own short transaction; count and report what stops it."""
        orphans = 0
        for step in plan.validations:
            table, name = str(step.details["table"]), str(step.details["constraint"])
            try:
                with self._transaction():
                    if self.pooled and not self.db.try_xact_lock():
                        self.log.warning("fk.not_validated", action=step.action, table=table,
                                         constraint=name, reason="migration lock busy; next run retries")
                        continue
                    self.db.execute(step.statements)
                self.log.info("step.applied", action=step.action, summary=step.summary, **step.details)
            except DatabaseFault as fault:
                if fault.connection_lost:
                    raise
                fk = next(f for f in self.contract[table].foreign_keys if f.name == name)
                count = self.db.count(count_orphans(self.schema, table, fk))
                orphans += count
                self.log.warning("fk.not_validated", action=step.action, table=table, constraint=name,
                                 orphan_rows=count, sqlstate=fault.sqlstate, reason=fault.message,
                                 note="new writes are checked; existing rows that point at nothing are kept")
        return orphans


def _step_of(plan: Plan | None, statement: int | None) -> Step:
    if plan is None or not plan.steps:
        return Step("prepare", "preparing the transaction", ())
    index = statement or 0
    for step in plan.steps:
        if index < len(step.statements):
            return step
        index -= len(step.statements)
    return plan.steps[-1]


def _refuse_drift(plan: Plan, log: Any) -> None:
    if not plan.unresolved:
        return
    log.error("drift.found", differences=list(plan.unresolved))
    raise SchemaDrift(f"{len(plan.unresolved)} difference(s) from the contract that the job does not"
                      f" change on its own: {'; '.join(plan.unresolved[:3])}"
                      f"{' ...' if len(plan.unresolved) > 3 else ''}")


def _contract(migrations_dir: Path, log: Any) -> Schema:
    schema_file = migrations_dir.parent / "schema.prisma"
    if not schema_file.is_file():
        log.warning("contract.missing", path=str(schema_file),
                    note="without the contract, a partial schema is neither healed nor verified")
        return {}
    try:
        return load_contract(schema_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the contract {schema_file}: {exc}") from None
