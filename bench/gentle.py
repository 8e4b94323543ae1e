"""Gentle on big tables: what the job's locks cost a running app when "ProductProfile" is big.

    python bench/gentle.py                                  # 200000, 2000000, 4000000 rows; every case
    python bench/gentle.py --rows 20000,200000 --cases partial,lowercase --json out.json

For each case and row count N, on a PostgreSQL server of its own (tests/pgcluster.py; TEST_PG_BINDIR
picks the binaries, else the newest the tests find), in a fresh database:

- the case's HISTORY.md state (tests/scenarios.py) with "ProductProfile" filled to N rows (one
  INSERT ... SELECT generate_series, text ids, "tenantId" spread over existing "Tenant" rows), thousands of
  sessions, then VACUUM ANALYZE: `partial` (state 3: hand-made tables without the baseline's secondary
  indexes and foreign key on "ProductProfile", checked against the shipped baseline file), `lowercase`
  (state 4: the sessions in "session", the baseline recorded), `both_populated` (state 7: "session" and
  "Session" both populated, a share of ids in both);
- app traffic: 4 connections in threads, each paced at ~75 operations/s (SELECT of a session by key,
  upsert of a session, INSERT into "ProductProfile", SELECT of a "Tenant"), each with a short
  statement_timeout; every operation's start and latency recorded, errors counted. The app's table is
  "Session": while it is missing (before the lowercase fix) the 42P01 is counted and the operation is
  done on "session", as the lowercase-era app would;
- a sampler on another connection, every ~20 ms: the relation locks the job's backends
  (application_name 'db-init-job') hold granted on the schema's tables, with the job's statement, and
  every session waiting on a lock (wait_event_type 'Lock') with its statement and who blocks it;
- a few seconds of traffic alone (before), then the job as a pod runs it (`python -m job run`, JSON logs,
  default settings), traffic going on (during), then a short tail (after).

Per case and N it prints the job's exit code and duration, the longest continuous hold of each strong
lock (ShareLock, ShareRowExclusiveLock, ExclusiveLock, AccessExclusiveLock) on each table with the job's
statement, the app's p50/p99/max latency before, during and after the job, its errors, and the
statements that waited on a lock for more than 1 s. `--json` writes every figure, the job's log events,
the machine, its load, the server's version and settings and the job's commit.

Not a test: a benchmark never fails on a figure (tests/test_bench_smoke.py runs it once at tiny size).
A hold is seen by sampling: `held_ms` is first to last sample that saw it (a lower bound), `held_ms_upper`
the samples around it (an upper bound); the sampling interval actually achieved is reported. Latencies
are measured in this Python process, which shares the machine's cores with the server and the job.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from common import MIGRATIONS, PY, ROOT, compile_job, job_env, load
from pgcluster import PgCluster, find_postgres_bindirs
from psycopg import sql
from scenarios import STATES, add_sessions

CASES = ("partial", "lowercase", "both_populated")
STRONG = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
SCHEMA = "public"
SHORT_MS = 100.0  # holds seen for less than this are named, not timed, in the summaries
TENANTS = 200
BASELINE_FILE = next(MIGRATIONS.glob("*baseline*/migration.sql"))
# Server settings for tables of millions of rows (pgcluster.py's 32 MB of shared_buffers is for tests).
SERVER_SETTINGS = {"shared_buffers": "256MB", "max_wal_size": "4GB"}
REPORTED_SETTINGS = ("server_version", "shared_buffers", "maintenance_work_mem", "work_mem", "max_wal_size",
                     "max_parallel_maintenance_workers", "fsync", "synchronous_commit", "autovacuum")


# --- the database of one case ----------------------------------------------------------------

def baseline_names() -> dict[str, list[str]]:
    """What the shipped baseline builds on "ProductProfile" beyond its table: indexes and foreign keys."""
    text = BASELINE_FILE.read_text()
    index = r'CREATE (?:UNIQUE )?INDEX IF NOT EXISTS "([^"]+)" ON "ProductProfile"'
    key = r'ALTER TABLE "ProductProfile" ADD CONSTRAINT "([^"]+)" FOREIGN KEY'
    return {"indexes": re.findall(index, text), "foreign_keys": re.findall(key, text)}


def catalog_of(conn: psycopg.Connection[Any], table: str) -> dict[str, Any]:
    """The table's indexes (name: valid) and constraints (name: validated) as the catalog has them."""
    indexes = conn.execute(
        "SELECT i.relname, x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname = %s ORDER BY 1", (SCHEMA, table)).fetchall()
    constraints = conn.execute(
        "SELECT k.conname, k.contype::text, k.convalidated FROM pg_constraint k"
        " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname = %s ORDER BY 1", (SCHEMA, table)).fetchall()
    return {"indexes": {str(n): bool(v) for n, v in indexes},
            "constraints": {str(n): {"type": str(t), "validated": bool(v)} for n, t, v in constraints}}


