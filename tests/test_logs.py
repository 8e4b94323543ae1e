"""Every line the job prints, in every outcome, is a Cloud Logging structured entry.

Cloud Logging lifts `severity`, `time`, `logging.googleapis.com/labels` and `.../sourceLocation`
out of a JSON line; Error Reporting takes entries typed as ReportedErrorEvent. google-cloud-logging
(test-only) is the reference: its StructuredLogHandler formats the same record for comparison, and
its resource detection, with the metadata server stubbed out, must agree with the job's labels.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.cloud.logging_v2.handlers import _monitored_resources as resources
from google.cloud.logging_v2.handlers.structured_log import (
    GCP_STRUCTURED_LOGGING_FIELDS,
    StructuredLogHandler,
)
from jobtools import MIGRATIONS_DIR, ROOT, JobRun, finish, job_env, run_job, start_job, wait_for_job_session
from pgcluster import Db
from scenarios import STATES

from job import __version__, cli, logs
from job.dburl import parse_database_url
from job.errors import OUTCOME_BY_CODE, ExitCode
from job.statements import PRISMA_LOCK_KEY

CLOUD_RUN = {"CLOUD_RUN_JOB": "db-init", "CLOUD_RUN_EXECUTION": "db-init-x7k2p",
             "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_ATTEMPT": "2"}
CLOUD_RUN_LABELS = {"app": "db-init-job", "job": "db-init", "execution": "db-init-x7k2p",
                    "task_index": "0", "task_attempt": "2"}
SEVERITIES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PASSWORD = "pw-Secr3t!"  # the test cluster's (tests/pgcluster.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_python(url: str | None, code: str, **env: str) -> JobRun:
    """The CLI in a subprocess of its own, after `code` (e.g. a patch that plants a bug)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=job_env(url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(proc, started)




# --- one real run per outcome ---------------------------------------------------------------

def outcome_ok(db: Db, _: Path) -> JobRun:
    return run_job(db.url, **CLOUD_RUN)


def outcome_internal(db: Db, _: Path) -> JobRun:
    code = ("import sys, job.run\n"
            "def bug(*a, **k): raise RuntimeError('planner bug')\n"
            "job.run.make_plan = bug\n"
            "from job.cli import main\n"
            "sys.exit(main())\n")
    return run_python(db.url, code, **CLOUD_RUN)


def outcome_config(_: Db, __: Path) -> JobRun:
    return run_job(None, **CLOUD_RUN)


def outcome_unavailable(_: Db, __: Path) -> JobRun:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    return run_job(url, DB_INIT_CONNECT_TIMEOUT="1s", **CLOUD_RUN)


@contextmanager
def holding_prisma_lock(db: Db) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db.url, autocommit=True, application_name="prisma-migrate") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
        yield conn


def outcome_lock_busy(db: Db, _: Path) -> JobRun:
    with holding_prisma_lock(db):
        return run_job(db.url, DB_INIT_LOCK_TIMEOUT="1s", **CLOUD_RUN)


def outcome_needs_human(db: Db, _: Path) -> JobRun:
    with db.connect() as conn:
        conn.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    return run_job(db.url, **CLOUD_RUN)


def outcome_migration_failed(db: Db, tmp_path: Path) -> JobRun:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "20260101000000_broken").mkdir()
    (folder / "20260101000000_broken" / "migration.sql").write_text("SELEC oops;\n")
    return run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder), **CLOUD_RUN)


def outcome_interrupted(db: Db, _: Path) -> JobRun:
    with holding_prisma_lock(db):
        started = time.monotonic()
        proc = start_job(db.url, DB_INIT_LOCK_TIMEOUT="60s", **CLOUD_RUN)
        wait_for_job_session(db)
        proc.send_signal(signal.SIGTERM)
        return finish(proc, started)


def outcome_drift(db: Db, _: Path) -> JobRun:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "Session" ALTER COLUMN "expires" TYPE text')
    return run_job(db.url, "verify", **CLOUD_RUN)  # run reports drift and passes; verify is the gate


