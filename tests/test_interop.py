"""The app's own clients, for real, against the databases the job leaves behind.

Not our reading of Prisma and Shopify, but their code: the Prisma CLI 7.10 (`peer`; 6.19 as `peer6`), each
with its WASM schema engine through the pg driver adapter (see tests/interop/README.md), and Shopify's
PrismaSessionStorage on Prisma Client 6.19, installed from the npm registry by `python3 tests/matrix.py
install`. For every state of HISTORY.md (`job.scenarios.STATES`, whatever the lead adds there):

- before the job, the app's failure is reproduced: PrismaSessionStorage raises MissingSessionTableError
  where "Session" is missing, and `prisma migrate deploy` stops on P3009 where a failed row blocks it;
- after it, `migrate status` says up to date, `migrate deploy` has nothing to apply, the live schema equals
  the contract (`migrate diff --from-config-datasource --exit-code`), and the session storage stores,
  loads, finds and deletes sessions, and still loads the sessions the database held before.

And the other way round: after Prisma itself has applied our folder, the job has nothing to do; the ledger
rows the job writes are the ones Prisma 7 and 6.19 write; a row Prisma resolved as rolled back, the job
applies; Prisma and the job started together never both apply.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jobtools import CONTRACT_FILE, MIGRATIONS_DIR, JobRun, finish, ledger, run_job, start_job
from matrix import INTEROP, PRISMA7, STAMP, digest, prerequisite_missing
from pgcluster import Db, PgCluster
from psycopg import sql
from scenarios import STATES

from job.migrations import load_migrations

pytestmark = pytest.mark.interop
matrix = pytest.mark.matrix  # also run on every supported PostgreSQL major (test_interop_matrix.py)

SHIPPED = load_migrations(MIGRATIONS_DIR)
# States the job refuses on purpose, with their documented exit code (README, "Exit codes"); none today
# (both session tables populated used to be refused with 5; the job now merges them).
EXPECTED_EXIT: dict[str, int] = {}
# Tables a state leaves beside the contract on purpose, as patterns (the dated copy of a merged lowercase
# session table carries the day of the run): the only differences `db pull` may show.
KEPT_SESSION_COPY = r"session_merged_\d{8}"
ALLOWED_EXTRA: dict[str, tuple[str, ...]] = {
    "ahead": ("Wishlist",),
    "both_populated": (KEPT_SESSION_COPY,),
    "partial_both": (KEPT_SESSION_COPY,),
}
# Every state runs in `public`; these also in a schema of their own (?schema=shop_app), where Prisma's
# search_path, the ledger's place and the session table's qualified name are all different.
ALSO_IN_SHOP_APP = ("demo", "lowercase", "both_populated")
MATRIX_STATES = {("demo", "public")}
LOCK_KEY = 72707369


# --- the peer: the real Prisma CLI and PrismaSessionStorage ----------------------------------------------

@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass(frozen=True)
class Cli:
    """One pinned Prisma CLI, run offline (tests/interop/README.md): its Node project, the stand-in the CLI
    spawns as its schema-engine binary, and how node starts it."""

    project: Path
    engine: Path
    node_args: tuple[str, ...]
    node_min: tuple[int, int]

    @property
    def version(self) -> str:
        return str(json.loads((self.project / "package.json").read_text())["dependencies"]["prisma"])

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


# Prisma 7 checks what the job leaves (the version the app's users run now); 6.19 where it proves what 7
# cannot: the ledger it writes, the turns it takes with the job, and Prisma Client under Shopify's session
# storage (which needs 6).
PRISMA_7 = Cli(PRISMA7, PRISMA7 / "schema-engine.cjs", (), (20, 19))
PRISMA_6 = Cli(INTEROP, INTEROP / "schema-engine-stub.cjs", ("--require", str(INTEROP / "preload.cjs")),
               (20, 10))


def without_urls(schema: Path) -> Path:
    """The schema for Prisma 7, as prisma7/prisma.config.ts reads it: no url/directUrl in its datasource."""
    text = re.sub(r"(datasource\s+\w+\s*\{)([^}]*)\}",
                  lambda m: m.group(1) + re.sub(r"(?m)^[ \t]*(url|directUrl|shadowDatabaseUrl)\s*=.*\n", "",
                                                m.group(2)) + "}", schema.read_text())
    copy = PRISMA7 / "build" / f"schema-{hashlib.sha256(text.encode()).hexdigest()[:16]}.prisma"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f"{copy.name}.{os.getpid()}")
        partial.write_text(text)
        partial.replace(copy)
    return copy


class Peer:
    def __init__(self, node: str, cli: Cli = PRISMA_7) -> None:
        self.node = node
        self.cli = cli

    def env(self, url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "DIRECT_URL") and not k.startswith(("PRISMA_", "PEER_"))}
        return env | {
            "DATABASE_URL": url,
            "NO_COLOR": "1",
            # nothing may call out: no telemetry, no update check
            "CHECKPOINT_DISABLE": "1",
            "PRISMA_HIDE_UPDATE_MESSAGE": "1",
            # the stand-in for the native engine binary, which nothing here can download
            "PRISMA_SCHEMA_ENGINE_BINARY": str(self.cli.engine),
        }

    def start(self, url: str, *args: str | Path) -> subprocess.Popen[str]:
        """The Prisma CLI, as its prisma.sh runs it."""
        script = self.cli.project / "node_modules" / "prisma" / "build" / "index.js"
        cmd = [self.node, *self.cli.node_args, str(script), *map(str, args),
               "--config", str(self.cli.project / "prisma.config.ts")]
        return subprocess.Popen(cmd, cwd=self.cli.project, env=self.env(url), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def wait(proc: subprocess.Popen[str], timeout: float = 120) -> CliRun:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return CliRun(-9, out, err + f"\n(killed after {timeout}s)")
        return CliRun(proc.returncode, out, err)

    def prisma(self, url: str, *args: str | Path) -> CliRun:
        return self.wait(self.start(url, *args))

    def schema(self, path: Path) -> Path:
        """A schema file as this version takes it as an argument."""
        return without_urls(path) if self.cli.major >= 7 else path

    def diff(self, url: str, source: tuple[str, Path], schema: Path) -> subprocess.Popen[str]:
        """`migrate diff --exit-code` from a migrations folder or a schema file to `schema`, in this version's
        flags (6.19's --from-schema-datamodel is 7's --from-schema)."""
        kind, path = source
        flag = "schema-datamodel" if self.cli.major < 7 else "schema"
        start: list[str | Path] = (["--from-migrations", path] if kind == "migrations"
                                   else [f"--from-{flag}", self.schema(path)])
        return self.start(url, "migrate", "diff", *start, f"--to-{flag}", self.schema(schema), "--exit-code")

    def diff_live(self, url: str, schema: Path) -> subprocess.Popen[str]:
        """Prisma 7: the database of the config's URL against `schema`, `migrate diff --exit-code`."""
        assert self.cli.major >= 7, "6.19 compares a live database through db pull (it refuses --from-url)"
        return self.start(url, "migrate", "diff", "--from-config-datasource", "--to-schema",
                          self.schema(schema), "--exit-code")

    # Shopify's session storage runs on 6.19's Prisma Client, whichever CLI checks the schema.
    def start_storage(self, url: str, command: str, *ids: str) -> subprocess.Popen[str]:
        return subprocess.Popen([self.node, str(INTEROP / "session-storage.mjs"), command, *ids],
                                cwd=INTEROP, env=self.env(url), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def storage_result(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        run = self.wait(proc)
        try:
            result: dict[str, Any] = json.loads(run.out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise AssertionError(f"session-storage.mjs printed no verdict:\n{run.text}") from None
        result["_run"] = run.text
        return result

    def storage(self, url: str, command: str, *ids: str) -> dict[str, Any]:
        return self.storage_result(self.start_storage(url, command, *ids))


def _peer_schema(contract: str) -> str:
    """What prisma.config.ts loads: the contract, its generator told engineType = "client"."""
    generator = re.compile(r'(generator\s+\w+\s*\{[^}]*?provider\s*=\s*"prisma-client-js"[^\n]*\n)')
    return generator.sub(r'\1  engineType = "client"\n', contract, count=1)


def _installed(node: str, cli: Cli) -> None:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    found = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if found < cli.node_min:
        prerequisite_missing(f"Node.js {version.strip()} is older than {'.'.join(map(str, cli.node_min))},"
                             f" which Prisma {cli.version} needs")
    stamp = cli.project / "node_modules" / STAMP
    if not stamp.is_file():
        prerequisite_missing(f"the interop Node packages are not installed ({cli.project}/node_modules)")
    if stamp.read_text() != digest(cli.project / "package.json", cli.project / "package-lock.json"):
        prerequisite_missing(f"{cli.project}/node_modules is out of date with its lockfile")


@pytest.fixture(scope="session")
def peer6() -> Peer:
    """The Prisma CLI 6.19 and Shopify's session storage on Prisma Client 6.19."""
    node = shutil.which("node")
    if node is None:
        prerequisite_missing("Node.js is not installed")
    _installed(node, PRISMA_6)
    p = Peer(node, PRISMA_6)
    _generate_client(p)
    return p


@pytest.fixture(scope="session")
def peer(peer6: Peer) -> Peer:
    """The Prisma CLI 7 (the default verifier), and the session storage of peer6."""
    _installed(peer6.node, PRISMA_7)
    return Peer(peer6.node, PRISMA_7)


def _generate_client(p: Peer) -> None:
    """`prisma generate` (the client PrismaSessionStorage uses) unless it was generated from this contract."""
    wanted = hashlib.sha256(_peer_schema(CONTRACT_FILE.read_text()).encode()).hexdigest()
    stamp = INTEROP / "node_modules" / ".prisma" / "client" / ".generated-from"
    lock_file = INTEROP / "node_modules" / ".generate.lock"
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the matrix runs suites side by side
        if stamp.is_file() and stamp.read_text() == wanted:
            return
        run = p.prisma("postgresql://unused@127.0.0.1:1/unused", "generate")
        assert run.code == 0, f"prisma generate failed:\n{run.text}"
        assert "model Session {" in (stamp.parent / "schema.prisma").read_text()
        stamp.write_text(wanted)


# --- helpers ---------------------------------------------------------------------------------------------

def schema_url(db: Db, schema: str) -> str:
    return db.url if schema == "public" else f"{db.url}?schema={schema}"


def has_table(conn: Any, schema: str, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (sql.Identifier(schema, table).as_string(conn),)).fetchone()[0] is True


def session_ids(conn: Any, schema: str, limit: int = 3) -> list[str]:
    """A few sessions the app already holds, from whichever session tables the era left."""
    ids: list[str] = []
    for table in ("Session", "session"):
        if has_table(conn, schema, table):
            rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id LIMIT %s").format(
                sql.Identifier(schema, table)), (limit,))
            ids += [r[0] for r in rows if r[0] not in ids]
    return ids


def has_failed_row(conn: Any, schema: str) -> bool:
    if not has_table(conn, schema, "_prisma_migrations"):
        return False
    return bool(conn.execute(sql.SQL(
        "SELECT count(*) FROM {} WHERE finished_at IS NULL AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, "_prisma_migrations"))).fetchone()[0])


MODEL = re.compile(r"^model (\w+) \{\n.*?^\}\n", re.M | re.S)


def pulled_schema(out: str, allowed_extra: tuple[str, ...]) -> str:
    """`db pull --print`'s schema (6.19 may print a warning on stdout first), less the allowed extra tables.

    Each pattern must match exactly one table: the list of extras stays true to what the job leaves.
    """
    start = re.search(r"^(generator|datasource) ", out, re.M)
    assert start is not None, f"db pull printed no schema:\n{out}"
    text = out[start.start():]
    matched: dict[str, list[str]] = {pattern: [] for pattern in allowed_extra}
    for m in MODEL.finditer(text):
        mapped = re.search(r'@@map\("([^"]+)"\)', m.group(0))
        table = mapped.group(1) if mapped else m.group(1)
        for pattern in allowed_extra:
            if re.fullmatch(pattern, table):
                matched[pattern].append(table)
                text = text.replace(m.group(0), "")
    assert all(len(t) == 1 for t in matched.values()), f"allowed extra tables, as found: {matched}"
    return text


def check_prisma_is_satisfied(peer: Peer, url: str, allowed_extra: tuple[str, ...], tmp_path: Path) -> None:
    """migrate status, migrate deploy, and migrate diff of the live schema against the contract, as the app's
    CI would. Where the job leaves extra tables on purpose, the live schema is taken by db pull, less them."""
    status = peer.start(url, "migrate", "status")
    pull = peer.start(url, "db", "pull", "--print") if allowed_extra or peer.cli.major < 7 else None
    st = peer.wait(status)
    assert st.code == 0 and "Database schema is up to date!" in st.out, st.text
    if pull is not None:
        pl = peer.wait(pull)
        assert pl.code == 0, pl.text
        pulled = tmp_path / "pulled.prisma"
        pulled.write_text(pulled_schema(pl.out, allowed_extra))
        diff = peer.diff(url, ("schema", pulled), CONTRACT_FILE)
    else:
        diff = peer.diff_live(url, CONTRACT_FILE)

    deploy = peer.start(url, "migrate", "deploy")
    dp, df = peer.wait(deploy), peer.wait(diff)
    assert dp.code == 0 and "No pending migrations to apply." in dp.out, dp.text
    assert not re.search(r"P30(05|09|18)", dp.out + dp.err), dp.text
    assert df.code == 0 and "No difference detected." in df.out, f"live schema != contract:\n{df.text}"


def check_sessions_work(peer: Peer, url: str, existing: list[str]) -> None:
    result = peer.storage(url, "check", *existing)
    assert result["ok"], f"PrismaSessionStorage failed: {result.get('error')}\n{result['_run']}"
    assert result["existingLoaded"] == len(existing)


def check_storage_reproduces_the_outage(result: dict[str, Any], schema: str) -> None:
    """What production saw at start-up: the table check fails, and every call refuses."""
    assert result["ok"], result["_run"]
    assert result["ready"] is False, "PrismaSessionStorage found a session table where none should be"
    assert result["readyError"]["name"] == "MissingSessionTableError", result
    assert result["loadError"]["name"] == "MissingSessionStorageError", result
    assert any(f"The table `{schema}.Session` does not exist" in line for line in result["logged"]), result


def live_rows(conn: Any, schema: str) -> list[dict[str, Any]]:
    return [r for r in ledger(conn, schema) if r["rolled_back_at"] is None]


def check_ledger_once_each(conn: Any, schema: str) -> None:
    rows = live_rows(conn, schema)
    assert not [r for r in rows if r["finished_at"] is None], f"failed ledger rows: {rows}"
    for m in SHIPPED:
        mine = [r for r in rows if r["migration_name"] == m.name]
        assert len(mine) == 1, f"{m.name} recorded {len(mine)} times: {rows}"
        assert mine[0]["checksum"] == m.checksum


# --- the states of HISTORY.md ------------------------------------------------------------------------------

def _state_params() -> Iterator[Any]:
    for state in STATES:
        for schema in ("public", "shop_app") if state in ALSO_IN_SHOP_APP else ("public",):
            marks = [matrix] if (state, schema) in MATRIX_STATES else []
            yield pytest.param(state, schema, marks=marks, id=f"{state}-{schema}")


@pytest.mark.parametrize(("state", "schema"), list(_state_params()))
def test_real_clients_work_after_the_job(peer: Peer, db: Db, state: str, schema: str,
                                         tmp_path: Path) -> None:
    url = schema_url(db, schema)
    with db.connect() as conn:
        STATES[state](conn, schema, MIGRATIONS_DIR)
        existing = session_ids(conn, schema)
        outage = not has_table(conn, schema, "Session")
        blocked = has_failed_row(conn, schema)

    # Before: the app's clients fail the way production did, so these checks would catch the bug.
    probe = peer.start_storage(url, "probe") if outage else None
    deploy = peer.start(url, "migrate", "deploy") if blocked else None
    if probe is not None:
        check_storage_reproduces_the_outage(peer.storage_result(probe), schema)
    if deploy is not None:
        run = peer.wait(deploy)
        assert run.code == 1 and "P3009" in run.err, f"Prisma should refuse a failed ledger row:\n{run.text}"

    job = run_job(url)
    if state in EXPECTED_EXIT:
        assert job.code == EXPECTED_EXIT[state], job.stderr
        return
    assert job.code == 0, job.stderr

    check_prisma_is_satisfied(peer, url, ALLOWED_EXTRA.get(state, ()), tmp_path)
    check_sessions_work(peer, url, existing)


@matrix
def test_our_migration_folder_is_what_prisma_would_generate(peer: Peer, db: Db) -> None:
    """Replayed by Prisma on a shadow database of this server, the folder yields exactly the contract."""
    run = peer.wait(peer.diff(db.url, ("migrations", MIGRATIONS_DIR), CONTRACT_FILE))
    assert run.code == 0 and "No difference detected." in run.out, run.text
    with db.cluster.admin() as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'prisma_migrate_shadow_db%'")
        assert left.fetchall() == [], "the shadow database was left behind"


# --- the other way round -------------------------------------------------------------------------------

@pytest.mark.parametrize("schema", [pytest.param("public", marks=matrix), "shop_app"])
def test_after_prisma_applied_our_folder_the_job_has_nothing_to_do(peer: Peer, db: Db, schema: str,
                                                                    tmp_path: Path) -> None:
    url = schema_url(db, schema)
    deploy = peer.prisma(url, "migrate", "deploy")
    assert deploy.code == 0 and "All migrations have been successfully applied." in deploy.out, deploy.text

    job = run_job(url)
    assert job.code == 0, job.stderr
    assert job.summary["changed"] is False and job.summary["migrations_applied"] == []
    assert not job.has("lock.acquired"), "a no-op run must not take the lock"
    plan = run_job(url, "plan", "--json")
    assert plan.code == 0 and '"action"' not in plan.stdout, plan.stdout


def test_a_database_prisma_7_created_leaves_the_job_nothing_to_do(peer: Peer, pg: PgCluster) -> None:
    """Prisma 7's `migrate deploy` creates the URL's database when it is missing (a new preview environment);
    our stand-in for its engine must too, as the native one does (from `postgres`)."""
    pg.start()  # no-op unless an earlier test stopped the shared server
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    url = pg.url(name, params="schema=shop_app")
    try:
        deploy = peer.prisma(url, "migrate", "deploy")
        assert deploy.code == 0 and f"PostgreSQL database {name} created" in deploy.out, deploy.text
        assert "All migrations have been successfully applied." in deploy.out, deploy.text
        job = run_job(url)
        assert job.code == 0 and job.summary["changed"] is False, job.stderr
    finally:
        pg.drop_database(name)


def _ledger_shape(conn: Any, schema: str) -> dict[str, Any]:
    columns = conn.execute(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = %s AND table_name = '_prisma_migrations'"
        " ORDER BY ordinal_position", (schema,)).fetchall()
    constraints = conn.execute(
        "SELECT conname, contype FROM pg_constraint WHERE conrelid = to_regclass(%s) ORDER BY 1",
        (sql.Identifier(schema, "_prisma_migrations").as_string(conn),)).fetchall()
    indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s"
                           " AND tablename = '_prisma_migrations' ORDER BY 1", (schema,)).fetchall()
    rows = [{"migration_name": r["migration_name"], "checksum": r["checksum"], "logs": r["logs"],
             "applied_steps_count": r["applied_steps_count"], "finished": r["finished_at"] is not None,
             "rolled_back": r["rolled_back_at"] is not None, "uuid4": bool(re.fullmatch(
                 r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r["id"]))}
            for r in ledger(conn, schema)]
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "rows": rows}


def test_the_job_writes_the_ledger_as_prisma_does(peer: Peer, peer6: Peer, db: Db) -> None:
    """On empty databases: prisma migrate deploy of 7 and of 6.19, and the job; the same ledger results."""
    theirs = {cli: db.cluster.create_database() for cli in (peer, peer6)}
    try:
        deploys = {cli: cli.start(db.cluster.url(name), "migrate", "deploy") for cli, name in theirs.items()}
        job = run_job(db.url)
        assert job.code == 0, job.stderr
        with db.connect() as conn:
            mine = _ledger_shape(conn, "public")
        for cli, name in theirs.items():
            deploy = cli.wait(deploys[cli])
            assert deploy.code == 0, deploy.text
            with db.cluster.admin(name) as conn:
                assert _ledger_shape(conn, "public") == mine, f"Prisma {cli.cli.version}"
    finally:
        for name in theirs.values():
            db.cluster.drop_database(name)


def test_after_prisma_resolves_a_failed_row_as_rolled_back_the_job_applies_it(peer: Peer, peer6: Peer,
                                                                              db: Db) -> None:
    """What Prisma tells a team blocked by P3009: `migrate resolve --rolled-back NAME`. Then Prisma 7's
    `migrate status` names NAME as not yet applied and exits 1, where 6.19 says up to date; the job
    applies it."""
    name = SHIPPED[-1].name  # idempotent: its row fails, its transaction rolled back, the schema stays whole
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("UPDATE _prisma_migrations SET finished_at = NULL, applied_steps_count = 0,"
                     " logs = 'canceling statement due to lock timeout' WHERE migration_name = %s", (name,))
    blocked = peer.prisma(db.url, "migrate", "deploy")
    assert blocked.code == 1 and "P3009" in blocked.err, blocked.text
    resolved = peer.prisma(db.url, "migrate", "resolve", "--rolled-back", name)
    assert resolved.code == 0 and f"Migration {name} marked as rolled back." in resolved.out, resolved.text
    status7, status6 = peer.start(db.url, "migrate", "status"), peer6.start(db.url, "migrate", "status")
    seven, six = peer.wait(status7), peer6.wait(status6)
    assert seven.code == 1 and re.search(rf"not yet been applied:\n{name}\n", seven.out), seven.text
    assert six.code == 0 and "Database schema is up to date!" in six.out, six.text

    job = run_job(db.url)
    assert job.code == 0, job.stderr
    assert job.summary["migrations_applied"] == [name]
    status = peer.prisma(db.url, "migrate", "status")
    assert status.code == 0 and "Database schema is up to date!" in status.out, status.text
    with db.connect() as conn:
        check_ledger_once_each(conn, "public")


# --- the lock, with the real Prisma ------------------------------------------------------------------------

def _wait_for_prisma_lock(pg: PgCluster, dbname: str, proc: subprocess.Popen[str]) -> bool:
    """True once some session holds Prisma's advisory lock; False if Prisma finished first."""
    deadline = time.monotonic() + 30
    with pg.admin(dbname) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            held = conn.execute("SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                                " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted"
                                " AND d.datname = %s", (LOCK_KEY, dbname)).fetchall()
            if held:
                return True
            time.sleep(0.005)
    return False


@pytest.mark.parametrize("how", [pytest.param("together", marks=matrix), "prisma_first", "up_to_date"])
def test_prisma_deploy_and_the_job_at_the_same_time(peer: Peer, db: Db, how: str) -> None:
    """Exactly one of them applies the folder; neither fails; Prisma never waits out its 10 s lock timeout."""
    if how == "up_to_date":
        with db.connect() as conn:
            STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    prisma = peer.start(db.url, "migrate", "deploy")
    if how == "prisma_first":
        _wait_for_prisma_lock(db.cluster, db.name, prisma)
    job_started = time.monotonic()
    job = finish(start_job(db.url), job_started)
    theirs = peer.wait(prisma)

    # Exit 0 also means Prisma never hit its 10 s lock timeout (P1002) behind the job.
    assert theirs.code == 0, f"prisma migrate deploy failed beside the job:\n{theirs.text}"
    assert job.code == 0, job.stderr
    prisma_applied = "have been applied" in theirs.out
    job_applied = bool(job.summary["migrations_applied"])
    if how == "up_to_date":
        assert not prisma_applied and not job_applied
        assert not job.has("lock.acquired"), "the job took the lock on an up-to-date database"
    else:
        assert prisma_applied != job_applied, f"prisma applied: {prisma_applied}, job applied: {job_applied}"
    if how == "prisma_first":
        assert prisma_applied, theirs.text
    with db.connect() as conn:
        check_ledger_once_each(conn, "public")


def test_replicas_of_both_race_on_an_empty_database(peer: Peer, db: Db) -> None:
    """Two app replicas running `prisma migrate deploy` and two job replicas, all at once."""
    started = time.monotonic()
    prismas = [peer.start(db.url, "migrate", "deploy") for _ in range(2)]
    jobs = [start_job(db.url) for _ in range(2)]
    job_runs: list[JobRun] = [finish(j, started) for j in jobs]
    prisma_runs = [peer.wait(p) for p in prismas]
    for run in prisma_runs:
        assert run.code == 0, run.text
    for job in job_runs:
        assert job.code == 0, job.stderr
    applied = [bool(j.summary["migrations_applied"]) for j in job_runs]
    applied += ["have been applied" in r.out for r in prisma_runs]
    assert applied.count(True) == 1, applied
    with db.connect() as conn:
        check_ledger_once_each(conn, "public")


def test_readme_compatibility_names_the_pinned_versions() -> None:
    readme = (MIGRATIONS_DIR.parent.parent / "README.md").read_text()
    section = readme.split("## Compatibility\n", 1)[1].split("\n## ", 1)[0]
    pins = json.loads((INTEROP / "package.json").read_text())["dependencies"]
    for name in ("prisma", "@prisma/client", "@prisma/adapter-pg",
                 "@shopify/shopify-app-session-storage-prisma", "@shopify/shopify-api",
                 "@shopify/shopify-app-session-storage"):
        assert f"`{name}`" in section or name == "prisma", name
        assert pins[name] in section, (name, pins[name])
    for name, pin in json.loads((PRISMA7 / "package.json").read_text())["dependencies"].items():
        if name in ("prisma", "@prisma/adapter-pg"):
            assert pin in section and pin.rsplit(".", 1)[0] + ".x" in section, (name, pin)
    servers = json.loads((INTEROP / "postgres" / "package.json").read_text())["dependencies"]
    for spec in servers.values():
        major_minor = ".".join(spec.rsplit("@", 1)[1].split(".")[:2])
        assert major_minor in section, spec