_PRODUCTS = """
INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title", "handle", "description",
    "productType", "vendor", "tags", "price", "enrichment", "createdAt", "updatedAt")
SELECT 'cm' || substr(md5('pp' || g), 1, 23),
       'tn' || (1 + g %% {tenants}),
       'gid://shopify/Product/' || (7000000000 + g),
       (ARRAY['Wool hat', 'Silk scarf', 'Stoneware mug', 'Art print', 'Linen shirt', 'Desk lamp'])[1 + g %% 6]
           || ' ' || g,
       'product-' || g,
       'A ' || (ARRAY['red', 'blue', 'green', 'black'])[1 + g %% 4] || ' piece, batch ' || md5(g::text)
           || ', care: ' || md5((g + 1)::text),
       (ARRAY['Apparel', 'Home', 'Kitchen', 'Art'])[1 + g %% 4],
       'Vendor ' || (g %% 97),
       ARRAY['tag' || (g %% 50), 'season' || (g %% 4)],
       (g %% 10000) / 100.0,
       jsonb_build_object('summary', 'Enriched product ' || g, 'score', g %% 100),
       now() - (g %% 1000) * interval '1 hour',
       now()
FROM generate_series(%s::int, %s::int) g
"""


def fill_products(conn: psycopg.Connection[Any], rows: int) -> None:
    """N rows into "ProductProfile", its secondary indexes dropped first and rebuilt after from their own
    definitions (as fast as a restore), foreign-key triggers off while loading (every tenantId exists)."""
    defs = [str(d) for (d,) in conn.execute(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE n.nspname = %s AND t.relname = 'ProductProfile' AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)", (SCHEMA,))]
    names = [str(n) for (n,) in conn.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE n.nspname = %s AND t.relname = 'ProductProfile' AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)", (SCHEMA,))]
    for name in names:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, name)))
    conn.execute("SET session_replication_role = replica")
    chunk = 1_000_000
    for lo in range(1, rows + 1, chunk):
        conn.execute(sql.SQL(_PRODUCTS.format(tenants=TENANTS)), (lo, min(rows, lo + chunk - 1)))
    conn.execute("SET session_replication_role = DEFAULT")
    for d in defs:
        conn.execute(sql.SQL(d))