OUTCOME_RUNS: dict[ExitCode, Callable[[Db, Path], JobRun]] = {
    ExitCode.OK: outcome_ok,
    ExitCode.INTERNAL: outcome_internal,
    ExitCode.CONFIG: outcome_config,
    ExitCode.UNAVAILABLE: outcome_unavailable,
    ExitCode.LOCK_BUSY: outcome_lock_busy,
    ExitCode.NEEDS_HUMAN: outcome_needs_human,
    ExitCode.MIGRATION_FAILED: outcome_migration_failed,
    ExitCode.INTERRUPTED: outcome_interrupted,
}
if hasattr(ExitCode, "DRIFT"):
    OUTCOME_RUNS[ExitCode.DRIFT] = outcome_drift


def test_every_outcome_is_covered() -> None:
    assert set(OUTCOME_RUNS) == set(OUTCOME_BY_CODE)


def check_entry(e: dict[str, Any], labels: dict[str, str]) -> None:
    """One line as Cloud Logging and Error Reporting read it."""
    assert e["event"] != "<not json>", e
    assert e["severity"] in SEVERITIES
    assert e["message"].startswith(e["event"]) and "\n" not in e["message"]
    assert not re.search(r"\b(pathname|lineno|func_name|exc_info)=", e["message"]), e["message"]
    assert e["time"].endswith("Z")
    datetime.fromisoformat(e["time"])
    assert e["logging.googleapis.com/labels"] == labels
    assert all(isinstance(v, str) for v in labels.values())
    special = {k for k in e if k.startswith("logging.googleapis.com/")} | {"severity", "time"}
    assert special <= GCP_STRUCTURED_LOGGING_FIELDS, special - GCP_STRUCTURED_LOGGING_FIELDS
    loc = e["logging.googleapis.com/sourceLocation"]
    assert set(loc) == {"file", "line", "function"} and loc["line"].isdigit()
    assert loc["file"].startswith("job/") and loc["file"].endswith(".py"), "relative to the package root"
    source = (ROOT / loc["file"]).read_text().splitlines()[int(loc["line"]) - 1]
    assert re.search(r"\b_?log\.\w+\(", source), f"sourceLocation points at {source!r}, not a log call"
    if e["severity"] in ("ERROR", "CRITICAL"):
        assert e["@type"] == logs.REPORTED_ERROR_EVENT
        assert e["serviceContext"] == {"service": labels.get("job", "db-init-job"), "version": __version__}
        assert e["context"]["reportLocation"] == {
            "filePath": loc["file"], "lineNumber": int(loc["line"]), "functionName": loc["function"]}
    else:
        assert "@type" not in e and "stack_trace" not in e


@pytest.mark.parametrize("code", list(OUTCOME_RUNS), ids=lambda c: OUTCOME_BY_CODE[c].name)
def test_every_line_of_every_outcome_is_a_cloud_logging_entry(db: Db, tmp_path: Path, code: ExitCode) -> None:
    run = OUTCOME_RUNS[code](db, tmp_path)
    assert run.code == code, run.stderr
    if code != ExitCode.CONFIG:  # a configuration error ends the run before it starts
        assert run.events[0]["event"] == "run.started"
    for e in run.events:
        check_entry(e, CLOUD_RUN_LABELS)
    times = [e["time"] for e in run.events]
    assert times == sorted(times)
    last = run.events[-1]
    assert last["event"] == "run.finished", "run.finished is the last line, whatever happened"
    outcome = OUTCOME_BY_CODE[code]
    assert (last["outcome"], last["exit_code"], last["retryable"]) == (outcome.name, code, outcome.retryable)
    assert last["severity"] == ("INFO" if code == ExitCode.OK else "ERROR")
    if code != ExitCode.OK:
        assert last["reason"] and "\n" not in last["reason"]
    assert PASSWORD not in run.stdout + run.stderr
    traced = [e for e in run.events if "stack_trace" in e]
    if code == ExitCode.INTERNAL:  # a bug: the one traceback, where Error Reporting reads it first
        (crash,) = traced
        assert crash["event"] == "run.crashed"
        assert crash["stack_trace"].startswith("Traceback (most recent call last):")
        assert crash["stack_trace"].rstrip().endswith("RuntimeError: planner bug")
    else:
        assert traced == [] and "Traceback" not in run.stderr


