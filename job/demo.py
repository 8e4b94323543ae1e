"""``db-init demo``: the production break, fixed before your eyes, on a throwaway PostgreSQL.

pgserver ships PostgreSQL in a wheel, so this needs nothing installed but Python (README: "Try it").
It calls the pipeline itself (``job.run.execute``), as ``db-init run`` does, then ``verify``, then a
second run, and shows before and after side by side. Its structured log goes to a file whose path
it prints (``--verbose``: readable lines on stderr instead). Exit 0 when the fix worked.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from job import logs
from job.config import load_config, resolve_migrations_dir
from job.errors import ExitCode, JobError
from job.run import RunResult, execute

SCHEMA = "public"
NEEDS_DEV_INSTALL = ("db-init demo needs the development install (the pgserver package, a PostgreSQL in a"
                     " wheel): from a clone, run `python3 dev.py demo`")

Snapshot = dict[str, str]  # what a person looks at -> what it was
# The scenario builders are test fixtures: they live in the checkout's tests/, not in the package.
SCENARIOS = Path(__file__).resolve().parent.parent / "tests" / "scenarios.py"


def _scenarios() -> Any:
    if not SCENARIOS.is_file():
        raise ModuleNotFoundError(str(SCENARIOS))
    spec = importlib.util.spec_from_file_location("db_init_demo_scenarios", SCENARIOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_demo(verbose: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    # platformdirs (under pgserver) warns about XDG_RUNTIME_DIR on servers: not the user's concern here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    try:
        import pgserver
        state_demo = _scenarios().state_demo  # the production break, built as the tests build it
    except ModuleNotFoundError:
        print(NEEDS_DEV_INSTALL, file=sys.stderr)
        return ExitCode.CONFIG

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    migrations_dir = resolve_migrations_dir("prisma/migrations")
    log_file = None
    if verbose:
        logs.configure("console", "info")
    else:
        log_file = Path(tempfile.mkstemp(prefix="db-init-demo-", suffix=".log.jsonl")[1])
        logs.configure("json", "info", stream=log_file.open("w", encoding="utf-8"))
    log = logs.get_logger()
    with tempfile.TemporaryDirectory(prefix="db-init-demo-") as tmp:
        say("== starting a throwaway PostgreSQL (pgserver) and breaking it as production was broken")
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as admin:
                admin.execute("CREATE DATABASE shop")
            url = server.get_uri("shop")
            with psycopg.connect(url, autocommit=True) as conn:
                state_demo(conn, SCHEMA, migrations_dir)
                before = snapshot(conn)
            config = load_config({"database_url": url, "migrations_dir": str(migrations_dir)}, env={})
            say("== db-init run: the same pipeline as in production (job.run.execute)\n")
            try:
                first = execute(config, mode="run", log=log)
                with psycopg.connect(url, autocommit=True) as conn:
                    after = snapshot(conn)
                checked = execute(config, mode="verify", log=log)
                second = execute(config, mode="run", log=log)
            except JobError as err:
                say(f"the run failed: {err.reason} (exit {int(err.code)})")
                return err.code
        finally:
            logs.close()
            server.cleanup()
    say(side_by_side(before, after))
    say("\n== what the job did (the repairs in one transaction, then each migration in its own):")
    say(describe(first))
    say("\n== then:")
    say(f"  verify: {len(checked.differences)} differences in the schema (against what the migrations"
        " folder builds) and the ledger")
    for line in checked.differences:
        say(f"    {line}")
    say("  a second run: " + ("nothing to do (no lock taken, no DDL)" if not second.applied
                              else "applied more steps (unexpected)"))
    if log_file is not None:
        say(f"\nthe job's structured log (one JSON line per event): {log_file}")
    ok = first.applied and not checked.differences and not second.applied
    say("\nthe fix worked: exit 0" if ok else "\nthe fix did NOT work: exit 8")
    return ExitCode.OK if ok else ExitCode.DRIFT


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """Tables with their rows, the session tables, the ledger, and what Prisma and Shopify would meet."""
    tables = {r[0] for r in conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE nspname = %s AND relkind = 'r'", (SCHEMA,))}
    shot: Snapshot = {"tables in public": f"{len(tables)}"}
    for name in ("session", "Session"):
        if name in tables:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name)))
            shot[f'table "{name}"'] = f"{n.fetchone()[0]} rows"  # type: ignore[index]
        else:
            shot[f'table "{name}"'] = "missing"
    failed = 0
    if "_prisma_migrations" in tables:
        for name, finished, rolled_back in conn.execute(
                "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL"
                " FROM _prisma_migrations ORDER BY started_at, migration_name"):
            status = "rolled back" if rolled_back else "applied" if finished else "FAILED"
            failed += status == "FAILED"
            shot[f"ledger: {name}"] = status
    shot["prisma migrate deploy"] = "stops: failed row (P3009)" if failed else "no failed row"
    shot["Shopify session storage"] = ('finds "Session"' if "Session" in tables
                                       else "MissingSessionTableError")
    return shot


def side_by_side(before: Snapshot, after: Snapshot) -> str:
    keys = list(before) + [k for k in after if k not in before]
    ledger = [k for k in keys if k.startswith("ledger: ")]
    keys = [k for k in keys if k not in ledger] + ledger
    keys.remove("prisma migrate deploy")
    keys.remove("Shopify session storage")
    keys += ["prisma migrate deploy", "Shopify session storage"]
    width = max(len(k) for k in keys) + 2
    col = max(len(v) for v in before.values()) + 2
    lines = [f"{'':{width}}{'BEFORE':{col}}AFTER", f"{'':{width}}{'-' * (col - 2):{col}}{'-' * 5}"]
    for k in keys:
        b, a = before.get(k, "-"), after.get(k, "-")
        lines.append(f"{k:{width}}{b:{col}}{a}" + ("" if a == b else "   <- changed"))
    return "\n".join(lines)


def describe(result: RunResult) -> str:
    steps = [*result.plan.steps, *result.plan.validations]
    lines = [f"  {n}. {step.summary}" for n, step in enumerate(steps, 1)]
    lines += [f"  note: {note}" for note in result.plan.notes]
    return "\n".join(lines) or "  nothing"