def build(pg: PgCluster, case: str, rows: int, sessions: int) -> tuple[str, str, dict[str, Any]]:
    """A fresh database in the case's state, "ProductProfile" at ``rows`` rows: (name, URL, what it holds)."""
    started = time.monotonic()
    name = pg.create_database()
    info: dict[str, Any] = {"state": case}
    with pg.admin(name) as conn:
        STATES[case](conn, SCHEMA, MIGRATIONS)
        conn.execute(sql.SQL(
            'INSERT INTO "Tenant" ("id", "shop", "updatedAt") SELECT \'tn\' || g,'
            " 'store' || g || '.myshopify.com', now() FROM generate_series(1, {}) g").format(
                sql.Literal(TENANTS)))
        if case == "partial":
            wanted = baseline_names()
            have = catalog_of(conn, "ProductProfile")
            present = [n for n in wanted["indexes"] if n in have["indexes"]]
            present += [n for n in wanted["foreign_keys"] if n in have["constraints"]]
            info["baseline_wants"] = wanted
            info["missing_before"] = [n for n in wanted["indexes"] + wanted["foreign_keys"]
                                      if n not in present]
            if present:  # the state should lack them: say so, and make it so
                print(f"  note: state_partial already had {present}; dropped for this case", flush=True)
                for n in present:
                    if n in have["constraints"]:
                        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                            sql.Identifier(SCHEMA, "ProductProfile"), sql.Identifier(n)))
                    else:
                        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, n)))
            info["dropped_to_match"] = present
            add_sessions(conn, SCHEMA, "Session", sessions, prefix="offline_big")
        elif case == "lowercase":
            add_sessions(conn, SCHEMA, "session", sessions, prefix="offline_big")
        elif case == "both_populated":
            add_sessions(conn, SCHEMA, "session", sessions, prefix="offline_big", mark="shpat_old_")
            add_sessions(conn, SCHEMA, "Session", sessions // 3, prefix="offline_big", mark="shpat_new_")
            add_sessions(conn, SCHEMA, "Session", sessions // 2, prefix="online_big", mark="shpat_new_")
        fill_products(conn, rows)
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
            " AND c.relname IN ('ProductProfile', 'Session', 'session', 'Tenant')", (SCHEMA,)).fetchall()
        info["reltuples"] = {str(r): int(t) for r, t, _ in counts}
        info["total_mb"] = {str(r): round(int(b) / 2**20, 1) for r, _, b in counts}
        info["shared_session_ids"] = (conn.execute(
            'SELECT count(*) FROM "session" l JOIN "Session" u USING ("id")').fetchone() or (0,))[0] \
            if case == "both_populated" else 0
        info["catalog_before"] = catalog_of(conn, "ProductProfile")
    info["build_s"] = round(time.monotonic() - started, 1)
    return name, pg.url(name), info


# --- app traffic -------------------------------------------------------------------------------

@dataclass
class Op:
    start: float  # seconds since the case's clock started
    kind: str
    ms: float
    error: str | None = None  # SQLSTATE (or exception name) of a failed operation
    missing_session: bool = False  # "Session" was missing: the operation went to "session"


class AppTraffic:
    """``connections`` threads, each its own connection, paced at ``rate`` operations per second."""

    KINDS = ("session_select", "session_upsert", "product_insert", "tenant_select")

    def __init__(self, url: str, clock: float, *, connections: int, rate: float, timeout_ms: int,
                 sessions: int) -> None:
        self.url, self.clock, self.rate = url, clock, rate
        self.timeout_ms, self.sessions = timeout_ms, sessions
        self.stop = threading.Event()
        self.ops: list[list[Op]] = [[] for _ in range(connections)]
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                        for i in range(connections)]
        self.reconnects = 0

    def __enter__(self) -> AppTraffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def all_ops(self) -> list[Op]:
        return sorted((o for ops in self.ops for o in ops), key=lambda o: o.start)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, application_name="bench-app", connect_timeout=10,
                               options=f"-c statement_timeout={self.timeout_ms}")

    def _loop(self, index: int) -> None:
        rnd = random.Random(index)
        out = self.ops[index]
        period = 1.0 / self.rate
        conn = self._connect()
        next_at = time.monotonic() + rnd.random() * period
        n = 0
        try:
            while not self.stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                kind = self.KINDS[n % len(self.KINDS)]
                n += 1
                started = time.monotonic()
                op = Op(started - self.clock, kind, 0.0)
                try:
                    self._do(conn, kind, op, rnd, index, n)
                except psycopg.Error as e:
                    op.error = e.sqlstate or type(e).__name__
                    if conn.closed or conn.broken:
                        self.reconnects += 1
                        conn = self._connect()
                op.ms = (time.monotonic() - started) * 1000
                out.append(op)
                next_at = max(next_at + period, time.monotonic())  # a stall skips slots, never bursts
        finally:
            conn.close()

    def _do(self, conn: psycopg.Connection[Any], kind: str, op: Op, rnd: random.Random, index: int,
            n: int) -> None:
        if kind == "tenant_select":
            conn.execute('SELECT "id", "shop", "planId", "billingStatus", "settings" FROM "Tenant"'
                         ' WHERE "id" = %s',
                         (f"tn{rnd.randint(1, TENANTS)}",)).fetchall()
            return
        if kind == "product_insert":
            conn.execute('INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title",'
                         ' "updatedAt") VALUES (%s, %s, %s, %s, now())',
                         (f"app{uuid.uuid4().hex[:23]}", f"tn{rnd.randint(1, TENANTS)}",
                          f"gid://shopify/Product/app-{index}-{n}", f"App product {index}-{n}"))
            return
        if kind == "session_select":
            key = f"offline_big{rnd.randint(1, max(1, self.sessions))}.myshopify.com"
            query = ('SELECT "id", "shop", "state", "isOnline", "scope", "expires", "accessToken"'
                     ' FROM {} WHERE "id" = %s')
            params: tuple[Any, ...] = (key,)
        else:
            known = rnd.random() < 0.75
            key = (f"offline_big{rnd.randint(1, max(1, self.sessions))}.myshopify.com" if known
                   else f"app{index}_{n}.myshopify.com")
            query = ('INSERT INTO {} ("id", "shop", "state", "isOnline", "accessToken")'
                     ' VALUES (%s, %s, %s, false, %s) ON CONFLICT ("id") DO UPDATE'
                     ' SET "state" = EXCLUDED."state", "accessToken" = EXCLUDED."accessToken"')
            params = (key, key.split("_", 1)[-1], f"state{n}", f"shpat_app_{n}")
        try:
            conn.execute(sql.SQL(query).format(sql.Identifier("Session")), params)
        except psycopg.errors.UndefinedTable:  # the app's table is missing: the lowercase era's app
            op.missing_session = True
            conn.execute(sql.SQL(query).format(sql.Identifier("session")), params)


