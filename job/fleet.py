"""Fleet mode: this task's share of the targets, each through the same pipeline as a single run.

Each target is one ``execute`` with its own connection, lock, budgets and exit class, logged with its
name bound to every line; a bounded number run at once (``job.pool``). The task's exit code is the
most severe class among its targets, in the order of ``SEVERITY``: what a retry can heal first, so
Cloud Run's task retries and an Indexed Job's per-index back-off re-run a task while one of its targets
may still heal (the others are no-ops or fail again in about a second), and the needs-a-human codes
only when nothing else is left, so ``podFailurePolicy`` ``FailIndex`` stops a hopeless index at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from job.config import Config
from job.errors import OUTCOME_BY_CODE, PLAN_CHANGES_PENDING, ExitCode, Interrupted, JobError
from job.migrations import load_migrations
from job.pool import run_bounded
from job.redact import redact
from job.run import execute
from job.targets import Target

# Most severe first. Retryable before needs-a-human (see the module's docstring); among the latter a
# bug first, then what a human must look at; pending changes (status only) last: a run fixes them.
SEVERITY: tuple[int, ...] = (
    ExitCode.INTERRUPTED, ExitCode.UNAVAILABLE, ExitCode.LOCK_BUSY,
    ExitCode.INTERNAL, ExitCode.MIGRATION_FAILED, ExitCode.NEEDS_HUMAN, ExitCode.CONFIG, ExitCode.DRIFT,
    PLAN_CHANGES_PENDING,
)


def outcome_name(code: int) -> str:
    return "changes_pending" if code == PLAN_CHANGES_PENDING else OUTCOME_BY_CODE[ExitCode(code)].name


@dataclass(frozen=True)
class TargetResult:
    name: str
    group: str
    code: int  # an ExitCode, or PLAN_CHANGES_PENDING for status
    duration_ms: float
    reason: str | None = None
    started: bool = True
    migrations_applied: tuple[str, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)  # fleet status' columns

    @property
    def outcome(self) -> str:
        return outcome_name(self.code)


def most_severe(codes: Sequence[int]) -> int:
    failing = [c for c in codes if c != ExitCode.OK]
    return min(failing, key=SEVERITY.index) if failing else ExitCode.OK


def task_exit_code(results: Sequence[TargetResult], max_failed: int) -> tuple[int, int]:
    """(exit code, failures tolerated): up to ``max_failed`` failed targets still exit 0, unless the
    task itself was interrupted (its unfinished targets are not failures but work left)."""
    code = most_severe([r.code for r in results])
    failed = sum(1 for r in results if r.code != ExitCode.OK)
    if code not in (ExitCode.OK, ExitCode.INTERRUPTED) and failed <= max_failed:
        return ExitCode.OK, failed
    return code, 0


def config_for(base: Config, target: Target, **changes: Any) -> Config:
    return replace(base, target=target.database, url_source=f"targets file ({target.source})", **changes)


Work = Callable[[Target, Any], TargetResult]


def run_targets(targets: Sequence[Target], work: Work, *, concurrency: int, log: Any
                ) -> tuple[list[TargetResult], str | None]:
    """Every target through ``work``, a bounded number at a time; one ``target.finished`` line each,
    including those a signal stopped or kept from starting. Returns the results and the signal."""
    def one(target: Target) -> TargetResult:
        bound = log.bind(target_name=target.name, group=target.group)
        bound.info("target.started", url=target.database.display, schema=target.database.schema)
        result = work(target, bound)
        _log_finished(bound, result)
        return result

    def interrupted(target: Target, signal_name: str) -> TargetResult:
        result = TargetResult(target.name, target.group, ExitCode.INTERRUPTED, 0.0,
                              f"interrupted by {signal_name}; its transaction was rolled back")
        _log_finished(log.bind(target_name=target.name, group=target.group), result)
        return result

    pool = run_bounded(targets, one, concurrency=concurrency, on_interrupt=interrupted)
    results = []
    for target, done in zip(targets, pool.results, strict=True):
        if done is None:  # never started: the task was stopped first; the next attempt runs it
            skipped = TargetResult(target.name, target.group, ExitCode.INTERRUPTED, 0.0,
                                   f"not started: the task was stopped by {pool.stopped_by}", started=False)
            _log_finished(log.bind(target_name=target.name, group=target.group), skipped)
        results.append(done or skipped)
    return results, pool.stopped_by


def _log_finished(log: Any, result: TargetResult) -> None:
    fields: dict[str, Any] = {"outcome": result.outcome, "exit_code": result.code,
                              "duration_ms": result.duration_ms,
                              "migrations_applied": list(result.migrations_applied), **result.status}
    if not result.started:
        fields["started"] = False
    if result.code in (ExitCode.OK, PLAN_CHANGES_PENDING):
        log.info("target.finished", **fields)
    else:
        retryable = result.code in OUTCOME_BY_CODE and OUTCOME_BY_CODE[ExitCode(result.code)].retryable
        log.error("target.finished", **fields, retryable=retryable, reason=result.reason)


def _guarded(target: Target, log: Any, body: Callable[[], TargetResult]) -> TargetResult:
    """An expected failure is the target's result, one line; a bug is logged with its traceback."""
    started = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - started) * 1000, 1)
    try:
        return replace(body(), duration_ms=elapsed())
    except JobError as err:
        return TargetResult(target.name, target.group, err.code, elapsed(), redact(err.reason))
    except Interrupted:
        raise
    except Exception as exc:  # a bug: the one case where a traceback helps
        log.exception("target.crashed", error=redact(repr(exc)))
        return TargetResult(target.name, target.group, ExitCode.INTERNAL, elapsed(),
                            f"internal error: {type(exc).__name__}")


