"""The command line as kubectl, terraform and gcloud users expect it: parsing, help, errors, exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Any

import pytest
from jobtools import MIGRATIONS_DIR, ROOT, job_env, run_job
from pgcluster import Db
from scenarios import STATES
from test_exit_codes import assert_clean_failure

from job import cli
from job.config import SETTINGS
from job.errors import OUTCOMES, PLAN_CHANGES_PENDING, ExitCode
from job.plan import Plan
from job.run import RunResult

URL = "postgresql://u:pw-Secr3t!@127.0.0.1:1/db"


def db_init(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "job", *args], cwd=ROOT, env=job_env(None, **env),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [
    ["--connect-timeout", "5x", "plan", "--database-url", URL],
    ["plan", "--database-url", URL, "--connect-timeout", "5x"],
    ["--database-url", URL, "run", "--connect-timeout=5x"],
])
def test_options_go_before_or_after_the_command_and_errors_name_the_flag(args: list[str]) -> None:
    run = run_job(None, *args)
    assert_clean_failure(run, 2, "--connect-timeout '5x' is not a duration")
    assert "DB_INIT_CONNECT_TIMEOUT" not in run.summary["reason"]


def test_errors_name_the_variable_when_the_value_came_from_the_environment() -> None:
    run = run_job(URL, DB_INIT_CONNECT_TIMEOUT="5x")
    assert_clean_failure(run, 2, "DB_INIT_CONNECT_TIMEOUT='5x' is not a duration")


def test_a_flag_after_the_command_wins_over_the_environment_like_before_it() -> None:
    run = run_job(URL, "plan", "--log-level", "loud", DB_INIT_LOG_LEVEL="debug")
    assert_clean_failure(run, 2, "--log-level 'loud' is not one of debug, info, warning, error")


def test_help_says_what_each_value_is_its_choices_default_variable_and_the_exit_codes() -> None:
    for args in (["--help"], ["plan", "--help"], ["run", "--help"], ["verify", "--help"]):
        out = db_init(*args)
        assert out.returncode == 0, out.stderr
        text = " ".join(out.stdout.split())
        for s in SETTINGS:
            assert f"{s.flag} {s.metavar}" in text
            assert s.env in text
            assert all(c in text for c in s.choices)
            if s.default:
                assert f"default {s.default}" in text
        assert {"DURATION", "URL", "PATH", "LEVEL", "FORMAT"} <= set(text.split())
        for o in OUTCOMES:
            assert f"{int(o.code)} {o.name}" in text and o.meaning in text
        assert f"{PLAN_CHANGES_PENDING} changes_pending" in text
    top = db_init("--help").stdout
    for name, description in cli.COMMANDS.items():
        assert name in top
        assert " ".join(description.split()[:3]) in " ".join(db_init(name, "--help").stdout.split())


def test_an_unknown_option_is_a_usage_error_exit_2() -> None:
    out = db_init("plan", "--frobnicate")
    assert out.returncode == 2 and "unrecognized arguments: --frobnicate" in out.stderr


def fake_result(steps: int, drift: tuple[str, ...] = ()) -> RunResult:
    from job.steps import Step
    plan = Plan(tuple(Step(f"a{n}", f"step {n}", ()) for n in range(steps)), (), (), ("a note",), drift)
    return RunResult(plan, applied=False)


class Events:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


@pytest.mark.parametrize("steps, drift, detailed, code", [
    (0, (), False, 0), (3, (), False, 0), (0, (), True, 0), (3, (), True, PLAN_CHANGES_PENDING),
    (3, ('column "Session"."expires" is text, the contract says timestamp(3)',), False, 0),
    (3, ("x",), True, PLAN_CHANGES_PENDING), (0, ("x",), True, 0),
])
def test_plan_prints_everything_drift_marked_and_its_detailed_exit_code(
        steps: int, drift: tuple[str, ...], detailed: bool, code: int) -> None:
    log, out = Events(), io.StringIO()
    with redirect_stdout(out):
        assert cli._plan(log, fake_result(steps, drift), 0.0, as_json=False, detailed=detailed) == code
    text = out.getvalue()
    assert text.count("-- step ") == steps and "-- note: a note" in text
    assert [ln for ln in text.splitlines() if ln.startswith("-- drift (left for a human): ")] == \
        [f"-- drift (left for a human): {d}" for d in drift]
    ((level, event, fields),) = log.lines
    assert event == "run.finished" and fields["exit_code"] == code
    assert fields["changes_pending"] is bool(steps) and fields["unresolved"] == len(drift)
    assert level == "info"  # drift is reported, not a failure: run would pass too
    with redirect_stdout(out := io.StringIO()):
        cli._plan(Events(), fake_result(steps, drift), 0.0, as_json=True, detailed=detailed)
    doc = json.loads(out.getvalue())
    assert doc["unresolved"] == list(drift) and len(doc["steps"]) == steps


def test_plan_exit_code_on_a_real_database_pending_then_nothing_to_do(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    assert run_job(db.url, "plan").code == 0
    pending = run_job(db.url, "plan", "--exit-code")
    assert pending.code == PLAN_CHANGES_PENDING, pending.stderr
    assert pending.summary["outcome"] == "ok" and pending.summary["changes_pending"] is True
    assert "-- step 1:" in pending.stdout
    assert run_job(db.url).code == 0
    done = run_job(db.url, "plan", "--exit-code")
    assert done.code == 0 and "Nothing to do" in done.stdout and done.summary["changes_pending"] is False


def test_a_constraint_left_not_valid_is_pending_for_plan_its_json_its_log_and_run(db: Db) -> None:
    """One definition of pending: a validation to run (a table scan) is a change, everywhere."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "ProductProfile" DROP CONSTRAINT "ProductProfile_tenantId_fkey"')
        conn.execute('ALTER TABLE "ProductProfile" ADD CONSTRAINT "ProductProfile_tenantId_fkey" FOREIGN KEY'
                     ' ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE NOT VALID')
    pending = run_job(db.url, "plan", "--exit-code")
    assert pending.code == PLAN_CHANGES_PENDING, pending.stderr
    assert pending.summary["changes_pending"] is True and pending.summary["validations"] == 1
    assert pending.event("plan.ready")["pending"] is True
    assert "-- after commit, on its own: validate constraint" in pending.stdout
    assert "Nothing to do" not in pending.stdout and "-- one transaction" not in pending.stdout
    as_json = run_job(db.url, "plan", "--json", "--exit-code")
    assert as_json.code == PLAN_CHANGES_PENDING and json.loads(as_json.stdout)["changes_pending"] is True
    run = run_job(db.url)
    assert run.code == 0 and run.summary["changed"] is True, run.stderr[-3000:]
    done = run_job(db.url, "plan", "--exit-code")
    assert done.code == 0 and done.summary["changes_pending"] is False


