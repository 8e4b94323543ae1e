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
from job.errors import ConfigError, DatabaseUnavailable, LockBusy, MigrationFailed
from job.lock import migration_lock
from job.migrations import Migration, load_migrations
from job.plan import Plan, Step, make_plan


@dataclass(frozen=True)
class RunResult:
    plan: Plan  # what was applied (run) or would be (plan)
    applied: bool  # False for a dry run or when there was nothing to do


def execute(config: Config, *, dry_run: bool, log: Any) -> RunResult:
    migrations = load_migrations(config.migrations_dir)
    contract_tables = _contract_tables(config.migrations_dir, log)
    if config.target.pgbouncer and not dry_run:
        raise ConfigError("the URL says pgbouncer=true (a transaction pooler, where the migration lock"
                          " cannot be held): set DIRECT_URL to a direct or session-mode connection")
    if config.target.dropped_params:
        log.info("config.url_params_ignored", params=list(config.target.dropped_params))

    db = wait_for_database(config.target, budget_s=config.connect_timeout,
                           application_name=config.application_name, log=log)
    try:
        db.configure_session()
        plan = _plan(db, config, migrations, contract_tables, log)
        if dry_run or plan.empty:
            return RunResult(plan, applied=False)
        deadline = time.monotonic() + config.lock_timeout
        with migration_lock(db, budget_s=config.lock_timeout, log=log):
            plan = _apply_under_lock(db, config, migrations, contract_tables, deadline, log)
        return RunResult(plan, applied=not plan.empty)
    except DatabaseFault as fault:
        # Inspection or locking lost the server: nothing was changed, so try again later.
        raise DatabaseUnavailable(f"database call failed: {fault.message}",
                                  sqlstate=fault.sqlstate) from None
    finally:
        db.close()


def _plan(db: Database, config: Config, migrations: tuple[Migration, ...],
          contract_tables: frozenset[str], log: Any) -> Plan:
    state = db.inspect(config.target.schema)
    plan = make_plan(state, migrations, contract_tables)
    for note in plan.notes:
        log.warning("plan.note", note=note)
    log.info("plan.ready", schema=config.target.schema, steps=len(plan.steps),
             actions=[s.action for s in plan.steps])
    return plan


def _apply_under_lock(db: Database, config: Config, migrations: tuple[Migration, ...],
                      contract_tables: frozenset[str], deadline: float, log: Any) -> Plan:
    """Re-plan under the lock (another runner may have done the work), then apply in one transaction.

    Busy tables are not waited on for longer than the DDL lock_timeout, so app
    queries never queue behind the job for longer than that: the transaction
    rolls back, and the whole attempt is retried with backoff within the budget.
    """
    attempt = 0
    while True:
        attempt += 1
        plan = _plan(db, config, migrations, contract_tables, log)
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
            log.info(event, action=step.action, migration=step.migration, summary=step.summary)
        return plan


def _step_of(plan: Plan, statement: int | None) -> Step:
    index = statement or 0
    for step in plan.steps:
        if index < len(step.statements):
            return step
        index -= len(step.statements)
    return plan.steps[-1]


def _contract_tables(migrations_dir: Path, log: Any) -> frozenset[str]:
    schema_file = migrations_dir.parent / "schema.prisma"
    if not schema_file.is_file():
        log.warning("contract.missing", path=str(schema_file),
                    note="recorded-but-missing tables will not be detected")
        return frozenset()
    try:
        return frozenset(load_contract(schema_file))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the contract {schema_file}: {exc}") from None
