"""Check the evolution fixture with the real Prisma CLI 6.19.3 (tests/interop) on a real PostgreSQL.

    /work/main/.venv/bin/python tests/evolution/check_evolution.py [--url postgresql://SUPERUSER@host:port/db]

Without --url it starts one throwaway cluster (tests/pgcluster.py) and stops it at the end. Each check
makes its own database. Prints one line per finding; exits 1 if any check failed.

Checks:
  files        the shipped migrations are byte-identical copies; releases.json matches the folder
  generated    each CLI-generated migration is exactly what `migrate diff` writes between two schemas
  deploy       `migrate deploy` of the whole folder on an empty database, then `migrate status`
  releases     release by release on one database with rows in it, deploy of the folder cut after each
  one_tx       03 + 04 in one transaction fail with 55P04; 06 in a transaction block fails with 25001
  diff         `migrate diff --from-migrations <cut> --to-schema-datamodel <schema> --exit-code` per release
  own_tx       with_own_transaction/: deploy fails on its last migration; what was committed
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from evolution_fixtures import (  # noqa: E402
    MIGRATIONS,
    OWN_TRANSACTION,
    Release,
    folder_until,
    releases,
)

INTEROP = TESTS / "interop"
SHIPPED = REPO / "prisma" / "migrations"
LAST_SHIPPED = "20251213003742"
UP_TO_DATE = "Database schema is up to date!"
EMPTY_DIFF = "-- This is an empty migration."
# Before tests/interop/peer.cjs typed "char" catalog columns as Character, the WASM engine panicked here
# ("RuntimeError: unreachable") on any table with a CHECK constraint; the check still names that crash.
CRASH = "RuntimeError: unreachable"


# --- reporting ------------------------------------------------------------------------------------------

FAILURES: list[str] = []


def note(check: str, text: str) -> None:
    print(f"[{check}] {text}", flush=True)


def expect(check: str, ok: bool, text: str) -> bool:
    print(f"[{check}] {'PASS' if ok else 'FAIL'} {text}", flush=True)
    if not ok:
        FAILURES.append(f"{check}: {text}")
    return ok


# --- the server and its databases -------------------------------------------------------------------------

class Server:
    def __init__(self, url: str | None) -> None:
        self._cluster = None
        if url is None:
            from pgcluster import PgCluster, find_postgres_bindirs
            bindirs = find_postgres_bindirs()
            cluster = PgCluster(bindirs[max(bindirs)])
            cluster.start()
            self._cluster = cluster
            url = cluster.url()
        self.admin_url = url
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        self.version = str(row[0]) if row else "?"

    def url(self, dbname: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + dbname))

    def new_db(self) -> str:
        name = f"evo_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.cleanup()


# --- the Prisma CLI ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def lines(self) -> list[str]:
        """Output without Prisma's banners and empty lines."""
        skip = ("Loaded Prisma config", "WARNING: Your schema specifies", "- url", "- directUrl",
                "The values from your schema", "We recommend you to remove", "Prisma schema loaded",
                "Datasource \"db\"", "Prisma config detected")
        return [ln.rstrip() for ln in self.text.splitlines() if ln.strip() and not ln.startswith(skip)]


