"""Command line: ``db-init [run|plan|demo]``; every setting also from the environment."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from job import __version__, logs, signals
from job.config import SETTINGS, load_config, load_logging
from job.errors import OUTCOME_BY_CODE, ExitCode, Interrupted, JobError
from job.redact import redact
from job.run import RunResult, execute
from job.steps import Step

TERMINATION_LOG = Path(os.environ.get("DB_INIT_TERMINATION_LOG", "/dev/termination-log"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="db-init", description="Bring a Prisma/PostgreSQL database to its schema before the app starts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for s in SETTINGS:
        parser.add_argument(f"--{s.key.replace('_', '-')}", dest=s.key, default=None, metavar="VALUE",
                            help=f"{s.help} (env {s.env}; default {s.default or 'none'})")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="apply what is missing (the default)")
    plan = sub.add_parser("plan", help="print what run would do, change nothing")
    plan.add_argument("--json", action="store_true", help="machine-readable plan on stdout")
    verify = sub.add_parser("verify", help="compare the database with the contract and the migrations;"
                            " exit 0 only when they agree")
    verify.add_argument("--json", action="store_true", help="machine-readable differences on stdout")
    verify.add_argument("--allow-extra", action="store_true",
                        help="ignore tables, columns, indexes and keys the contract does not name")
    sub.add_parser("demo", help="fix a broken throwaway database and show before and after")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from job.demo import run_demo  # imports pgserver, which only the demo needs
        return int(run_demo())
    flags = {s.key: getattr(args, s.key) for s in SETTINGS}
    fmt, level = load_logging(flags, os.environ)
    logs.configure(fmt, level)
    log = logs.get_logger()
    previous = signals.install()
    started = time.monotonic()
    mode = args.command or "run"
    try:
        config = load_config(flags)
        log.info("run.started", command=args.command or "run", version=__version__,
                 target=config.target.display, url_source=config.url_source, schema=config.target.schema)
        result = execute(config, mode=mode, log=log, allow_extra=getattr(args, "allow_extra", False))
        if mode == "plan":
            _print_plan(result, as_json=args.json)
        if mode == "verify":
            _print_differences(result, as_json=args.json)
            if result.differences:
                _finish(log, ExitCode.DRIFT, started, reason=f"{len(result.differences)} difference(s):"
                        f" {result.differences[0]}")
                return ExitCode.DRIFT
        _finish(log, ExitCode.OK, started, result=result)
        return ExitCode.OK
    except JobError as err:
        _finish(log, err.code, started, reason=err.reason, fields=err.fields)
        return err.code
    except Interrupted as sig:
        reason = f"interrupted by {sig.signal_name}; the transaction was rolled back"
        _finish(log, ExitCode.INTERRUPTED, started, reason=reason)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: the one case where a traceback helps
        log.exception("run.crashed", error=redact(repr(exc)))
        _finish(log, ExitCode.INTERNAL, started, reason=f"internal error: {type(exc).__name__}")
        return ExitCode.INTERNAL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _finish(log: Any, code: ExitCode, started: float, *, result: RunResult | None = None,
            reason: str | None = None, fields: dict[str, Any] | None = None) -> None:
    outcome = OUTCOME_BY_CODE[code]
    summary: dict[str, Any] = {"outcome": outcome.name, "exit_code": int(code),
                               "retryable": outcome.retryable,
                               "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    if result is not None:
        summary |= {"migrations_applied": list(result.plan.migrations_applied) if result.applied else [],
                    "ledger_rows_repaired": result.plan.ledger_rows_repaired if result.applied else 0,
                    "changed": result.applied, "orphan_rows": result.orphans}
    if reason is None:
        log.info("run.finished", **summary)
        return
    summary["reason"] = redact(reason)
    extra = {k: v for k, v in (fields or {}).items() if v is not None and k not in summary}
    log.error("run.finished", **summary, **extra)
    _write_termination_message(summary["reason"])


def _write_termination_message(reason: str) -> None:
    """Kubernetes shows this file in `kubectl describe pod`; elsewhere it does not exist.

    One line, cut on a character boundary to fit the 4096 bytes the kubelet keeps. The kubelet
    mounts the file writable even on a read-only root file system.
    """
    if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        line = " ".join(reason.split()).encode()[:4095].decode("utf-8", "ignore") + "\n"
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(line, encoding="utf-8")


def _print_plan(result: RunResult, *, as_json: bool) -> None:
    plan = result.plan
    if as_json:
        def doc(s: Step) -> dict[str, Any]:
            return {"action": s.action, "summary": s.summary, "migration": s.migration,
                    "ledger_change": s.ledger_change, "sql": s.sql_text(), "details": s.details}
        print(json.dumps({"steps": [doc(s) for s in plan.steps],
                          "after_commit": [doc(s) for s in plan.validations],
                          "notes": list(plan.notes), "unresolved": list(plan.unresolved)}, indent=2))
        return
    if plan.empty:
        print("Nothing to do: the database is up to date.")
    else:
        print("-- one transaction:")
    for n, step in enumerate(plan.steps, 1):
        print(f"-- step {n}: {step.summary}")
        print(step.sql_text().strip() + "\n")
    for step in plan.validations:
        print(f"-- after commit, on its own: {step.summary}")
        print(step.sql_text().strip() + "\n")
    for note in plan.notes:
        print(f"-- note: {note}")
    for diff in plan.unresolved:
        print(f"-- left for a human: {diff}")


def _print_differences(result: RunResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"differences": list(result.differences), "notes": list(result.plan.notes)},
                         indent=2))
        return
    if not result.differences:
        print("The database matches the contract and the migrations folder.")
    for line in result.differences:
        print(line)
    for note in result.plan.notes:
        print(f"note: {note}")


def entrypoint() -> None:
    try:
        code = main()
    except Interrupted:  # before main's own handling began (argument parsing)
        code = ExitCode.INTERRUPTED
    sys.exit(code)
