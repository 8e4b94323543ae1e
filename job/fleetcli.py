"""``db-init fleet run`` and ``db-init fleet status``: settings, targets, share, report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from job import fleet, shard
from job.config import Config, load_config
from job.errors import ConfigError, ExitCode, JobError
from job.fleetconfig import FLEET_SETTINGS, FleetConfig, load_fleet_config
from job.redact import redact
from job.targets import Target, TargetsError, load_targets

# load_config wants a URL; each target's own replaces it before anything connects.
_NO_URL = "postgresql://localhost/db-init-fleet"


def fleet_flags(args: Any) -> dict[str, str | None]:
    return {s.key: getattr(args, s.key, None) for s in FLEET_SETTINGS}


def _load(flags: Mapping[str, str | None], fleet_flags: Mapping[str, str | None], log: Any
          ) -> tuple[FleetConfig, Config, list[Target], int]:
    """Settings and every target, checked; returns the group's targets and how many the file holds."""
    cfg = load_fleet_config(fleet_flags, os.environ)
    base = load_config({**flags, "database_url": _NO_URL}, os.environ)
    try:
        targets = load_targets(cfg.targets, os.environ)
    except TargetsError as err:
        for problem in err.problems:
            log.error("target.invalid", file=str(cfg.targets), problem=problem)
        raise
    picked = [t for t in targets if cfg.group is None or t.group == cfg.group]
    if cfg.group is not None and not picked:
        groups = sorted({t.group for t in targets})
        raise ConfigError(f"no target in group {cfg.group!r}; the file's groups: {', '.join(groups)[:200]}")
    return cfg, base, picked, len(targets)


def fleet_run(flags: Mapping[str, str | None], fleet_flags: Mapping[str, str | None], log: Any) -> int:
    started = time.monotonic()
    try:
        cfg, base, picked, total = _load(flags, fleet_flags, log)
    except JobError as err:
        return _finish(log, started, err.code, {}, reason=err.reason)
    mine = set(shard.share([t.name for t in picked], index=cfg.task_index, count=cfg.task_count))
    targets = [t for t in picked if t.name in mine]
    log.info("fleet.started", command="fleet run", task_index=cfg.task_index, task_count=cfg.task_count,
             group=cfg.group, targets_in_file=total, targets=len(targets), concurrency=cfg.concurrency)
    results, stopped_by = fleet.run_targets(targets, fleet.migrate(base), concurrency=cfg.concurrency,
                                            log=log)
    code, tolerated = fleet.task_exit_code(results, cfg.max_failed)
    fields = fleet.summary(results) | {"task_index": cfg.task_index, "task_count": cfg.task_count,
                                        "tolerated": tolerated}
    reason = None
    if stopped_by:
        reason = f"interrupted by {stopped_by}: running targets rolled back, the rest not started"
    elif code != ExitCode.OK:
        reason = "; ".join(f"{outcome}: {', '.join(names)}" for outcome, names in fields["not_ok"].items())
    return _finish(log, started, code, fields, reason=reason)


def fleet_status(flags: Mapping[str, str | None], fleet_flags: Mapping[str, str | None], log: Any, *,
                 as_json: bool) -> int:
    """Every target of the group (not only this task's share), read-only; 0 only when all converged."""
    started = time.monotonic()
    try:
        cfg, base, picked, total = _load(flags, fleet_flags, log)
        work = fleet.inspect(base)
    except JobError as err:
        return _finish(log, started, err.code, {}, reason=err.reason, event="fleet.status")
    log.info("fleet.started", command="fleet status", group=cfg.group, targets_in_file=total,
             targets=len(picked), concurrency=cfg.concurrency)
    results, stopped_by = fleet.run_targets(picked, work, concurrency=cfg.concurrency, log=log)
    _print_status(results, as_json=as_json)
    code = fleet.most_severe([r.code for r in results])
    reason = f"interrupted by {stopped_by}" if stopped_by else None if code == ExitCode.OK else \
        f"{sum(r.code != ExitCode.OK for r in results)} of {len(results)} target(s) not converged"
    return _finish(log, started, code, fleet.summary(results) | {"converged": code == ExitCode.OK},
                   reason=reason, event="fleet.status")


def _finish(log: Any, started: float, code: int, fields: dict[str, Any], *, reason: str | None,
            event: str = "fleet.finished") -> int:
    summary = {"outcome": fleet.outcome_name(code), "exit_code": code,
               "duration_ms": round((time.monotonic() - started) * 1000, 1)} | fields
    if reason is None:
        log.info(event, **summary)
    else:
        log.error(event, **summary, reason=redact(reason))
        if event == "fleet.finished":
            from job.cli import _write_termination_message  # the same one-line reason as a single run's
            _write_termination_message(redact(reason))
    return code


def _print_status(results: Sequence[fleet.TargetResult], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"converged": all(r.code == ExitCode.OK for r in results), "targets": [
            {"name": r.name, "group": r.group, "status": r.outcome, "exit_code": r.code,
             "reason": r.reason, **r.status} for r in results]}, indent=2))
        return
    rows = [("TARGET", "GROUP", "STATUS", "PENDING", "FAILED ROWS", "DRIFT", "LAST APPLIED")]
    for r in results:
        s = r.status
        rows.append((r.name, r.group, r.outcome, str(len(s["pending"])) if s else "?",
                     str(s["failed_rows"]) if s else "?", str(len(s["drift"])) if s else "?",
                     (s.get("last_applied") or "-") if s else "?"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in results:
        if r.code != ExitCode.OK and r.reason:
            print(f"{r.name}: {r.reason}")