def prisma(interop: Path, url: str, contract: Path, migrations: Path, *args: str | Path) -> Run:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DIRECT_URL") and not k.startswith(("PRISMA_", "PEER_"))}
    env |= {"DATABASE_URL": url, "PEER_CONTRACT": str(contract), "PEER_MIGRATIONS": str(migrations),
            "NO_COLOR": "1"}
    proc = subprocess.run([str(interop / "prisma.sh"), *map(str, args)], env=env, cwd=interop,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@contextmanager
def patched_interop() -> Iterator[Path]:
    """tests/interop itself: its shim 1 now types "char" columns as Character (it once needed a patch)."""
    yield INTEROP


def one_line(sql: str) -> str:
    """A migration's statements on one line, comments dropped."""
    body = " ".join(ln.split("--")[0].strip() for ln in sql.splitlines())
    return re.sub(r"\s+", " ", body).strip()


def ledger(url: str) -> list[tuple[str, bool, int, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT migration_name, finished_at IS NOT NULL, applied_steps_count, logs"
                            " FROM _prisma_migrations ORDER BY started_at, migration_name").fetchall()
    return [(str(r[0]), bool(r[1]), int(r[2]), r[3]) for r in rows]


def applied_names(run: Run) -> list[str]:
    """The migration folders `migrate deploy` lists as applied."""
    return re.findall(r"└─ (\d{14}_\w+)/", run.text)


# --- the checks ---------------------------------------------------------------------------------------

def check_files(rels: list[Release]) -> None:
    c = "files"
    shipped = sorted(p.name for p in SHIPPED.iterdir() if p.is_dir())
    for name in shipped:
        same = (SHIPPED / name / "migration.sql").read_bytes() == (
            MIGRATIONS / name / "migration.sql").read_bytes()
        expect(c, same, f"{name}/migration.sql byte-identical to prisma/migrations")
    lock = "migration_lock.toml"
    expect(c, (SHIPPED / lock).read_bytes() == (MIGRATIONS / lock).read_bytes(), f"{lock} copied")
    expect(c, rels[0].migrations == tuple(shipped),
           f"release 00 adds the shipped two: {list(rels[0].migrations)}")
    expect(c, rels[0].schema.read_bytes() == (REPO / "prisma" / "schema.prisma").read_bytes(),
           "release 00 schema == prisma/schema.prisma")
    listed = [m for r in rels for m in r.migrations]
    on_disk = sorted(p.name for p in MIGRATIONS.iterdir() if p.is_dir())
    expect(c, listed == on_disk, f"releases.json lists the folder's {len(on_disk)} migrations in order")
    new = [m for r in rels[1:] for m in r.migrations]
    expect(c, all(m[:14] > LAST_SHIPPED for m in new), f"every new migration is after {LAST_SHIPPED}")
    for r in rels:
        expect(c, r.schema.is_file(), f"{r.name}: {r.schema.relative_to(HERE)} exists")
    for name in on_disk:
        files = sorted(p.name for p in (MIGRATIONS / name).iterdir())
        expect(c, files == ["migration.sql"], f"{name}: holds only migration.sql")
    cic = next(m for r in rels if r.name.startswith("06_") for m in r.migrations)
    stmts = [s for s in one_line((MIGRATIONS / cic / "migration.sql").read_text()).split(";") if s.strip()]
    expect(c, len(stmts) == 1 and "CONCURRENTLY" in stmts[0], f"{cic}: one statement, CONCURRENTLY")


def check_generated(rels: list[Release], url: str) -> None:
    c = "generated"
    for prev, rel in itertools.pairwise(rels):
        (mig,) = rel.migrations
        run = prisma(INTEROP, url, rel.schema, MIGRATIONS, "migrate", "diff", "--from-schema-datamodel",
                     prev.schema, "--to-schema-datamodel", rel.schema, "--script")
        if run.code != 0:
            expect(c, False, f"{rel.name}: migrate diff exit {run.code}: {run.lines()[-3:]}")
            continue
        # `migrate dev --create-only` writes the script without the newline that printing it adds
        cli = run.out[:-1] if run.out.endswith("\n\n") else run.out
        mine = (MIGRATIONS / mig / "migration.sql").read_text()
        if rel.hand_written:
            note(c, f"{rel.name}: hand-written; the CLI would write: {one_line(cli) or cli.strip()}")
        else:
            expect(c, cli == mine, f"{rel.name}: {mig} == `migrate diff` {prev.name} -> {rel.name}")


def check_deploy(server: Server, rels: list[Release]) -> None:
    c = "deploy"
    url = server.new_db()
    t0 = time.monotonic()
    run = prisma(INTEROP, url, rels[-1].schema, MIGRATIONS, "migrate", "deploy")
    took = time.monotonic() - t0
    names = [m for r in rels for m in r.migrations]
    expect(c, run.code == 0 and applied_names(run) == names,
           f"migrate deploy on an empty database: exit {run.code}, {len(applied_names(run))} applied, "
           f"{took:.1f}s; last line: {run.lines()[-1] if run.lines() else ''!r}")
    status = prisma(INTEROP, url, rels[-1].schema, MIGRATIONS, "migrate", "status")
    expect(c, status.code == 0 and UP_TO_DATE in status.text,
           f"migrate status: exit {status.code}, {status.lines()[-1] if status.lines() else ''!r}")
    rows = ledger(url)
    expect(c, [r[0] for r in rows] == names and all(r[1] and r[2] == 1 for r in rows),
           f"_prisma_migrations: {len(rows)} rows, all finished, applied_steps_count 1")


# Rows put in before a release's migrations, and what must hold after them.
def _seed_and_verify(rel: Release, conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[bool, str]]:
    n = rel.name[:2]
    out: list[tuple[bool, str]] = []

    def one(q: str) -> object:
        row = conn.execute(q).fetchone()
        return row[0] if row else None

    if n == "00":
        conn.execute("""INSERT INTO "Lead" (id, shop, email)
                        VALUES ('lead1', 'a.myshopify.com', '  Ann@Example.COM ')""")
        conn.execute("""INSERT INTO "Tenant" (id, shop, "updatedAt")
                        VALUES ('t1', 'a.myshopify.com', now())""")
    elif n == "01":
        out.append((one("""SELECT "wishlistCount" FROM "Tenant" WHERE id = 't1'""") == 0,
                    "existing Tenant row got wishlistCount 0"))
    elif n == "02":
        conn.execute("""INSERT INTO gift_registry (public_id, tenant_id, title, status, budget, event_date)
            VALUES (md5(random()::text)::uuid, 't1', 'old', 'CLOSED', 10.50, now() - interval '2 years'),
                   (md5(random()::text)::uuid, 't1', 'recent', 'CLOSED', 20, now() - interval '1 month'),
                   (md5(random()::text)::uuid, 't1', 'open', 'ACTIVE', 30, now() + interval '1 month')""")
        out.append((one("SELECT count(*) FROM gift_registry") == 3,
                    "gift_registry takes rows (serial id, uuid, decimal)"))
    elif n == "04":
        got = one("SELECT string_agg(title || '=' || status::text, ',' ORDER BY id) FROM gift_registry")
        out.append((got == "old=ARCHIVED,recent=CLOSED,open=ACTIVE",
                    f"data migration archived only the old one: {got}"))
    elif n == "05":
        out.append((one("""SELECT column_default FROM information_schema.columns
                           WHERE table_name = 'AlertSettings' AND column_name = 'leadThreshold'""") == "3",
                    "AlertSettings.leadThreshold default is 3"))
    elif n == "06":
        got = one("""SELECT indisvalid FROM pg_index WHERE indexrelid = '"Event_sessionId_idx"'::regclass""")
        out.append((got is True, "Event_sessionId_idx exists and is valid"))
    elif n == "07":
        pred = one("""SELECT pg_get_expr(indpred, indrelid) FROM pg_index
                      WHERE indexrelid = '"PromptVersion_name_active_key"'::regclass""")
        check = one("""SELECT pg_get_constraintdef(oid) FROM pg_constraint
                       WHERE conname = 'Variant_weight_check'""")
        out.append((pred == '"isActive"' and check is not None, f"partial index WHERE {pred}; {check}"))
    elif n == "08":
        got = one("""SELECT "emailLower" FROM "Lead" WHERE id = 'lead1'""")
        nullable = one("""SELECT is_nullable FROM information_schema.columns
                          WHERE table_name = 'Lead' AND column_name = 'emailLower'""")
        out.append((got == "ann@example.com" and nullable == "NO",
                    f"backfilled {got!r}, is_nullable {nullable}"))
    elif n == "09":
        got = one("""SELECT "productCount" FROM "TenantCatalogStats" WHERE "tenantId" = 't1'""")
        out.append((got == 0, f"view TenantCatalogStats answers: productCount {got}"))
    conn.commit()
    return out


def check_releases(server: Server, rels: list[Release]) -> None:
    c = "releases"
    url = server.new_db()
    total: list[str] = []
    with tempfile.TemporaryDirectory(prefix="evo-cut-") as tmp:
        for rel in rels:
            folder = folder_until(rel.name, Path(tmp) / rel.name)
            run = prisma(INTEROP, url, rel.schema, folder, "migrate", "deploy")
            total += rel.migrations
            ok = run.code == 0 and applied_names(run) == list(rel.migrations)
            expect(c, ok, f"{rel.name}: deploy exit {run.code}, applied {applied_names(run)}"
                   + ("" if ok else f"\n{run.text}"))
            status = prisma(INTEROP, url, rel.schema, folder, "migrate", "status")
            rows = ledger(url)
            expect(c, UP_TO_DATE in status.text and [r[0] for r in rows] == total and all(r[1] for r in rows),
                   f"{rel.name}: status up to date, ledger {len(rows)} finished rows")
            with psycopg.connect(url) as conn:
                for ok2, text in _seed_and_verify(rel, conn):
                    expect(c, ok2, f"{rel.name}: {text}")


def check_one_transaction(server: Server, rels: list[Release]) -> None:
    c = "one_tx"
    by = {r.name[:2]: r for r in rels}
    url = server.new_db()
    with tempfile.TemporaryDirectory(prefix="evo-cut-") as tmp:
        folder = folder_until(by["02"].name, Path(tmp) / "f")
        run = prisma(INTEROP, url, by["02"].schema, folder, "migrate", "deploy")
        if not expect(c, run.code == 0, f"deploy until {by['02'].name}: exit {run.code}"):
            return
    sql03 = (MIGRATIONS / by["03"].migrations[0] / "migration.sql").read_text()
    sql04 = (MIGRATIONS / by["04"].migrations[0] / "migration.sql").read_text()
    sql06 = (MIGRATIONS / by["06"].migrations[0] / "migration.sql").read_text()
    for label, scripts, explicit, want in (
        ("03 then 04 in one transaction (BEGIN ... COMMIT)", [sql03, sql04], True, "55P04"),
        ("03 + 04 as one script, one simple query", [sql03 + "\n" + sql04], False, "55P04"),
        ("06 inside BEGIN ... COMMIT", [sql06], True, "25001"),
        ("06 + a second statement as one simple query", [sql06 + "SELECT 1;\n"], False, "25001"),
    ):
        state: str | None = None
        message = ""
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                if explicit:
                    with conn.transaction():
                        for s in scripts:
                            conn.execute(s.encode())
                else:
                    conn.execute(scripts[0].encode())  # no parameters: the simple-query protocol
            except psycopg.Error as e:
                state, message = e.sqlstate, str(e).splitlines()[0]
        expect(c, state == want, f"{label}: SQLSTATE {state} ({message})")


def _diff(interop: Path, url: str, rel: Release, folder: Path) -> Run:
    return prisma(interop, url, rel.schema, folder, "migrate", "diff", "--from-migrations", folder,
                  "--to-schema-datamodel", rel.schema, "--script", "--exit-code")


def check_diff(server: Server, rels: list[Release]) -> None:
    c = "diff"
    url = server.admin_url
    with tempfile.TemporaryDirectory(prefix="evo-cut-") as tmp, patched_interop() as patched:
        for rel in rels:
            folder = MIGRATIONS if rel is rels[-1] else folder_until(rel.name, Path(tmp) / rel.name)
            run = _diff(INTEROP, url, rel, folder)
            via = "tests/interop"
            if run.code != 0 and CRASH in run.text:
                note(c, f"{rel.name}: tests/interop's WASM engine panics ({CRASH}): shim 1 hands "
                        "pg_constraint.contype over as text; rerun with the char-column patch")
                run = _diff(patched, url, rel, folder)
                via = "patched copy"
            body = [ln for ln in run.out.splitlines() if ln.strip()]
            expect(c, run.code == 0 and body == [EMPTY_DIFF],
                   f"{rel.name} ({via}): exit {run.code}, {' '.join(body)[:300] or run.lines()[-3:]}")
        # what Prisma sees of the objects it cannot model, on a database with everything applied
        db = server.new_db()
        prisma(INTEROP, db, rels[-1].schema, MIGRATIONS, "migrate", "deploy")
        pull = prisma(patched, db, rels[-1].schema, MIGRATIONS, "db", "pull", "--print")
        warn = [ln.strip("/ ") for ln in pull.text.splitlines() if "constraint" in ln.lower()]
        note(c, f"db pull --print (patched copy), exit {pull.code}: {' | '.join(warn) or '(no warning)'}")
        objects = ("TenantCatalogStats", "PromptVersion_name_active_key")
        mentions = {name: name in pull.text for name in objects}
        note(c, f"db pull --print mentions the view / the partial index: {mentions}")


def check_own_transaction(server: Server, rels: list[Release]) -> None:
    c = "own_tx"
    folder = OWN_TRANSACTION / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    url = server.new_db()
    run = prisma(INTEROP, url, rels[0].schema, folder, "migrate", "deploy")
    err = next((ln for ln in run.lines() if ln.startswith("Error") or "No such table" in ln
                or "does not exist" in ln), "")
    expect(c, run.code != 0 and names[-1] in run.text,
           f"deploy fails on {names[-1]}: exit {run.code}; {err}")
    status = prisma(INTEROP, url, rels[0].schema, folder, "migrate", "status")
    failed = "Following migration have failed" in status.text and names[-1] in status.text
    expect(c, status.code != 0 and failed,
           f"migrate status: exit {status.code}, reports {names[-1]} failed")
    with psycopg.connect(url) as conn:
        tables = [str(r[0]) for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'AuditLog%'"
            " ORDER BY 1").fetchall()]
    expect(c, tables == ["AuditLog"],
           f"tables left: {tables} (AuditLog committed, AuditLogArchive rolled back)")
    rows = ledger(url)
    for name, finished, steps, logs in rows:
        first = " / ".join((logs or "").splitlines()[:2]) or None
        note(c, f"ledger: {name} finished={finished} applied_steps_count={steps} logs={first}")
    want = [(n, n != names[-1]) for n in names]
    with psycopg.connect(url) as conn:
        rolled = conn.execute("SELECT count(*) FROM _prisma_migrations"
                              " WHERE rolled_back_at IS NOT NULL").fetchone()
    expect(c, [(r[0], r[1]) for r in rows] == want and rolled == (0,),
           f"ledger: {len(rows)} rows, all finished but {names[-1]} (finished_at NULL, rolled_back_at NULL)")


CHECKS: dict[str, Callable[[Server, list[Release]], None]] = {
    "files": lambda _s, rels: check_files(rels),
    "generated": lambda s, rels: check_generated(rels, s.admin_url),
    "deploy": check_deploy,
    "releases": check_releases,
    "one_tx": check_one_transaction,
    "diff": check_diff,
    "own_tx": check_own_transaction,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="superuser URL of a running server (default: start a throwaway cluster)")
    ap.add_argument("checks", nargs="*", help=f"some of {', '.join(CHECKS)} (default: all)")
    args = ap.parse_args()
    unknown = set(args.checks) - set(CHECKS)
    if unknown:
        ap.error(f"unknown check(s): {', '.join(sorted(unknown))}")
    rels = releases()
    server = Server(args.url)
    try:
        note("server", f"PostgreSQL {server.version}")
        for name in args.checks or list(CHECKS):
            CHECKS[name](server, rels)
    finally:
        server.close()
    print(f"\n{len(FAILURES)} failure(s)" + "".join(f"\n  {f}" for f in FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
