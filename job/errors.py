"""Every way a run can end, as values: one class, one exit code, one line of text.

The table ``OUTCOMES`` is the single source for exit codes; README's table and
the Kubernetes ``podFailurePolicy`` are written from it, and a test keeps the
README in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    CONFIG = 2
    UNAVAILABLE = 3
    LOCK_BUSY = 4
    NEEDS_HUMAN = 5
    MIGRATION_FAILED = 6
    INTERRUPTED = 7
    DRIFT = 8


@dataclass(frozen=True)
class Outcome:
    code: ExitCode
    name: str  # stable value of the ``outcome`` log field
    retryable: bool  # would the same run, started again later, be expected to pass?
    meaning: str


OUTCOMES: tuple[Outcome, ...] = (
    Outcome(ExitCode.OK, "ok", False, "success: migrations applied, or nothing to do"),
    Outcome(ExitCode.INTERNAL, "internal_error", False, "a bug in the job (a traceback is logged)"),
    Outcome(ExitCode.CONFIG, "config_error",
            False, "bad configuration, URL, credentials, database name or migrations folder"),
    Outcome(ExitCode.UNAVAILABLE, "database_unavailable",
            True, "the database could not be reached within the connect budget"),
    Outcome(ExitCode.LOCK_BUSY, "lock_busy",
            True, "the migration lock or a table lock stayed busy for the whole lock budget"),
    Outcome(ExitCode.NEEDS_HUMAN, "needs_human",
            False, "the database is in a state the job will not change on its own"),
    Outcome(ExitCode.MIGRATION_FAILED, "migration_failed",
            False, "a migration failed (or PostgreSQL refuses a file before anything ran); its own"
                   " transaction was rolled back, what earlier files committed is named"),
    Outcome(ExitCode.INTERRUPTED, "interrupted",
            True, "stopped by SIGTERM or SIGINT; the transaction was rolled back"),
    Outcome(ExitCode.DRIFT, "schema_drift",
            False, "verify: the database differs from what the migrations build (run reports drift and"
                   " passes)"),
)

OUTCOME_BY_CODE = {o.code: o for o in OUTCOMES}

# Not an outcome of a run but a report of ``db-init plan --exit-code`` (terraform's -detailed-exitcode,
# moved off 2, which is config_error here): the plan succeeded and ``run`` would change the database.
# Only plan sets it; a Job or init container never sees it.
PLAN_CHANGES_PENDING = 10


class JobError(Exception):
    """An expected way for a run to fail: logged as one line, no traceback."""

    code: ClassVar[ExitCode] = ExitCode.INTERNAL

    def __init__(self, reason: str, **fields: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields

    @property
    def outcome(self) -> Outcome:
        return OUTCOME_BY_CODE[self.code]


class ConfigError(JobError):
    code = ExitCode.CONFIG


class MissingDatabase(ConfigError):
    """The database named in the URL does not exist, and this run will not create it."""


class DatabaseUnavailable(JobError):
    code = ExitCode.UNAVAILABLE


class LockBusy(JobError):
    code = ExitCode.LOCK_BUSY


class NeedsHuman(JobError):
    code = ExitCode.NEEDS_HUMAN


class MigrationFailed(JobError):
    code = ExitCode.MIGRATION_FAILED


class SchemaDrift(JobError):
    code = ExitCode.DRIFT


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM/SIGINT handler.

    A KeyboardInterrupt subclass on purpose: psycopg cancels the running query
    on the server when a wait is interrupted by one, so the transaction rolls
    back and the lock goes with the connection.
    """

    code = ExitCode.INTERRUPTED

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