# --- the lock sampler ---------------------------------------------------------------------------

# Client backends only: a parallel worker (CREATE INDEX, a parallel scan) shows the leader's
# application_name and a share of its locks, for part of its time.
_SAMPLE = """
SELECT 'hold', a.pid, c.relname::text, l.mode, a.query, a.state, NULL::text[], a.query_start,
       a.application_name, l.virtualtransaction
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.application_name = %(job)s AND a.datname = current_database() AND a.backend_type = 'client backend'
   AND l.locktype = 'relation' AND l.granted AND n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'job', a.pid, NULL, a.wait_event_type || ':' || a.wait_event, a.query, a.state, NULL, a.query_start,
       a.application_name, NULL
  FROM pg_stat_activity a
 WHERE a.application_name = %(job)s AND a.datname = current_database() AND a.backend_type = 'client backend'
UNION ALL
SELECT 'wait', a.pid, NULL, a.wait_event, a.query, a.state,
       ARRAY(SELECT b.pid || ' ' || coalesce(b.application_name, '') FROM pg_stat_activity b
              WHERE b.pid = ANY (pg_blocking_pids(a.pid))),
       a.query_start, a.application_name, NULL
  FROM pg_stat_activity a
 WHERE a.wait_event_type = 'Lock' AND a.datname = current_database() AND a.pid <> pg_backend_pid()
   AND a.backend_type = 'client backend'
"""


