"""Command line: ``db-init [run|plan|verify|fleet|demo|completion]``; every setting also from the environment.

Options go before or after the subcommand, as with kubectl and terraform: ``db-init --lock-timeout 30s
plan`` and ``db-init plan --lock-timeout 30s`` are the same. A value is checked by ``job.config``, whose
error names the flag or the variable it came from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from job import __version__, logs, signals
from job.config import SETTINGS, Setting, load_config, load_logging
from job.errors import OUTCOME_BY_CODE, OUTCOMES, PLAN_CHANGES_PENDING, ExitCode, Interrupted, JobError
from job.fleetconfig import FLEET_SETTINGS
from job.plan import how_it_runs
from job.redact import redact
from job.run import RunResult, execute
from job.steps import Step

TERMINATION_LOG = Path(os.environ.get("DB_INIT_TERMINATION_LOG", "/dev/termination-log"))

COMMANDS = {
    "run": "apply what is missing, under Prisma's migration lock (the default command)",
    "plan": "print what run would do, SQL included, and change nothing",
    "verify": "compare the database with prisma/schema.prisma and the migrations folder; 0 only if equal",
    "resolve": "record a failed migration as rolled back (it runs again) or as applied, as `prisma migrate"
               " resolve` does",
    "fleet": "many databases from a targets file: `fleet run` migrates this task's share, `fleet status`"
             " reads them all",
    "demo": "the production break on a throwaway PostgreSQL, fixed before your eyes (development install)",
    "completion": "print a bash completion script: source <(db-init completion bash)",
}


def _exit_code_table() -> str:
    lines = ["exit codes:"]
    lines += [f"  {int(o.code)}  {o.name:<21}{'retry  ' if o.retryable else '       '}{o.meaning}"
              for o in OUTCOMES]
    lines.append(f"  {PLAN_CHANGES_PENDING} {'changes_pending':<28}plan --exit-code only: run would"
                 " change the database")
    return "\n".join(lines)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The epilog's table kept as written; help text never split inside db-init-job or cloud-logging."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _setting_help(s: Setting) -> str:
    choices = f" (one of: {', '.join(s.choices)})" if s.choices else ""
    default = f"; default {s.default}" if s.default else ""
    return f"{s.help}{choices} [env {s.env}{default}]"


def _add_settings(parser: argparse.ArgumentParser, default: Any) -> None:
    group = parser.add_argument_group("settings (each also from its environment variable)")
    for s in SETTINGS:
        if s.switch_off:  # no value: the flag means "false", as the variable set to false does
            group.add_argument(s.flag, dest=s.key, default=default, action="store_const", const="false",
                               help=_setting_help(s))
        else:
            group.add_argument(s.flag, dest=s.key, default=default, metavar=s.metavar, help=_setting_help(s))


def build_parser() -> argparse.ArgumentParser:
    formatter = _Formatter
    parser = argparse.ArgumentParser(
        prog="db-init", formatter_class=formatter, epilog=_exit_code_table(),
        description="Bring a Prisma/PostgreSQL database to its schema before the app starts.\n"
                    "Options go before or after the command. Durations: 30, 30s, 500ms, 2m.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_settings(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str) -> argparse.ArgumentParser:
        # SUPPRESS: a setting given before the command is not reset by the subcommand's own default.
        p = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name], formatter_class=formatter,
                           epilog=_exit_code_table())
        if name not in ("demo", "completion"):
            _add_settings(p, argparse.SUPPRESS)
        return p

    command("run")
    plan = command("plan")
    plan.add_argument("--json", action="store_true", help="the plan as JSON on stdout")
    plan.add_argument("--exit-code", action="store_true",
                      help=f"exit {PLAN_CHANGES_PENDING} when run would change the database, 0 when there is"
                           " nothing to do (terraform's -detailed-exitcode, moved off 2); drift alone is"
                           " printed, not pending: run leaves it for a human and `verify` fails on it")
    verify = command("verify")
    verify.add_argument("--json", action="store_true", help="the differences as JSON on stdout")
    verify.add_argument("--allow-extra", action="store_true",
                        help="accept tables, columns, indexes and keys the contract does not name")
    resolve = command("resolve")
    which = resolve.add_mutually_exclusive_group(required=True)
    which.add_argument("--rolled-back", metavar="MIGRATION",
                       help="its failed ledger row closed: the next run applies the file again")
    which.add_argument("--applied", metavar="MIGRATION",
                       help="recorded as applied without running it (its failed rows closed)")
    _add_fleet(command("fleet"), formatter)
    demo = command("demo")
    demo.add_argument("--verbose", action="store_true", help="also show the job's log lines as they happen")
    completion = command("completion")
    completion.add_argument("shell", choices=["bash"], metavar="SHELL", help="bash")
    return parser


FLEET_ACTIONS = {
    "run": "migrate this task's share of the targets (Cloud Run task or Indexed Job index), a few at a time",
    "status": "read every target (read-only) and print a table; 0 only when the fleet is converged",
}


def _add_fleet(fleet: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    actions = fleet.add_subparsers(dest="fleet_action", metavar="ACTION", title="actions", required=True)
    for name, description in FLEET_ACTIONS.items():
        p = actions.add_parser(name, help=description, description=description, formatter_class=formatter,
                               epilog=_exit_code_table())
        _add_settings(p, argparse.SUPPRESS)
        group = p.add_argument_group("fleet settings (each also from its environment variable)")
        for s in FLEET_SETTINGS:
            group.add_argument(s.flag, dest=s.key, default=None, metavar=s.metavar, help=_setting_help(s))
        if name == "status":
            p.add_argument("--json", action="store_true", help="the status of every target as JSON on stdout")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from job.demo import run_demo
        return run_demo(verbose=args.verbose)
    if args.command == "completion":
        from job.completion import bash_script
        print(bash_script(parser))
        return ExitCode.OK
    flags = {s.key: getattr(args, s.key, None) for s in SETTINGS}
    settings = load_logging(flags, os.environ)
    logs.configure(settings.format, settings.level, sink=settings.sink, sink_endpoint=settings.sink_endpoint)
    log = logs.get_logger()
    previous = signals.install()
    try:
        return _fleet(args, flags, log) if args.command == "fleet" else _command(args, flags, log)
    finally:
        logs.close()  # before the default handlers are back: the sink flushes with signals held
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _command(args: argparse.Namespace, flags: dict[str, str | None], log: Any) -> int:
    started = time.monotonic()
    mode = args.command or "run"
    try:
        signals.raise_if_received()
        config = load_config(flags)
        log.info("run.started", command=mode, version=__version__,
                 target=config.target.display, url_source=config.url_source, schema=config.target.schema)
        resolving = ("applied", args.applied) if getattr(args, "applied", None) else \
            ("rolled_back", args.rolled_back) if getattr(args, "rolled_back", None) else None
        result = execute(config, mode=mode, log=log, allow_extra=getattr(args, "allow_extra", False),
                         resolve=resolving)
        if mode == "plan":
            return _plan(log, result, started, as_json=args.json, detailed=args.exit_code,
                         refuse_rows=config.refuse_blocking_rows)
        if mode == "verify":
            _print_differences(result, as_json=args.json)
            fields = {"differences": len(result.differences), "notes": len(result.plan.notes)}
            if result.differences:
                _finish(log, ExitCode.DRIFT, started, reason=f"{len(result.differences)} difference(s):"
                        f" {result.differences[0]}", fields=fields)
                return ExitCode.DRIFT
            _finish(log, ExitCode.OK, started, fields=fields)
            return ExitCode.OK
        _finish(log, ExitCode.OK, started, fields=_run_fields(result))
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


def _fleet(args: argparse.Namespace, flags: dict[str, str | None], log: Any) -> int:
    from job import fleetcli
    started = time.monotonic()
    try:
        signals.raise_if_received()
        if args.fleet_action == "status":
            return fleetcli.fleet_status(flags, fleetcli.fleet_flags(args), log, as_json=args.json)
        return fleetcli.fleet_run(flags, fleetcli.fleet_flags(args), log)
    except Interrupted as sig:  # before or after the targets ran; during, the pool handles it
        _finish(log, ExitCode.INTERRUPTED, started, reason=f"interrupted by {sig.signal_name}")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: the one case where a traceback helps
        log.exception("run.crashed", error=redact(repr(exc)))
        _finish(log, ExitCode.INTERNAL, started, reason=f"internal error: {type(exc).__name__}")
        return ExitCode.INTERNAL


def _run_fields(result: RunResult) -> dict[str, Any]:
    return {"changed": result.applied,
            "migrations_applied": list(result.migrations_applied),
            "ledger_rows_repaired": result.plan.ledger_rows_repaired if result.applied else 0,
            "orphan_rows": result.orphans}


def _plan(log: Any, result: RunResult, started: float, *, as_json: bool, detailed: bool,
          refuse_rows: int | None = None) -> int:
    """Print the whole plan, drift included (run reports drift and passes, so plan does too);
    with --exit-code, pending changes end 10. What the lock guard would refuse ends 5, as run would."""
    _print_plan(result, as_json=as_json)
    plan = result.plan
    fields = {"changes_pending": plan.pending, "steps": len(plan.steps), "validations": len(plan.validations),
              "unresolved": len(plan.unresolved)}
    if plan.locks:
        from job.lockguard import refusal
        if (refused := refusal(plan, refuse_rows)) is not None:
            _finish(log, ExitCode.NEEDS_HUMAN, started, reason=refused, fields=fields)
            return ExitCode.NEEDS_HUMAN
    code = PLAN_CHANGES_PENDING if detailed and plan.pending else ExitCode.OK
    _finish(log, ExitCode.OK, started, fields=fields | {"exit_code": code})
    return code


def _finish(log: Any, code: ExitCode, started: float, *, reason: str | None = None,
            fields: dict[str, Any] | None = None) -> None:
    outcome = OUTCOME_BY_CODE[code]
    summary: dict[str, Any] = {"outcome": outcome.name, "exit_code": int(code),
                               "retryable": outcome.retryable,
                               "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    if reason is None:
        log.info("run.finished", **(summary | (fields or {})))
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
                    "ledger_change": s.ledger_change, "sql": s.sql_text(), "details": s.details,
                    "units": [{"statements": [u.first + 1, u.last], "line": u.line,
                               "transaction": u.transaction, "why": u.why, "sql": u.text} for u in s.units]}
        print(json.dumps({"changes_pending": plan.pending,
                          "steps": [doc(s) for s in plan.steps],
                          "after_commit": [doc(s) for s in plan.validations],
                          "notes": list(plan.notes), "unresolved": list(plan.unresolved),
                          "locks": [e.fields() for e in plan.locks]}, indent=2))
        return
    if not plan.pending:
        print("Nothing to do: the database is up to date." if not plan.unresolved
              else "Nothing the job would change on its own.")
    header = ""
    for n, step in enumerate(plan.steps, 1):
        if (how := how_it_runs(plan, step)) != header:
            header = how
            print(f"-- {how}:")
        print(f"-- step {n}: {step.summary}")
        if step.units:
            for number, unit in enumerate(step.units, 1):
                why = f": {unit.why}" if unit.why else ""
                print(f"-- {unit.describe(number, len(step.units)).split('): ')[0]}){why}")
                print(unit.text.strip() + ";\n")
        else:
            print(step.sql_text().strip() + "\n")
        if plan.locks and step.migration:
            from job.lockguard import plan_lines
            if lines := plan_lines(plan, step.migration):
                print("\n".join(lines) + "\n")
    for step in plan.validations:
        print(f"-- after commit, on its own: {step.summary}")
        print(step.sql_text().strip() + "\n")
    for note in plan.notes:
        print(f"-- note: {note}")
    for diff in plan.unresolved:
        print(f"-- drift (left for a human): {diff}")


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
