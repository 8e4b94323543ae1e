"""Wait for the database: retry what can heal, fail at once on what cannot.

Exponential backoff with full jitter inside one total budget (tenacity), so a
hundred pods restarting together do not knock in step.  Every retry is logged
with its attempt number, delay and reason.

A database that does not exist (3D000) is created as `prisma migrate deploy` creates it, when the
caller allows: from the first maintenance database that answers, with the same credentials and TLS
settings, never through a pooler.  Replicas racing to create it all go on: the losers find it made.
"""

from __future__ import annotations

import time
from typing import Any

import tenacity

from job.database import INVALID_CATALOG_NAME, Database, DatabaseFault
from job.dburl import DatabaseTarget
from job.errors import ConfigError, DatabaseUnavailable, MissingDatabase
from job.plan import refuse_old_server

# libpq's per-attempt connect timeout; never more than what is left of the budget.
ATTEMPT_TIMEOUT_S = 5
# Where `prisma migrate deploy` connects to create a missing database, in its order (defaultdb: CockroachDB).
MAINTENANCE_DATABASES = ("postgres", "template1", "defaultdb")
_INSUFFICIENT_PRIVILEGE = "42501"


def wait_for_database(target: DatabaseTarget, *, budget_s: float, application_name: str,
                      log: Any, create: bool = False, dry_run: bool = False, why_not: str = "") -> Database:
    """Connected, within ``budget_s``. A missing database is created when ``create``; with ``dry_run``
    too, it is only checked that it could be, then MissingDatabase is raised (for ``plan``); without
    ``create``, MissingDatabase's reason ends with ``why_not`` (why this run does not create it)."""
    deadline = time.monotonic() + budget_s

    def attempt() -> Database:
        left = max(2, min(ATTEMPT_TIMEOUT_S, int(deadline - time.monotonic() + 0.999)))
        conninfo = {"connect_timeout": str(left), **target.conninfo,
                    "application_name": application_name}
        try:
            return Database.open(conninfo)
        except DatabaseFault as fault:
            if fault.sqlstate != INVALID_CATALOG_NAME or not fault.database:
                raise
            missing = f'database "{fault.database}" does not exist at {fault.server or target.display}'
            if reason := _not_creating(target, create, why_not):
                raise MissingDatabase(f"{missing}; {reason}", database=fault.database,
                                      server=fault.server) from None
            if dry_run:
                _check_creatable(target, conninfo, fault.database, missing)
                raise MissingDatabase(missing, database=fault.database, server=fault.server,
                                      creatable=True) from None
            _create(target, conninfo, fault.database, missing, log)
        return Database.open(conninfo)

    def log_retry(state: tenacity.RetryCallState) -> None:
        fault = state.outcome.exception() if state.outcome else None
        log.warning("db.connect.retry", attempt=state.attempt_number,
                    delay_s=round(state.upcoming_sleep, 2),
                    reason=getattr(fault, "message", str(fault)))

    backoff = tenacity.wait_random_exponential(multiplier=0.25, max=5)

    def wait(state: tenacity.RetryCallState) -> float:
        # The last sleep is cut to the deadline, so the final attempt happens at the budget, not before.
        return max(0.0, min(backoff(state), deadline - time.monotonic()))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(budget_s),
        wait=wait,
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, DatabaseFault) and e.retryable),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        db: Database = retrying(attempt)
    except DatabaseFault as fault:
        if fault.retryable:
            raise DatabaseUnavailable(f"database unreachable after {budget_s:g}s: {fault.message}",
                                      target=target.display) from None
        if "no such database" in fault.message.lower():  # PgBouncer's own refusal; the server never saw it
            raise ConfigError(f'the pooler at {fault.server} knows no database "{fault.database}" (nothing'
                              f" in its [databases] matches; the job creates a database only over a direct"
                              f" connection): {fault.message}", target=target.display) from None
        raise ConfigError(f"database refused the connection: {fault.message}",
                          target=target.display) from None
    log.info("db.connected", target=target.display, server_version=db.server_version,
             backend_pid=db.backend_pid)
    return db


def _not_creating(target: DatabaseTarget, create: bool, why_not: str) -> str:
    """Why this run leaves a missing database alone; empty when it creates it."""
    if "dbname" not in target.conninfo:  # libpq fell back to the role's name, where Prisma takes postgres
        return "the URL names no database, so the job creates none: name it in the URL's path"
    return "" if create else why_not


def _maintenance(target: DatabaseTarget, conninfo: dict[str, str], name: str, missing: str
                 ) -> tuple[Database, str]:
    """A connection to the first maintenance database that lets the URL's role in, and that database's
    name; never through a pooler. A fault worth waiting for (the server restarting) is raised as it is,
    for the caller's retries."""
    pooler = f"{missing}, as a connection pooler reports it: the job creates a database only over a direct" \
             " connection (set DIRECT_URL to the server, or create the database)"
    if target.pgbouncer:
        raise ConfigError(pooler, database=name)
    refused = []
    for maintenance in MAINTENANCE_DATABASES:
        try:
            admin = Database.open(conninfo | {"dbname": maintenance})
        except DatabaseFault as fault:
            if fault.retryable:
                raise
            refused.append(f"{maintenance}: {fault.message}")
            continue
        try:
            if admin.behind_pooler():
                raise ConfigError(pooler, database=name)
            refuse_old_server(admin.server_version)  # before making a database the job would then refuse
        except BaseException:
            admin.close()
            raise
        return admin, maintenance
    raise ConfigError(f"{missing}, and no maintenance database let the job in to create it"
                      f" ({'; '.join(refused)})", database=name)


def _no_createdb(missing: str, user: str, name: str) -> ConfigError:
    return ConfigError(f'{missing}, and role "{user}" may not create it (it lacks CREATEDB): create the'
                       " database, or grant the role CREATEDB", database=name)


def _check_creatable(target: DatabaseTarget, conninfo: dict[str, str], name: str, missing: str) -> None:
    """What ``plan`` asks instead of creating: would run's CREATE DATABASE be allowed? Read only."""
    admin, _ = _maintenance(target, conninfo, name, missing)
    try:
        if not admin.may_create_database():
            raise _no_createdb(missing, admin.user, name)
    finally:
        admin.close()


def _create(target: DatabaseTarget, conninfo: dict[str, str], name: str, missing: str, log: Any) -> None:
    """CREATE DATABASE ``name`` from the first maintenance database that answers."""
    admin, via = _maintenance(target, conninfo, name, missing)
    at = admin.server
    try:
        created = admin.create_database(name)
    except DatabaseFault as fault:
        if fault.retryable:
            raise
        if fault.sqlstate == _INSUFFICIENT_PRIVILEGE:
            raise _no_createdb(missing, admin.user, name) from None
        raise ConfigError(f"{missing}, and creating it failed: {fault.message} (SQLSTATE {fault.sqlstate})",
                          database=name) from None
    finally:
        admin.close()
    if created:
        log.warning("database.created", database=name, at=at, via=via,
                    note="it did not exist: created as prisma migrate deploy does; if the name is a typo,"
                         " fix the URL and drop this database")
    else:
        log.info("database.create_raced", database=name, at=at,
                 note="another session created it first")
