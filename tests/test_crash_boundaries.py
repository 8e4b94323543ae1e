"""A crash at every commit boundary of a run, from every state of HISTORY.md, then one more run:
the database must end exactly as a clean run leaves it.

For each state (tests/scenarios.STATES, plus the production break in a non-default schema, HISTORY.md
state 10) the state is built once into a template database; every run below starts from a fresh copy
of it (the same database names per state, dropped and created again), so the rows the builders date
with now() or draw at random are the same in every copy, and a difference can only be the crash's doing.

- The reference: a clean `python -m job run` on a copy, to the end (exit 0), then `python -m job verify`
  (exit 0; `--allow-extra` for the ahead state, whose newer table is expected); its fingerprint (below).
  The crash at k = 0 leaves nothing committed, so the run after it is in effect a second clean run: it
  proves the comparison free of noise (a time or a random value the job wrote would show there first).
- The boundaries: the commit events of the clean run's log (COMMIT_EVENTS). k = 0 is a crash before the
  first commit: on `lock.acquired`, while the job holds Prisma's lock and inspects again under it (on
  `db.connected` for a state whose run commits nothing: the one-round-trip glance). k = 1..K: right after
  the line of the k-th commit.
- The crash, two kinds: SIGKILL of the job (an evicted or OOM-killed pod), and an immediate stop of the
  server (`pg_ctl stop -m immediate`: SIGQUIT to the postmaster; the next start runs crash recovery),
  waiting for the job to exit (it must exit 3, connection lost, or 0 if it had finished) before the
  server starts again. The crash lands a few milliseconds after the job wrote the event line (the time
  this process takes to read it), so the crash point is "after the k-th commit, before or during the
  statement that follows it" (possibly after the next commit too, when it is that quick: the crashed
  run's log then shows more commits than k, which the report names).
- Then one run (default settings: `DB_INIT_HEAL=pending`, as an init container runs it) must exit 0 and
  leave the reference's fingerprint. No second run is allowed: after a crash `prisma migrate deploy`
  either finishes in one run or stops on P3009, which the job's design removes; nothing here is a state
  in which Prisma itself would need two runs. When they differ, the report also says whether a second
  run, then a `--heal always` run, would have converged: diagnosis only, never a pass.

The fingerprint of the target schema: every relation (tables, views, sequences, indexes) by kind,
every column (position, format_type, nullability, default, identity, generated), every constraint
(definition, convalidated), every index (pg_get_indexdef, indisvalid, indisready), enums with their
values in order, view definitions, every table's rows (sorted JSON), and the ledger normalised
(migration_name, checksum, finished or not, rolled back or not, applied_steps_count; not ids, times or
logs); the dated `session_merged_YYYYMMDD` copy's date is normalised. Outside the target schema: every
schema's name (a scratch replay schema left behind would show), its relations and its rows.

Cost: every boundary is two job processes (~0.7 s each on 2 cores, mostly interpreter start-up and the
replay). The states whose schema is healed (partial, partial_both, lowercase_v1) have ~60 boundaries
each, one healing step per transaction, most between two alike steps (two CREATE INDEX, two VALIDATE).
By default a run of alike steps (ALIKE) is crashed after its first and after its last step (the run
begun, the run done), every other boundary always; CRASH_BOUNDARIES=all crashes at every one of the 220
(about three times longer). SIGKILLs run two at a time, each on its own copy; immediate stops one by one.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, LiteralString

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR, ROOT, JobRun, job_env, job_sessions, parse_events, rows_by_table, run_job
from pgcluster import Db, PgCluster
from psycopg import sql
from scenarios import STATES, add_sessions

EVERY_BOUNDARY = os.environ.get("CRASH_BOUNDARIES") == "all"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600 if EVERY_BOUNDARY else 900)]

Crash = Literal["sigkill", "server_immediate"]
CRASHES: tuple[Crash, ...] = ("sigkill", "server_immediate")

# (state, schema): every state of HISTORY.md in `public`, and the production break in the schema a
# `?schema=` URL names (HISTORY.md 10).
CASES = [(state, "public") for state in STATES] + [("demo", "shop_app")]

# The lines the job logs right after a COMMIT of its own (job/run.py):
# - "step.applied": after the prepare transaction (one line per step it held, all written after its
#   one COMMIT by _log_applied), after each healing step (its own transaction, _heal), after the session
#   merge (_repairs(plan.merge)), after each migration (action apply_migration: the file and its ledger
#   row in one transaction, _migrate; transaction "none" for a file run outside one, logged after the
#   row's last autocommit), after each VALIDATE CONSTRAINT (_validate);
# - "ledger.failed_row_closed": a close_failed_row step of the prepare transaction (_log_applied).
# Not commits of this run: "heal.skipped" and "fk.not_validated" (rolled back), "apply.already_applied"
# (another runner's commit), "migration.outside_transaction" (logged before its first commit).
COMMIT_EVENTS = frozenset({"step.applied", "ledger.failed_row_closed"})
# The steps of the one prepare transaction (job/plan.py make_plan, job/app_history.py resolve): their
# lines follow one COMMIT, so together they are one boundary.
PREPARE_ACTIONS = frozenset({"create_schema", "rename_session_table", "drop_empty_session",
                             "create_ledger", "close_failed_row", "drop_invalid_index"})

# Runs of alike steps, each its own transaction: the healing phases (job/heal.py heal: types, then tables
# and their columns, indexes, keys and CHECKs, views) and the validations after the migrations (run.py
# _validate). Within a run the steps are alike and independent of each other, so by default a run is
# crashed after its first and after its last step only.
ALIKE = {"create_sequence": "types", "create_enum": "types", "add_enum_value": "types",
         "create_table": "tables", "add_column": "tables", "set_default": "tables",
         "create_index": "indexes", "rename_index": "indexes", "add_primary_key": "indexes",
         "add_unique_constraint": "indexes", "add_foreign_key": "constraints", "add_check": "constraints",
         "rename_constraint": "constraints", "create_view": "views", "validate_constraint": "validations"}

BULK_SESSIONS = 30_000


def state_both_populated_bulk(conn: psycopg.Connection[Any], schema: str, migrations_dir: Path) -> None:
    """HISTORY.md 7 with 30k more sessions in "session" only: the merge copies them, long enough (~200
    ms) to be caught in the middle of its INSERT."""
    STATES["both_populated"](conn, schema, migrations_dir)
    add_sessions(conn, schema, "session", BULK_SESSIONS, prefix="bulk_shop")


BUILDERS = STATES | {"both_populated_bulk": state_both_populated_bulk}

JOB_TIMEOUT = 120.0
MERGED_DATE = re.compile(r"session_merged_\d{8}")  # a suffix (_2) stays: a second copy is a difference


@dataclass(frozen=True)
class Boundary:
    k: int  # 0: before the first commit
    lines: int  # commit-event lines logged when the crash is set off (0: on the start event)
    action: str  # "start", "prepare", or the action of the step just committed
    label: str


@dataclass(frozen=True)
class Reference:
    template: str
    events: tuple[dict[str, Any], ...]
    fingerprint: dict[str, list[str]]
    boundaries: tuple[Boundary, ...]
    start_event: str


# --- the fingerprint ---------------------------------------------------------------------------

def _norm(value: str) -> str:
    return MERGED_DATE.sub("session_merged_<date>", value)


def _strings(conn: psycopg.Connection[Any], query: LiteralString | sql.Composed, params: Sequence[Any]
             ) -> list[str]:
    return sorted(_norm(json.dumps(list(row), default=str)) for row in conn.execute(query, params))


_RELATIONS = ("SELECT c.relkind, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
              " WHERE n.nspname = %s")
_COLUMNS = ("SELECT c.relname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,"
            " format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),"
            " a.attidentity, a.attgenerated"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0"
            " AND NOT a.attisdropped")
_CONSTRAINTS = ("SELECT coalesce(c.relname, t.typname), k.conname, k.contype, pg_get_constraintdef(k.oid),"
                " k.convalidated FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace"
                " LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_type t ON t.oid = k.contypid"
                " WHERE n.nspname = %s")
_INDEXES = ("SELECT t.relname, i.relname, x.indisvalid, x.indisready, pg_get_indexdef(x.indexrelid)"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %s")
_ENUMS = ("SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t"
          " JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace"
          " WHERE n.nspname = %s GROUP BY t.typname")
_VIEWS = ("SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n"
          " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('v', 'm')")
_OTHER_SCHEMAS = ("SELECT nspname FROM pg_namespace WHERE nspname <> %s"
                  " AND nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
                  " AND nspname !~ '^pg_(toast_)?temp_'")


def fingerprint(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[str]]:
    """What a run leaves, every item a string, each list sorted: compared item by item."""
    fp = {"relations": _strings(conn, _RELATIONS, (schema,)),
          "columns": _strings(conn, _COLUMNS, (schema,)),
          "constraints": _strings(conn, _CONSTRAINTS, (schema,)),
          "indexes": _strings(conn, _INDEXES, (schema,)),
          "enums": _strings(conn, _ENUMS, (schema,)),
          "views": _strings(conn, _VIEWS, (schema,))}
    for table, rows in rows_by_table(conn, schema).items():
        if table != "_prisma_migrations":
            fp[f"rows of {_norm(table)}"] = rows
    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"._prisma_migrations',)).fetchone() != (None,):
        ledger = sql.SQL("SELECT migration_name, checksum, finished_at IS NOT NULL,"
                         " rolled_back_at IS NOT NULL, applied_steps_count FROM {}").format(
            sql.Identifier(schema, "_prisma_migrations"))
        fp["ledger"] = _strings(conn, ledger, ())
    others = [r[0] for r in conn.execute(_OTHER_SCHEMAS, (schema,))]
    fp["other schemas"] = sorted(others)
    for other in others:
        fp[f"relations of {other}"] = _strings(conn, _RELATIONS, (other,))
        for table, rows in rows_by_table(conn, other).items():
            fp[f"rows of {other}.{table}"] = rows
    return fp


def differences(reference: dict[str, list[str]], found: dict[str, list[str]]) -> list[str]:
    """Item by item, as multisets: a ledger row recorded twice is a difference too."""
    out = []
    for key in sorted(reference.keys() | found.keys()):
        want, got = Counter(reference.get(key, [])), Counter(found.get(key, []))
        if want == got:
            continue
        out += [f"{key}: only in the reference: {item}" for item in sorted((want - got).elements())]
        out += [f"{key}: only after the crash: {item}" for item in sorted((got - want).elements())]
    return out


# --- boundaries --------------------------------------------------------------------------------

def boundaries(events: Sequence[dict[str, Any]]) -> list[Boundary]:
    """k = 0 and one boundary per COMMIT of the clean run, in the order of its log."""
    commits = [e for e in events if e.get("event") in COMMIT_EVENTS]
    prepare = [i for i, e in enumerate(commits) if e.get("action") in PREPARE_ACTIONS]
    assert prepare == list(range(len(prepare))), "the prepare transaction's lines come first, together"
    out = [Boundary(0, 0, "start", "before the first commit")]
    if prepare:
        actions = ", ".join(str(commits[i]["action"]) for i in prepare)
        out.append(Boundary(1, len(prepare), "prepare", f"the prepare transaction ({actions})"))
    for line, e in enumerate(commits[len(prepare):], len(prepare) + 1):
        what = e.get("migration") or e.get("summary") or ""
        out.append(Boundary(len(out), line, str(e["action"]), f"{e['action']}: {what}"))
    return out


def selected(bounds: Sequence[Boundary]) -> list[Boundary]:
    """Every boundary, or (by default) the first and last of each run of alike steps, and every other one."""
    if EVERY_BOUNDARY:
        return list(bounds)
    phases = [ALIKE.get(b.action) or f"#{b.k}" for b in bounds]  # a migration is like no other
    return [b for i, b in enumerate(bounds) if i in (0, len(bounds) - 1)
            or phases[i - 1] != phases[i] or phases[i + 1] != phases[i]]


# --- databases ---------------------------------------------------------------------------------

def copy_of(pg: PgCluster, name: str, template: str) -> Db:
    pg.drop_database(name)
    query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    if pg.major >= 15:
        query += sql.SQL(" STRATEGY = FILE_COPY")
    with pg.admin() as conn:
        conn.execute(query)
    return Db(name=name, url=pg.url(name), cluster=pg)


def url_of(db: Db, schema: str) -> str:
    return db.url if schema == "public" else f"{db.url}?schema={schema}"


def case_id(state: str, schema: str) -> str:
    return state if schema == "public" else f"{state}@{schema}"


def db_name(state: str, schema: str) -> str:
    return state if schema == "public" else f"{state}_{schema}"


def clean_run(db: Db, schema: str) -> tuple[JobRun, dict[str, list[str]]]:
    run = run_job(url_of(db, schema))
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    with db.connect() as conn:
        return run, fingerprint(conn, schema)


class References:
    """One template and one reference per case, shared by both kinds of crash; dropped at the end."""

    def __init__(self, pg: PgCluster) -> None:
        self.pg = pg
        self._made: dict[tuple[str, str], Reference] = {}

    def get(self, state: str, schema: str) -> Reference:
        if (state, schema) in self._made:
            return self._made[(state, schema)]
        pg = self.pg
        template = f"crash_tmpl_{db_name(state, schema)}"
        pg.drop_database(template)
        pg.create_database(template)
        with pg.admin(template) as conn:
            BUILDERS[state](conn, schema, MIGRATIONS_DIR)
        copy = copy_of(pg, f"{template}_ref", template)
        run, fp = clean_run(copy, schema)
        # The ahead state keeps the newer app's table on purpose: verify accepts it only so.
        extra = ("--allow-extra",) if state == "ahead" else ()
        verify = run_job(url_of(copy, schema), "verify", *extra)
        assert verify.code == 0, verify.stdout + verify.stderr
        pg.drop_database(copy.name)
        events = tuple(run.events)
        bounds = tuple(boundaries(events))
        start = "lock.acquired" if run.has("lock.acquired") else "db.connected"
        if len(bounds) > 1:
            assert run.has("lock.acquired"), "a run that commits takes the lock first"
        self._made[(state, schema)] = Reference(template, events, fp, bounds, start)
        return self._made[(state, schema)]

    def drop(self) -> None:
        self.pg.start()
        for ref in self._made.values():
            self.pg.drop_database(ref.template)


@pytest.fixture(scope="module")
def references(pg: PgCluster) -> Iterator[References]:
    refs = References(pg)
    yield refs
    refs.drop()


# --- one crash ---------------------------------------------------------------------------------

@dataclass
class Crashed:
    code: int | None
    events: list[dict[str, Any]]
    fired: bool  # the crash happened (the job did not end before its boundary)

    @property
    def commits(self) -> int:
        return sum(1 for e in self.events if e.get("event") in COMMIT_EVENTS)


def crash_run(db: Db, schema: str, boundary: Boundary, start_event: str, crash: Crash) -> Crashed:
    """Start the job, read its log line by line and crash right after the boundary's line."""
    proc = subprocess.Popen([sys.executable, "-m", "job", "run"], cwd=ROOT, env=job_env(url_of(db, schema)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(JOB_TIMEOUT, proc.kill)  # a job that hangs fails the test, not CI
    watchdog.start()
    events: list[dict[str, Any]] = []
    fired, commits = False, 0
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            event = parse_events(line)[0]
            events.append(event)
            name = event.get("event")
            commits += name in COMMIT_EVENTS
            if (boundary.lines == 0 and name == start_event) or \
                    (boundary.lines and name in COMMIT_EVENTS and commits == boundary.lines):
                fired = True  # the job runs on meanwhile: the crash lands a few ms after this line
                if crash == "sigkill":
                    proc.send_signal(signal.SIGKILL)
                else:
                    db.cluster.stop("immediate")
                break
        events += parse_events(proc.stderr.read())  # what it wrote before it died, or while it exited
        proc.wait(JOB_TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        db.cluster.start()  # crash recovery after an immediate stop; a no-op otherwise
    return Crashed(proc.returncode, events, fired)


def _settled(db: Db, timeout: float = 15) -> None:
    """The killed job's backend gone (its lock and transaction with it), so what follows is
    deterministic; a rerun that raced it would wait on Prisma's lock, which test_under_fire covers."""
    deadline = time.monotonic() + timeout
    while job_sessions(db):
        assert time.monotonic() < deadline, "the killed job's session outlived it"
        time.sleep(0.02)


def _commit_lines(events: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{e.get('action')}: {e.get('migration') or e.get('summary', '')}"
            for e in events if e.get("event") in COMMIT_EVENTS]


def diagnose(db: Db, schema: str, ref: Reference, where: str, crashed: Crashed, rerun: JobRun,
             found: list[str]) -> str:
    """What the rerun left different, and whether more runs would have healed it (diagnosis only)."""
    lines = [where,
             f"  the crashed run: exit {crashed.code}, {crashed.commits} commit line(s) logged"
             f" (reference: {len(_commit_lines(ref.events))})",
             f"  the rerun: exit {rerun.code};"
             f" {'; '.join(_commit_lines(rerun.events)) or 'committed nothing'}"]
    if rerun.code != 0:
        finished = rerun.event("run.finished") if rerun.has("run.finished") else {}
        lines.append(f"  reason: {finished.get('reason') or rerun.stderr[-400:]}")
    lines += [f"  {line}" for line in found[:40]]
    if len(found) > 40:
        lines.append(f"  ... {len(found) - 40} more")
    probes: tuple[tuple[str, dict[str, str]], ...] = (
        ("a second run (pending)", {}), ("then a --heal always run", {"DB_INIT_HEAL": "always"}))
    for label, env in probes:
        more = run_job(url_of(db, schema), **env)
        with db.connect() as conn:
            left = differences(ref.fingerprint, fingerprint(conn, schema))
        lines.append(f"  {label}: exit {more.code}, "
                     + ("converges" if not left else f"{len(left)} difference(s) left"))
        if not left:
            break
    return "\n".join(lines)


# --- the test ----------------------------------------------------------------------------------

def crash_and_rerun(pg: PgCluster, ref: Reference, state: str, schema: str, crash: Crash,
                    boundary: Boundary, work: str) -> str | None:
    """One crash point from a fresh copy of the state; None when the rerun ends as the reference."""
    db = copy_of(pg, work, ref.template)
    where = (f"{case_id(state, schema)}, {crash}, k={boundary.k}/{len(ref.boundaries) - 1}"
             f" (after {boundary.label})")
    crashed = crash_run(db, schema, boundary, ref.start_event, crash)
    if not crashed.fired:
        return (f"{where}: the run ended (exit {crashed.code}) before its boundary;"
                f" it committed {_commit_lines(crashed.events)}")
    problems = []
    if "Traceback" in json.dumps(crashed.events):
        problems.append("the crashed run printed a traceback")
    if crash == "server_immediate" and crashed.code not in (0, 3):
        problems.append(f"the job exited {crashed.code} when the server went away (3 expected)")
    _settled(db)
    rerun = run_job(url_of(db, schema))
    with db.connect() as conn:
        found = differences(ref.fingerprint, fingerprint(conn, schema))
    if "Traceback" in rerun.stderr:
        problems.append("the rerun printed a traceback")
    if rerun.code == 0 and not found and not problems:
        return None
    return diagnose(db, schema, ref, where, crashed, rerun, problems + found)


@pytest.mark.parametrize("crash", CRASHES)
@pytest.mark.parametrize(("state", "schema"), CASES, ids=[case_id(s, sc) for s, sc in CASES])
def test_a_crash_at_every_commit_then_one_run_ends_as_a_clean_run(
        references: References, pg: PgCluster, state: str, schema: str, crash: Crash) -> None:
    pg.start()
    ref = references.get(state, schema)
    points = selected(ref.boundaries)
    # A SIGKILL touches one database: two crash points at a time, each on a copy of its own (2 cores:
    # one job computes while the other waits on the server). An immediate stop takes the whole server.
    workers = 2 if crash == "sigkill" else 1
    names: queue.SimpleQueue[str] = queue.SimpleQueue()
    for n in range(workers):
        names.put(f"crash_{db_name(state, schema)}_{n}")

    def one(boundary: Boundary) -> str | None:
        work = names.get()
        try:
            return crash_and_rerun(pg, ref, state, schema, crash, boundary, work)
        finally:
            names.put(work)

    try:
        with ThreadPoolExecutor(workers) as pool:
            failures = [f for f in pool.map(one, points) if f]
    finally:
        pg.start()
        for n in range(workers):
            pg.drop_database(f"crash_{db_name(state, schema)}_{n}")
    assert not failures, (f"{len(failures)} of {len(points)} crash points did not end as the clean run:\n\n"
                          + "\n\n".join(failures))


# --- a crash in the middle of a long statement --------------------------------------------------

_RUNNING = ("SELECT 1 FROM pg_stat_activity WHERE application_name = 'db-init-job' AND datname = %s"
            " AND state = 'active' AND query LIKE %s")


def crash_mid_statement(db: Db, schema: str, query_start: str, crash: Crash) -> Crashed:
    """Start the job and crash while its session runs a statement that starts with ``query_start``."""
    proc = subprocess.Popen([sys.executable, "-m", "job", "run"], cwd=ROOT, env=job_env(url_of(db, schema)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    fired = False
    try:
        with db.connect() as admin:
            deadline = time.monotonic() + JOB_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if admin.execute(_RUNNING, (db.name, f"{query_start}%")).fetchone():
                    fired = True
                    break
                time.sleep(0.005)
        if fired and crash == "sigkill":
            proc.send_signal(signal.SIGKILL)
        elif fired:
            db.cluster.stop("immediate")
        proc.wait(JOB_TIMEOUT)
        reader.join(JOB_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        db.cluster.start()
    return Crashed(proc.returncode, parse_events("".join(lines)), fired)


@pytest.mark.parametrize("crash", CRASHES)
def test_a_crash_in_the_middle_of_the_session_merge_then_one_run_ends_as_a_clean_run(
        references: References, pg: PgCluster, crash: Crash) -> None:
    """The merge copying 30k sessions in batches, interrupted while a batch runs: that batch's
    transaction is lost, the batches before it stay, and the next run copies only the ids still missing
    (no session twice), then keeps "session" as session_merged_<date>, as a clean run does."""
    pg.start()
    ref = references.get("both_populated_bulk", "public")
    assert any(e.get("action") == "merge_session_tables" for e in ref.events)
    work = "crash_both_populated_bulk"
    try:
        db = copy_of(pg, work, ref.template)
        crashed = crash_mid_statement(db, "public", "WITH batch AS (", crash)
        assert crashed.fired, "no batch of the merge was seen running"
        assert not any(e.get("action") == "merge_session_tables" for e in crashed.events), \
            "the merge committed before the crash: the crash came too late to be mid-statement"
        _settled(db)
        rerun = run_job(db.url)
        with db.connect() as conn:
            found = differences(ref.fingerprint, fingerprint(conn, "public"))
        assert rerun.code == 0 and not found and "Traceback" not in rerun.stderr, \
            diagnose(db, "public", ref, f"both_populated_bulk, {crash}, mid-merge", crashed, rerun, found)
    finally:
        pg.start()
        pg.drop_database(work)