def short(query: str | None, limit: int = 160) -> str:
    """A statement on one line, its comment lines dropped (a migration file starts with comments)."""
    lines = [ln for ln in (query or "").splitlines() if not ln.strip().startswith("--")]
    text = " ".join(" ".join(lines).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class Span:
    """Something seen in consecutive samples: a lock held, or a statement waiting."""

    key: tuple[Any, ...]
    prev: float  # the sample before the first that saw it
    first: float
    last: float
    end: float = 0.0  # the first sample that no longer saw it
    queries: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def see(self, t: float, query: str) -> None:
        self.last = t
        if query and query not in self.queries and len(self.queries) < 5:
            self.queries.append(query)

    def as_dict(self) -> dict[str, Any]:
        return {"first_s": round(self.first, 3), "held_ms": round((self.last - self.first) * 1000, 1),
                "held_ms_upper": round((self.end - self.prev) * 1000, 1), "queries": self.queries,
                **self.extra}


class Sampler:
    def __init__(self, url: str, clock: float, *, job_name: str, every_ms: float) -> None:
        self.url, self.clock, self.job_name, self.every = url, clock, job_name, every_ms / 1000
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.holds: list[Span] = []
        self.waits: list[Span] = []
        self.job_statements: list[dict[str, Any]] = []  # the job's statement, each time it changes
        self.times: list[float] = []
        self.errors: Counter[str] = Counter()

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _loop(self) -> None:
        open_holds: dict[tuple[Any, ...], Span] = {}
        open_waits: dict[tuple[Any, ...], Span] = {}
        last_statement: dict[int, tuple[str, str]] = {}
        prev = 0.0
        params = {"job": self.job_name, "schema": SCHEMA}
        with psycopg.connect(self.url, autocommit=True, application_name="bench-sampler",
                             options="-c statement_timeout=2000") as conn:
            next_at = time.monotonic()
            while not self.stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + self.every, time.monotonic())
                try:
                    rows = conn.execute(_SAMPLE, params).fetchall()
                except psycopg.Error as e:
                    self.errors[e.sqlstate or type(e).__name__] += 1
                    continue
                t = time.monotonic() - self.clock
                self.times.append(t)
                seen_h: set[tuple[Any, ...]] = set()
                seen_w: set[tuple[Any, ...]] = set()
                for what, pid, rel, mode, query, state, blockers, query_start, app, xact in rows:
                    text = short(query)
                    if what == "hold":
                        key = (pid, xact, rel, mode)  # a lock is held until its transaction ends
                        seen_h.add(key)
                        span = open_holds.get(key)
                        if span is None:
                            span = open_holds[key] = Span(key, prev or t, t, t, extra={
                                "pid": pid, "transaction": xact, "table": rel, "mode": mode})
                        span.see(t, text)
                    elif what == "job":
                        now = (str(state), text)  # a change of wait event alone is not recorded
                        if last_statement.get(pid) != now and len(self.job_statements) < 5000:
                            last_statement[pid] = now
                            self.job_statements.append({"t_s": round(t, 3), "pid": pid, "state": state,
                                                        "wait": mode, "query": text})
                    else:
                        wkey: tuple[Any, ...] = (pid, query_start)
                        seen_w.add(wkey)
                        span = open_waits.get(wkey)
                        if span is None:
                            span = open_waits[wkey] = Span(key, prev or t, t, t, extra={
                                "pid": pid, "application": app, "wait_event": mode,
                                "query": short(query, 200),
                                "blocked_by": sorted(blockers or [])})
                        span.see(t, "")
                        span.extra["blocked_by"] = sorted(set(span.extra["blocked_by"]) | set(blockers or []))
                for spans, seen, done in ((open_holds, seen_h, self.holds), (open_waits, seen_w, self.waits)):
                    for key in [k for k in spans if k not in seen]:
                        span = spans.pop(key)
                        span.end = t
                        done.append(span)
                prev = t
            for spans, done in ((open_holds, self.holds), (open_waits, self.waits)):
                for span in spans.values():
                    span.end = prev
                    done.append(span)

    def intervals_ms(self) -> dict[str, float]:
        gaps = sorted(b - a for a, b in zip(self.times, self.times[1:], strict=False))
        if not gaps:
            return {"samples": len(self.times)}
        return {"samples": len(self.times), "median_interval_ms": round(gaps[len(gaps) // 2] * 1000, 1),
                "p99_interval_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 1),
                "max_interval_ms": round(gaps[-1] * 1000, 1)}


# --- one case ---------------------------------------------------------------------------------

def windows(holds: list[Span], table: str, mode: str) -> dict[str, Any]:
    """The longest stretch in which the job held ``mode`` on ``table`` in one transaction after another
    with no sample in between that saw it free: what the app meets, when the job's steps follow each
    other (the app's queued statements may slip through between two transactions, within one sample)."""
    spans = sorted((h for h in holds if h.extra["table"] == table and h.extra["mode"] == mode),
                   key=lambda h: h.first)
    best: tuple[float, float, int, list[str]] = (0.0, 0.0, 0, [])
    start, last, end, count, queries = spans[0].first, spans[0].last, spans[0].end, 1, list(spans[0].queries)
    pending: list[Span | None] = [*spans[1:], None]
    for h in pending:
        if h is not None and h.first <= end:  # no sample saw it free in between
            last, end, count = max(last, h.last), max(end, h.end), count + 1
            queries += [q for q in h.queries if q not in queries]
            continue
        if last - start >= best[1] - best[0]:
            best = (start, last, count, queries)
        if h is not None:
            start, last, end, count, queries = h.first, h.last, h.end, 1, list(h.queries)
    return {"window_ms": round((best[1] - best[0]) * 1000, 1), "window_first_s": round(best[0], 3),
            "window_transactions": best[2], "window_queries": best[3][:8]}


def latency(ops: list[Op]) -> dict[str, Any]:
    ms = sorted(o.ms for o in ops)
    errors = Counter(o.error for o in ops if o.error)
    out: dict[str, Any] = {"ops": len(ops), "errors": sum(errors.values()),
                           "errors_by_sqlstate": dict(errors),
                           "session_missing": sum(o.missing_session for o in ops)}
    if ms:
        out |= {"p50_ms": round(ms[len(ms) // 2], 2),
                "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}
        span = ops[-1].start - ops[0].start
        out["ops_per_s"] = round(len(ops) / span, 1) if span > 0 else None
        slowest = max(ops, key=lambda o: o.ms)
        out["slowest"] = {"kind": slowest.kind, "ms": round(slowest.ms, 1), "at_s": round(slowest.start, 3),
                          "error": slowest.error}
        out["max_ms_by_kind"] = {k: round(max((o.ms for o in ops if o.kind == k), default=0.0), 1)
                                 for k in AppTraffic.KINDS}
    return out


def job_events(stderr: str, started_wall: float) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            e = {"event": "<not json>", "line": line[:500]}
        if isinstance(e, dict):
            with_time = e.get("time")
            if isinstance(with_time, str):
                with contextlib.suppress(ValueError):
                    e["t_s"] = round(datetime.fromisoformat(with_time.replace("Z", "+00:00")).timestamp()
                                     - started_wall, 3)
            events.append(e)
    return events


def run_case(pg: PgCluster, case: str, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    print(f"== {case}, {rows} rows: building ({load()})", flush=True)
    name, url, info = build(pg, case, rows, args.sessions)
    print(f"   built in {info['build_s']} s: {info['reltuples']}", flush=True)
    result: dict[str, Any] = {"case": case, "rows": rows, "database": info, "load_before": load(),
                              "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    clock = time.monotonic()
    env = job_env(url, **dict(kv.split("=", 1) for kv in args.job_env))
    with Sampler(url, clock, job_name=args.job_name, every_ms=args.sample_ms) as sampler, \
            AppTraffic(url, clock, connections=args.connections, rate=args.rate,
                       timeout_ms=args.app_timeout_ms, sessions=args.sessions) as app:
        time.sleep(args.baseline_s)
        job_start = time.monotonic() - clock
        started_wall = time.time()
        proc = subprocess.Popen([PY, "-m", "job", "run"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=args.job_timeout)
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its pid
            out, err = proc.communicate()
            code = "timeout"
        job_end = time.monotonic() - clock
        time.sleep(args.after_s)
    ops = app.all_ops()
    events = job_events(err, started_wall)
    finished = next((e for e in events if e.get("event") == "run.finished"), {})
    result["job"] = {"exit_code": code, "duration_s": round(job_end - job_start, 2),
                     "duration_ms_logged": finished.get("duration_ms"), "outcome": finished.get("outcome"),
                     "reason": finished.get("reason"),
                     "env": {k: v for k, v in env.items() if k.startswith("DB_INIT_")},
                     "stdout_tail": out[-2000:], "events": events}
    result["phases"] = {"job_start_s": round(job_start, 3), "job_end_s": round(job_end, 3)}
    result["latency"] = {
        "before": latency([o for o in ops if o.start < job_start]),
        "during": latency([o for o in ops if job_start <= o.start <= job_end]),
        "after": latency([o for o in ops if o.start > job_end])}
    result["app_reconnects"] = app.reconnects
    holds = sorted(sampler.holds, key=lambda s: -(s.last - s.first))
    result["holds"] = [h.as_dict() for h in holds]
    longest: dict[str, dict[str, Any]] = {}
    for h in holds:  # longest first: the first seen per (table, mode) is the longest
        table, mode = h.extra["table"], h.extra["mode"]
        if mode in STRONG and mode not in longest.setdefault(table, {}):
            longest[table][mode] = h.as_dict() | windows(sampler.holds, table, mode)
    result["longest_strong_holds"] = {t: m for t, m in sorted(longest.items()) if m}
    result["longest_other_holds"] = [h.as_dict() for h in holds if h.extra["mode"] not in STRONG
                                     and (h.last - h.first) * 1000 >= SHORT_MS][:5]
    waits = [w.as_dict() | {"waited_ms": round((w.last - w.first) * 1000, 1)} for w in sampler.waits]
    result["app_waits_over_1s"] = sorted((w for w in waits if w["application"] != args.job_name
                                          and w["waited_ms"] > 1000), key=lambda w: -w["waited_ms"])
    result["job_waits_over_1s"] = sorted((w for w in waits if w["application"] == args.job_name
                                          and w["waited_ms"] > 1000), key=lambda w: -w["waited_ms"])
    result["lock_waits_seen"] = len(waits)
    result["sampler"] = sampler.intervals_ms() | {"errors": dict(sampler.errors)}
    result["job_statements"] = sampler.job_statements
    result["load_after"] = load()
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    with pg.admin(name) as conn:
        result["catalog_after"] = catalog_of(conn, "ProductProfile")
        result["session_tables_after"] = [str(r) for (r,) in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r' AND lower(c.relname) LIKE 'session%%' ORDER BY 1",
            (SCHEMA,))]
    if not args.keep:
        pg.drop_database(name)
    return result


# --- output -----------------------------------------------------------------------------------

def fmt_lat(lat: dict[str, Any]) -> str:
    if not lat.get("ops"):
        return "no ops"
    return f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} / {lat['max_ms']:.0f}"


def strong_holds(r: dict[str, Any]) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
    """The longest strong holds: those seen for at least SHORT_MS, longest first; the names of the rest."""
    long, short_ones = [], []
    for table, modes in r["longest_strong_holds"].items():
        for mode, h in modes.items():
            if max(h["held_ms"], h["window_ms"]) >= SHORT_MS:
                long.append((table, mode, h))
            else:
                short_ones.append(f"{table} {mode.removesuffix('Lock')}")
    return sorted(long, key=lambda x: -x[2]["held_ms"]), short_ones


def strong_line(r: dict[str, Any]) -> str:
    long, short_ones = strong_holds(r)
    parts = [f"{t} {m.removesuffix('Lock')} {h['held_ms'] / 1000:.2f} s" + (
        f" (window {h['window_ms'] / 1000:.2f} s, {h['window_transactions']} transactions)"
        if h["window_transactions"] > 1 else "") for t, m, h in long]
    if short_ones:
        parts.append(f"{len(short_ones)} more < {SHORT_MS / 1000:g} s")
    return "; ".join(parts) or "none seen"


def report_case(r: dict[str, Any]) -> None:
    j = r["job"]
    print(f"-- {r['case']}, {r['rows']} rows: job exit {j['exit_code']} ({j['outcome']})"
          f" in {j['duration_s']} s (logged {j['duration_ms_logged']} ms);"
          f" {r['load_before']} -> {r['load_after']}")
    if j["reason"]:
        print(f"   reason: {j['reason']}")
    print(f"   sampler: {r['sampler']}")
    print("   longest strong-lock holds by the job, in one transaction (observed; upper bound in brackets):")
    long, short_ones = strong_holds(r)
    for table, mode, h in long:
        print(f"     {table:16} {mode:22} {h['held_ms'] / 1000:7.2f} s [{h['held_ms_upper'] / 1000:.2f}]"
              f"  at {h['first_s']:.2f} s  {' | '.join(h['queries'])[:220]}")
        if h["window_transactions"] > 1:
            print(f"     {'':16} {'':22} {h['window_ms'] / 1000:7.2f} s in {h['window_transactions']}"
                  f" transactions back to back, from {h['window_first_s']:.2f} s:"
                  f" {' | '.join(h['window_queries'])[:200]}")
    if short_ones:
        print(f"     seen < {SHORT_MS / 1000:g} s: {', '.join(short_ones)}")
    if not long and not short_ones:
        print("     none seen (a hold shorter than the sampling interval can escape the sampler)")
    for h in r["longest_other_holds"]:
        print(f"     (weaker) {h['table']:16} {h['mode']:22} {h['held_ms'] / 1000:7.2f} s"
              f"  at {h['first_s']:.2f} s  {' | '.join(h['queries'])[:200]}")
    print("   app latency ms p50 / p99 / max (ops, errors, Session missing):")
    for phase in ("before", "during", "after"):
        lat = r["latency"][phase]
        print(f"     {phase:7} {fmt_lat(lat):24} ({lat['ops']} ops, {lat['errors']} errors"
              f" {lat['errors_by_sqlstate'] or ''}, {lat['session_missing']} missing)")
    waits = r["app_waits_over_1s"]
    print(f"   app statements waiting on a lock > 1 s: {len(waits)}")
    for w in waits[:10]:
        print(f"     {w['waited_ms'] / 1000:6.2f} s at {w['first_s']:.2f} s  blocked by {w['blocked_by']}:"
              f" {w['query'][:120]}")
    for w in r["job_waits_over_1s"][:5]:
        print(f"   the job waited {w['waited_ms'] / 1000:.2f} s at {w['first_s']:.2f} s blocked by"
              f" {w['blocked_by']}: {w['query'][:120]}")
    print(flush=True)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| case | rows | job exit | job s | longest strong-lock hold by the job in one transaction |"
             " app p50 / p99 / max ms before | during | errors during | app waits > 1 s (longest) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d = r["latency"]["during"]
        waits = r["app_waits_over_1s"]
        longest = f" ({waits[0]['waited_ms'] / 1000:.1f} s)" if waits else ""
        lines.append(f"| {r['case']} | {r['rows']} | {r['job']['exit_code']} | {r['job']['duration_s']} |"
                     f" {strong_line(r)} | {fmt_lat(r['latency']['before'])} | {fmt_lat(d)} |"
                     f" {d.get('errors', 0)} {d.get('errors_by_sqlstate') or ''} | {len(waits)}{longest} |")
    return "\n".join(lines)


def git(*args: str) -> str:
    res = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    return res.stdout.strip()


def machine() -> dict[str, Any]:
    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal:")), "0")
    return {"cores": os.cpu_count(), "memory_gb": round(int(mem) / 2**20, 1), "platform": platform.platform(),
            "python": sys.version.split()[0], "psycopg": psycopg.__version__,
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def job_commit() -> dict[str, Any]:
    return {"head": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "job_last_commit": git("log", "-1", "--format=%h %s", "--", "job"),
            "job_dirty": bool(git("status", "--porcelain", "--", "job"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,2000000,4000000", help="row counts of ProductProfile")
    parser.add_argument("--cases", default=",".join(CASES), help=f"some of {', '.join(CASES)}")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline-s", type=float, default=5.0, help="traffic alone before the job")
    parser.add_argument("--after-s", type=float, default=2.0, help="traffic after the job")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=75.0, help="operations per second per connection")
    parser.add_argument("--app-timeout-ms", type=int, default=5000, help="statement_timeout of the app")
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--job-timeout", type=float, default=1800.0)
    parser.add_argument("--job-name", default="db-init-job", help="the job's application_name")
    parser.add_argument("--job-env", action="append", default=[], metavar="DB_INIT_X=VALUE",
                        help="extra environment for the job (default settings otherwise)")
    parser.add_argument("--keep", action="store_true", help="keep each case's database")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    counts = [int(n) for n in args.rows.split(",") if n]

    bindirs = find_postgres_bindirs()
    bindir = bindirs[max(bindirs)]
    compile_job()
    started = time.monotonic()
    out: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
                           "test_pg_bindir": os.environ.get("TEST_PG_BINDIR"), "machine": machine(),
                           "job": job_commit(), "load_at_start": load(),
                           "traffic": {"connections": args.connections, "rate_per_connection": args.rate,
                                       "statement_timeout_ms": args.app_timeout_ms,
                                       "baseline_s": args.baseline_s, "after_s": args.after_s,
                                       "sample_ms": args.sample_ms,
                                       "sessions": args.sessions, "tenants": TENANTS},
                           "results": []}
    with PgCluster(bindir) as pg:
        with pg.admin() as conn:
            for k, v in SERVER_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(k), sql.Literal(v)))
        pg.restart()
        with pg.admin() as conn:
            def one(query: sql.SQL | sql.Composed) -> str:
                return str((conn.execute(query).fetchone() or ("",))[0])
            out["postgres"] = {"bindir": str(bindir), "version": one(sql.SQL("SELECT version()"))}
            out["postgres"] |= {s: one(sql.SQL("SHOW {}").format(sql.Identifier(s)))
                                for s in REPORTED_SETTINGS}
        print(f"gentle on big tables: {out['postgres']['version']}; job {out['job']['head'][:10]}"
              f" ({out['job']['job_last_commit']}); {out['load_at_start']}", flush=True)
        for rows in counts:
            for case in cases:
                r = run_case(pg, case, rows, args)
                report_case(r)
                out["results"].append(r)
                if args.json:  # after every case: a long sitting keeps what it measured
                    args.json.write_text(json.dumps(out, indent=1, default=str))
    out["load_at_end"] = load()
    out["total_s"] = round(time.monotonic() - started, 1)
    print(table(out["results"]))
    print(f"\n{out['machine']['cores']} cores, {out['load_at_start']} at start, {out['load_at_end']} at end;"
          f" {out['postgres']['version']}; job {out['job']['head'][:10]}; {out['total_s']} s in all")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
