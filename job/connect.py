"""Wait for the database: retry what can heal, fail at once on what cannot.

Exponential backoff with full jitter inside one total budget (tenacity), so a
hundred pods restarting together do not knock in step.  Every retry is logged
with its attempt number, delay and reason.
"""

from __future__ import annotations

import time
from typing import Any

import tenacity

from job.database import Database, DatabaseFault
from job.dburl import DatabaseTarget
from job.errors import ConfigError, DatabaseUnavailable

# libpq's per-attempt connect timeout; never more than what is left of the budget.
ATTEMPT_TIMEOUT_S = 5


def wait_for_database(target: DatabaseTarget, *, budget_s: float, application_name: str,
                      log: Any) -> Database:
    deadline = time.monotonic() + budget_s

    def attempt() -> Database:
        left = max(2, min(ATTEMPT_TIMEOUT_S, int(deadline - time.monotonic() + 0.999)))
        conninfo = {"connect_timeout": str(left), **target.conninfo,
                    "application_name": application_name}
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
        raise ConfigError(f"database refused the connection: {fault.message}",
                          target=target.display) from None
    log.info("db.connected", target=target.display, server_version=db.server_version,
             backend_pid=db.backend_pid)
    return db