def test_pod_labels_in_kubernetes(db: Db) -> None:
    run = run_job(db.url, KUBERNETES_SERVICE_HOST="10.0.0.1", HOSTNAME="shop-7d9f-abc", POD_NAMESPACE="shop")
    assert run.code == 0
    for e in run.events:
        check_entry(e, {"app": "db-init-job", "pod": "shop-7d9f-abc", "namespace": "shop"})


def test_console_format_is_plain_text(db: Db) -> None:
    run = run_job(db.url, DB_INIT_LOG_FORMAT="console")
    assert run.code == 0
    assert "run.finished" in run.stderr and not run.stderr.lstrip().startswith("{")


def test_a_password_in_any_field_is_masked() -> None:
    parse_database_url("postgresql://u:Hunter2-secret@h/db")
    out = io.StringIO()
    logs.configure("json", "info", stream=out, env={})
    logs.get_logger().info("probe", detail="dsn postgresql://u:Hunter2-secret@h/db failed",
                           error=RuntimeError("password=Hunter2-secret"))
    line = json.loads(out.getvalue())
    assert "Hunter2" not in out.getvalue()
    assert line["detail"] == "dsn postgresql://u:***@h/db failed"


def test_a_password_in_a_traceback_is_masked() -> None:
    parse_database_url("postgresql://u:Hunter2-secret@h/db")
    out = io.StringIO()
    logs.configure("json", "info", stream=out, env={})
    try:
        raise RuntimeError("cannot reach postgresql://u:Hunter2-secret@h/db")
    except RuntimeError:
        logs.get_logger().exception("run.crashed")
    line = json.loads(out.getvalue())
    assert "Hunter2" not in out.getvalue() and "RuntimeError" in line["stack_trace"]


def test_a_librarys_own_warning_is_a_structured_line() -> None:
    """psycopg logs through the standard library (e.g. a cancellation cut short by a signal)."""
    out = io.StringIO()
    logs.configure("json", "info", stream=out, env={})
    logging.getLogger("psycopg").warning("query cancellation interrupted (%s): closing connection", "X")
    line = json.loads(out.getvalue())
    check_entry(line, {"app": "db-init-job"})
    assert (line["event"], line["logger"]) == ("library.warning", "psycopg")
    assert line["detail"] == "query cancellation interrupted (X): closing connection"


# --- google-cloud-logging as the reference ----------------------------------------------------

def test_lines_match_what_google_cloud_logging_writes_for_the_same_record(db: Db) -> None:
    """Format the job's own run.finished through StructuredLogHandler: same special fields, same payload."""
    run = run_job(None, **CLOUD_RUN)  # a failure: the richest line
    ours = run.summary
    loc = ours["logging.googleapis.com/sourceLocation"]
    payload = {k: v for k, v in ours.items() if k not in GCP_STRUCTURED_LOGGING_FIELDS}
    record = logging.LogRecord(name="", level=logging.ERROR, pathname=loc["file"], lineno=int(loc["line"]),
                               msg=payload, args=(), exc_info=None, func=loc["function"])
    handler = StructuredLogHandler(labels=CLOUD_RUN_LABELS, stream=io.StringIO())  # type: ignore[no-untyped-call]
    handler.filter(record)
    theirs = json.loads(handler.format(record))  # type: ignore[no-untyped-call]
    assert theirs["severity"] == ours["severity"]
    assert theirs["logging.googleapis.com/labels"] == ours["logging.googleapis.com/labels"]
    their_loc = theirs["logging.googleapis.com/sourceLocation"]
    assert their_loc == {"file": loc["file"], "line": int(loc["line"]), "function": loc["function"]}
    assert {k: v for k, v in theirs.items() if k in payload} == payload
    # What the job adds and the handler has no place for: the time of the event itself.
    assert "time" in ours and "time" not in theirs