def migrate(base: Config) -> Work:
    """``db-init run`` on one target."""
    def work(target: Target, log: Any) -> TargetResult:
        def body() -> TargetResult:
            result = execute(config_for(base, target), mode="run", log=log)
            applied = result.migrations_applied
            return TargetResult(target.name, target.group, ExitCode.OK, 0.0, migrations_applied=applied)
        return _guarded(target, log, body)
    return work


def inspect(base: Config) -> Work:
    """Read-only: ``db-init plan`` with the contract rebuilt (heal=always), so drift shows too."""
    folder = [m.name for m in load_migrations(base.migrations_dir)]

    def work(target: Target, log: Any) -> TargetResult:
        def body() -> TargetResult:
            plan = execute(config_for(base, target, heal="always"), mode="plan", log=log).plan
            pending = plan.migrations_applied
            applied = [name for name in folder if name not in pending]
            status = {"pending": list(pending), "failed_rows": plan.ledger_rows_repaired,
                      "repairs": len(plan.prepare) - plan.ledger_rows_repaired,
                      "drift": list(plan.unresolved), "last_applied": applied[-1] if applied else None}
            # Converged is what a run owes: a validation whose rows refused it stays drift for a human.
            code = PLAN_CHANGES_PENDING if plan.owed else ExitCode.DRIFT if plan.unresolved \
                else ExitCode.OK
            return TargetResult(target.name, target.group, code, 0.0, status=status,
                                reason=f"{len(plan.steps) + len(plan.validations)} change(s) pending"
                                if plan.owed
                                else f"{len(plan.unresolved)} difference(s) left for a human"
                                if plan.unresolved else None)
        return _guarded(target, log, body)
    return work


def summary(results: Sequence[TargetResult]) -> dict[str, Any]:
    """``fleet.finished``'s counts, and the names of the targets that did not end well, by outcome."""
    counts = Counter(r.outcome for r in results)
    failed: dict[str, list[str]] = {}
    for r in results:
        if r.code != ExitCode.OK:
            failed.setdefault(r.outcome, []).append(r.name)
    return {"targets": len(results), "outcomes": dict(sorted(counts.items())), "not_ok": failed,
            "migrations_applied": sum(len(r.migrations_applied) for r in results)}
