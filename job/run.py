"""One run, top to bottom: config → connect → inspect → plan → lock → re-inspect → apply → record → report.

``plan`` and ``run`` share every stage but the last, so what is shown is what is done.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from job.config import Config
from job.connect import wait_for_database
from job.contract import load_contract
from job.database import Database, DatabaseFault
from job.errors import ConfigError, DatabaseUnavailable, LockBusy, MigrationFailed, SchemaDrift
from job.lock import migration_lock
from job.migrations import Migration, load_migrations
from job.plan import Plan, Step, make_plan
from job.schemamodel import Schema
from job.statements import count_orphans
from job.verify import differences, notes


@dataclass(frozen=True)
class RunResult:
    plan: Plan  # what was applied (run) or would be (plan)
    applied: bool  # False for a dry run or when there was nothing to do
    differences: tuple[str, ...] = ()  # verify's findings
    orphans: int = 0  # rows left pointing at nothing by foreign keys that could not be validated


def execute(config: Config, *, mode: str, log: Any, allow_extra: bool = False) -> RunResult:
    """``mode``: "run" applies; "plan" stops before the lock; "verify" compares only."""
    dry_run = mode != "run"
    migrations = load_migrations(config.migrations_dir)
    contract = _contract(config.migrations_dir, log)
    if config.target.pgbouncer and not dry_run:
        raise ConfigError("the URL says pgbouncer=true (a transaction pooler, where the migration lock"
                          " cannot be held): set DIRECT_URL to a direct or session-mode connection")
    if config.target.dropped_params:
        log.info("config.url_params_ignored", params=list(config.target.dropped_params))

    db = wait_for_database(config.target, budget_s=config.connect_timeout,
                           application_name=config.application_name, log=log)
    try:
        db.configure_session()
        if mode == "verify":
            state = db.inspect(config.target.schema)
            found = differences(state, contract, migrations, allow_extra=allow_extra)
            return RunResult(Plan((), (), tuple(notes(state, migrations)), ()), applied=False,
                             differences=tuple(found))
        plan = _plan(db, config, migrations, contract, log)
        if dry_run or plan.empty:
            _refuse_drift(plan, log)
            return RunResult(plan, applied=False)
        deadline = time.monotonic() + config.lock_timeout
        with migration_lock(db, budget_s=config.lock_timeout, log=log):
            plan = _apply_under_lock(db, config, migrations, contract, deadline, log)
            orphans = _validate(db, config, plan, contract, log)
        _refuse_drift(plan, log)
        return RunResult(plan, applied=not plan.empty, orphans=orphans)
    except DatabaseFault as fault:
        # Inspection or locking lost the server: nothing was changed, so try again later.
        raise DatabaseUnavailable(f"database call failed: {fault.message}",
                                  sqlstate=fault.sqlstate) from None
    finally:
        db.close()


def _plan(db: Database, config: Config, migrations: tuple[Migration, ...],
          contract: Schema, log: Any) -> Plan:
    state = db.inspect(config.target.schema)
    plan = make_plan(state, migrations, contract)
    for note in plan.notes:
        log.warning("plan.note", note=note)
    log.info("plan.ready", schema=config.target.schema, steps=len(plan.steps),
             actions=[s.action for s in plan.steps])
    return plan


def _apply_under_lock(db: Database, config: Config, migrations: tuple[Migration, ...],
                      contract: Schema, deadline: float, log: Any) -> Plan:
    """Re-plan under the lock (another runner may have done the work), then apply in one transaction.

    Busy tables are not waited on for longer than the DDL lock_timeout, so app
    queries never queue behind the job for longer than that: the transaction
    rolls back, and the whole attempt is retried with backoff within the budget.
    """
    attempt = 0
    while True:
        attempt += 1
        plan = _plan(db, config, migrations, contract, log)
        if plan.empty:
            log.info("apply.nothing_left", reason="another runner applied everything while we waited")
            return plan
        try:
            db.apply(plan.statements(), schema=config.target.schema,
                     lock_timeout_ms=int(config.ddl_lock_timeout * 1000),
                     statement_timeout_ms=int(config.statement_timeout * 1000))
        except DatabaseFault as fault:
            step = _step_of(plan, fault.statement)
            if fault.connection_lost:
                raise DatabaseUnavailable(f"connection lost during {step.action}: {fault.message};"
                                          " the transaction was rolled back") from None
            if not fault.retryable:
                raise MigrationFailed(f"{step.summary} failed: {fault.message} (SQLSTATE"
                                      f" {fault.sqlstate}); rolled back, nothing applied",
                                      action=step.action, migration=step.migration,
                                      sqlstate=fault.sqlstate) from None
            delay = min(0.2 * 2 ** attempt, 5.0) * random.uniform(0.5, 1.5)
            if time.monotonic() + delay >= deadline:
                raise LockBusy(f"tables stayed locked by other sessions until the lock budget ran out"
                               f" ({fault.message}); rolled back, nothing applied",
                               attempts=attempt) from None
            log.warning("apply.retry", attempt=attempt, delay_s=round(delay, 2), action=step.action,
                        sqlstate=fault.sqlstate, reason=fault.message)
            time.sleep(delay)
            continue
        for step in plan.steps:
            event = "ledger.failed_row_closed" if step.action == "close_failed_row" else "step.applied"
            log.info(event, action=step.action, migration=step.migration, summary=step.summary,
                     **step.details)
        return plan


def _validate(db: Database, config: Config, plan: Plan, contract: Schema, log: Any) -> int:
    """VALIDATE each new foreign key in its own short transaction; count and report what stops it."""
    orphans = 0
    for step in plan.validations:
        try:
            db.apply(step.statements, schema=config.target.schema,
                     lock_timeout_ms=int(config.ddl_lock_timeout * 1000),
                     statement_timeout_ms=int(config.statement_timeout * 1000))
            log.info("step.applied", action=step.action, summary=step.summary, **step.details)
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise
            table, name = str(step.details["table"]), str(step.details["constraint"])
            fk = next(f for f in contract[table].foreign_keys if f.name == name)
            count = db.count(count_orphans(config.target.schema, table, fk))
            orphans += count
            log.warning("fk.not_validated", action=step.action, table=table, constraint=name,
                        orphan_rows=count,
                        sqlstate=fault.sqlstate, reason=fault.message,
                        note="new writes are checked; existing rows that point at nothing are kept")
    return orphans


def _refuse_drift(plan: Plan, log: Any) -> None:
    if not plan.unresolved:
        return
    log.error("drift.found", differences=list(plan.unresolved))
    raise SchemaDrift(f"{len(plan.unresolved)} difference(s) from the contract that the job does not"
                      f" change on its own: {'; '.join(plan.unresolved[:3])}"
                      f"{' ...' if len(plan.unresolved) > 3 else ''}")


def _step_of(plan: Plan, statement: int | None) -> Step:
    index = statement or 0
    for step in plan.steps:
        if index < len(step.statements):
            return step
        index -= len(step.statements)
    return plan.steps[-1]


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
