"""The runner's side of the lock estimates: weigh the pending migrations, warn, and the opt-in guard.

Only when migrations are pending, never on the no-op path: the tables' sizes come from the inspection
(``DatabaseState.sizes``), and one round trip reads the volatility of the functions new columns'
defaults call (``Database.function_volatility``); the rest is pure (``job.lockrisk``,
``job.lockestimate``). Each statement that blocks writes while it scans, rewrites, indexes or updates a
table estimated at ``DB_INIT_WARN_BLOCKING_ROWS`` rows or more is logged (``migration.lock_risk``)
before anything runs; at ``DB_INIT_REFUSE_BLOCKING_ROWS`` or more, when a team set it, the run stops
before anything is applied (NeedsHuman, exit 5).

The estimate is advice: the files still run exactly as written, and when it cannot be made (a bug
here, a catalog query refused) that is logged and the run goes on, as `prisma migrate deploy` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from job.config import Config
from job.database import Database, DatabaseFault
from job.errors import NeedsHuman
from job.lockestimate import Estimate, Facts, estimate
from job.lockrisk import UNKNOWN, calls, parse
from job.migrations import Migration
from job.plan import Plan
from job.state import DatabaseState

WARN, REFUSE = "warn", "refuse"
_GUARD = "DB_INIT_REFUSE_BLOCKING_ROWS"


def weigh_locks(plan: Plan, db: Database, state: DatabaseState, migrations: Sequence[Migration],
                config: Config, log: Any) -> Plan:
    """The plan with each statement of its pending migrations weighed and judged; the risky ones logged."""
    pending = set(plan.migrations_applied)
    scripts = [(m.name, m.sql) for m in migrations if m.name in pending]
    if not scripts:
        return plan
    try:
        parsed = parse(scripts)
        volatility = db.function_volatility(sorted(calls(parsed)))
        facts = Facts({s.table: s.rows for s in state.sizes}, volatility, state.catalog, state.relations,
                      state.unvalidated)
        estimates = estimate(parsed, facts)
    except DatabaseFault as fault:
        if fault.connection_lost:
            raise
        _unavailable(log, f"{fault.message} (SQLSTATE {fault.sqlstate})")
        return plan
    except Exception as exc:  # the estimate is advice: a bug in it must never stop a migration
        _unavailable(log, f"{type(exc).__name__}: {exc}"[:300])
        return plan
    judged = tuple(replace(e, verdict=_verdict(e, config)) for e in estimates)
    for e in judged:
        if e.verdict:
            log.warning("migration.lock_risk", **{k: v for k, v in e.fields().items() if k != "new"})
    return replace(plan, locks=judged)


def _unavailable(log: Any, reason: str) -> None:
    log.warning("lock_estimate.unavailable", reason=reason,
                note="the migrations still run as written; no lock warning, and the guard does not judge")


def _verdict(e: Estimate, config: Config) -> str:
    if config.refuse_blocking_rows is not None and e.at_least(config.refuse_blocking_rows):
        return REFUSE
    if config.warn_blocking_rows is not None and e.at_least(config.warn_blocking_rows):
        return WARN
    return ""


def refusal(plan: Plan, threshold: int | None) -> str | None:
    """Why the opt-in guard stops this plan, in one line naming file, line, table, rows and lock; None
    when it does not."""
    refused = [e for e in plan.locks if e.verdict == REFUSE]
    if not refused:
        return None
    e = refused[0]
    more = f" (and {len(refused) - 1} more such statement(s))" if len(refused) > 1 else ""
    return (f'{e.migration}/migration.sql line {e.line}: {e.statement} takes {e.lock} on "{e.table}"'
            f" (~{e.rows or 0:,} rows) and blocks {e.blocks} while it {e.duration}{more}; {_GUARD} is"
            f" {threshold}, so nothing was applied: {e.advice or 'split the migration'},"
            f" or raise or unset {_GUARD} to run it as written")


def refuse_blocking(plan: Plan, config: Config) -> None:
    """The opt-in guard, before the lock and before anything is applied."""
    reason = refusal(plan, config.refuse_blocking_rows)
    if reason is not None:
        raise NeedsHuman(reason, migration=next(e.migration for e in plan.locks if e.verdict == REFUSE))


def plan_lines(plan: Plan, migration: str) -> list[str]:
    """What ``plan`` prints under a migration: each statement that locks an existing table or is not
    estimated, then the risks the settings flag."""
    mine = [e for e in plan.locks if e.migration == migration]
    shown = [e for e in mine if (e.table is not None and not e.new) or e.lock == UNKNOWN]
    if not shown:
        return []
    lines = ["-- locks, estimated (README, \"Locks and big tables\"):"]
    lines += [f"--   {e.describe()}" for e in shown]
    for e in mine:
        if e.verdict:
            label = f"refused ({_GUARD})" if e.verdict == REFUSE else "lock risk"
            lines.append(f"-- {label}: line {e.line}: {e.reason}; advice: {e.advice}")
    return lines