def test_the_text_plan_heads_each_part_with_how_it_runs() -> None:
    from job.steps import Step
    migrations = tuple(Step("apply_migration", f"apply {m}", (), m) for m in ("m1", "m2"))
    healing = (Step("add_column", "add a column", ()), Step("add_foreign_key", "add a key", ()),
               Step("create_index", "build an index", (), outside_transaction=True))
    plan = Plan(prepare=(Step("create_ledger", "create the ledger", ()),), migrations=migrations,
                validations=(Step("validate_constraint", "validate constraint c", ()),), notes=(),
                unresolved=(), healing=healing, merge=(Step("merge_session_tables", "merge", ()),))
    with redirect_stdout(out := io.StringIO()):
        cli._print_plan(RunResult(plan, applied=False), as_json=False)
    lines = out.getvalue().splitlines()
    heads = [ln for ln in lines if ln.startswith("-- ") and not ln.startswith("-- step ")]
    assert heads == [
        "-- the repairs, all in one transaction (a failure rolls them all back and stops the run):",
        "-- healing, each step in its own transaction; never fatal:",
        "-- healing outside a transaction (CONCURRENTLY), each statement on its own; never fatal:",
        '-- the session merge: batches of 5000 ids, each in its own transaction, then one transaction that'
        ' stops writes to "session", copies the ids still missing and renames it:',
        "-- each migration in its own transaction with its ledger row, as `prisma migrate deploy` runs it:",
        "-- after commit, on its own: validate constraint c"]


def test_plan_with_drift_prints_the_plan_and_the_drift(db: Db) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "Session" ALTER COLUMN "expires" TYPE text')
        conn.execute('DROP INDEX "Session_shop_idx"')  # and something run repairs
        conn.execute("""INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
                        VALUES ('x', 'x', '20251008130439_update_for_new_pricing', now())""")
    run = run_job(db.url, "plan", "--exit-code")
    assert run.code == PLAN_CHANGES_PENDING, run.stderr
    assert '-- drift (left for a human): "Session"."expires" is text' in run.stdout
    assert 'create missing index "Session_shop_idx"' in run.stdout


def test_verify_final_line_has_its_own_fields(db: Db) -> None:
    assert run_job(db.url).code == 0
    run = run_job(db.url, "verify")
    assert run.code == 0, run.stderr
    assert run.summary["differences"] == 0 and "notes" in run.summary
    assert not {"migrations_applied", "orphan_rows", "changed"} & set(run.summary)


def test_cli_logs_run_started_and_run_finished_once(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    run = run_job(db.url)
    names = [e["event"] for e in run.events]
    assert names.count("run.started") == 1 and names.count("run.finished") == 1


def test_each_plan_event_is_logged_once(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    names = [e["event"] for e in run_job(db.url).events]
    assert names.count("plan.ready") == 1


@pytest.mark.skipif(not shutil.which("bash"), reason="no bash")
@pytest.mark.parametrize("words, expected", [
    ("db-init pl", {"plan"}),
    ("db-init plan --exit", {"--exit-code"}),
    ("db-init --log-level w", {"warning"}),
    ("db-init verify --allow", {"--allow-extra"}),
])
def test_bash_completion_from_the_parser(words: str, expected: set[str]) -> None:
    script = db_init("completion", "bash").stdout
    probe = (f"{script}\nCOMP_WORDS=({words}); COMP_CWORD={len(words.split()) - 1}; _db_init;"
             ' printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert set(out.stdout.split()) == expected, out.stderr


def test_main_returns_the_exit_code_not_raises() -> None:
    assert cli.main(["--log-format", "json", "run", "--connect-timeout", "nope", "--database-url", URL]) == \
        ExitCode.CONFIG


SWALLOWED = """
import os, signal, weakref
from job import signals
from job.errors import Interrupted
signals.install()
class Thing: pass
thing = Thing()
ref = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGTERM) or [0 for _ in range(1000)])
del thing  # the handler raises inside the weakref callback, where Python swallows the exception
print("went on")
try:
    signals.raise_if_received()
except Interrupted as sig:
    print("interrupted by", sig.signal_name)
"""


def test_a_signal_whose_exception_python_swallowed_still_interrupts_the_run() -> None:
    """During start-up a SIGTERM can land in an import lock's weakref callback: Python prints "Exception
    ignored" and goes on. The job remembers the signal, prints no traceback, and the command exits 7."""
    res = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=os.environ | {"PYTHONPATH": str(ROOT)}, check=False)
    assert res.stdout.split("\n")[:2] == ["went on", "interrupted by SIGTERM"], res.stdout + res.stderr
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