ENV_VARS = (*CLOUD_RUN, "KUBERNETES_SERVICE_HOST", "HOSTNAME", "POD_NAME", "POD_NAMESPACE", "K_SERVICE",
            "K_REVISION", "K_CONFIGURATION", "GAE_SERVICE", "FUNCTION_TARGET", "FUNCTION_NAME")


@pytest.mark.parametrize("env, resource_type, on_gke", [
    (CLOUD_RUN, "cloud_run_job", False),
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "shop-7d9f-abc", "POD_NAMESPACE": "shop"},
     "k8s_container", True),
    ({}, "global", False),
], ids=["cloud-run-job", "gke", "elsewhere"])
def test_environment_detection_agrees_with_google_cloud_logging(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], resource_type: str, on_gke: bool) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The library asks the metadata server; the job never does. Stub it: nothing leaves the machine.
    metadata = {resources._GKE_CLUSTER_NAME: "shop-cluster"} if on_gke else {}
    monkeypatch.setattr(resources, "retrieve_metadata_server", lambda key, timeout=5: metadata.get(key))
    detected = resources.detect_resource("my-project")  # type: ignore[no-untyped-call]
    assert detected.type == resource_type
    ours = logs.environment_labels(os.environ)
    theirs = resources._get_environmental_labels.__wrapped__(detected.type)
    same = {"run.googleapis.com/execution_name": "execution", "run.googleapis.com/task_index": "task_index",
            "run.googleapis.com/task_attempt": "task_attempt"}
    assert {same[k]: v for k, v in theirs.items()} == {k: v for k, v in ours.items() if k in same.values()}
    if resource_type == "cloud_run_job":
        assert ours["job"] == detected.labels["job_name"]
    assert ("pod" in ours) == on_gke


def test_a_no_op_run_imports_no_google_library_and_runs_one_thread(db: Db) -> None:
    """The hot path stays light (no 480 ms google import) and nothing is left in a background queue."""
    assert run_job(db.url).code == 0
    probe = ("import atexit, json, sys, threading, runpy\n"
             "def report():\n"
             "    mods = sorted(m for m in sys.modules if m.split('.')[0] in ('google', 'grpc'))\n"
             "    print(json.dumps({'event': 'probe', 'google': mods,"
             " 'threads': threading.active_count()}), file=sys.stderr)\n"
             "atexit.register(report)\n"
             "sys.argv = ['db-init', 'run']\n"
             "runpy.run_module('job', run_name='__main__')\n")
    run = run_python(db.url, probe)
    assert run.code == 0, run.stderr
    assert run.event("run.finished")["changed"] is False
    probe_line = run.event("probe")
    assert probe_line["google"] == [] and probe_line["threads"] == 1


# --- Kubernetes termination message ------------------------------------------------------------

def test_a_failure_writes_its_reason_to_the_termination_log(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    run = run_job(None, DB_INIT_TERMINATION_LOG=str(log))
    assert run.code == ExitCode.CONFIG
    assert log.read_text() == run.summary["reason"] + "\n"


def test_success_leaves_the_termination_log_alone(db: Db, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    assert run_job(db.url, DB_INIT_TERMINATION_LOG=str(log)).code == 0
    assert log.read_text() == ""


def test_termination_message_is_one_line_within_the_kubelet_limit(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    monkeypatch.setattr(cli, "TERMINATION_LOG", log)
    cli._write_termination_message("first line\nsecond " + "é" * 5000)
    data = log.read_bytes()
    assert len(data) <= 4096 and data.count(b"\n") == 1 and data.endswith(b"\n")
    assert data.decode().startswith("first line second éé")


def test_no_termination_log_outside_kubernetes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "TERMINATION_LOG", tmp_path / "absent")
    cli._write_termination_message("reason")
    assert not (tmp_path / "absent").exists()
