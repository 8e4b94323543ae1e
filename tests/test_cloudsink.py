"""The opt-in Cloud Logging sink against a local fake of the API, with the real client over HTTP.

Every outcome's real run (tests/test_logs.py's, SIGTERM included) is repeated with
``DB_INIT_LOG_SINK=cloud-logging``: every line the job writes on stderr arrives as an entry, the last
one included, with its severity, labels, source location and the run's resource. A sink fault never
changes the exit code and is said once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobtools
import pytest
import test_logs
from fakelogging import FakeCloudLogging, fake_cloud_logging
from jobtools import run_job
from pgcluster import Db
from test_logs import CLOUD_RUN_LABELS, OUTCOME_RUNS

from job.errors import OUTCOME_BY_CODE, ExitCode

PROJECT = "test-project"


@pytest.fixture
def fake() -> Iterator[FakeCloudLogging]:
    with fake_cloud_logging() as server:
        yield server


def sink_env(endpoint: str) -> dict[str, str]:
    return {"DB_INIT_LOG_SINK": "cloud-logging", "DB_INIT_LOG_SINK_ENDPOINT": endpoint,
            "GOOGLE_CLOUD_PROJECT": PROJECT}


@pytest.fixture
def with_sink(fake: FakeCloudLogging, monkeypatch: pytest.MonkeyPatch) -> FakeCloudLogging:
    """Every job the outcome runs start gets the sink settings (the harness is patched, not the job)."""
    original = jobtools.job_env

    def job_env(url: str | None, **extra: str) -> dict[str, str]:
        return original(url, **extra) | sink_env(fake.url)
    monkeypatch.setattr(jobtools, "job_env", job_env)
    monkeypatch.setattr(test_logs, "job_env", job_env)
    return fake


@pytest.mark.parametrize("code", list(OUTCOME_RUNS), ids=lambda c: OUTCOME_BY_CODE[c].name)
def test_every_entry_arrives_on_every_outcome_the_last_included(db: Db, tmp_path: Path, code: ExitCode,
                                                                with_sink: FakeCloudLogging) -> None:
    run = OUTCOME_RUNS[code](db, tmp_path)
    assert run.code == code, run.stderr
    lines = [e for e in run.events if e["event"] != "<not json>"]
    assert len(lines) == len(run.events), "only JSON lines on stderr: the sink said nothing went wrong"
    entries = with_sink.entries()
    assert [e["jsonPayload"]["event"] for e in entries] == [ln["event"] for ln in lines]
    assert entries[-1]["jsonPayload"]["event"] == "run.finished"
    assert entries[-1]["jsonPayload"]["exit_code"] == int(code)
    for entry, line in zip(entries, lines, strict=True):
        check_entry(entry, line)


def check_entry(entry: dict[str, Any], line: dict[str, Any]) -> None:
    """The JSON line as an entry: special fields lifted out as the collectors do, the rest the payload."""
    assert entry["logName"] == f"projects/{PROJECT}/logs/db-init-job"
    assert entry["resource"]["type"] == "generic_task"
    assert entry["resource"]["labels"]["project_id"] == PROJECT
    assert entry["severity"] == line["severity"]
    assert entry["labels"] == line["logging.googleapis.com/labels"]
    assert entry["sourceLocation"] == line["logging.googleapis.com/sourceLocation"]
    assert entry["timestamp"].rstrip("Z")[:26] == line["time"].rstrip("Z")[:26]
    payload = {k: v for k, v in line.items() if k not in (
        "severity", "time", "logging.googleapis.com/labels", "logging.googleapis.com/sourceLocation")}
    assert entry["jsonPayload"] == payload


def test_labels_of_a_cloud_run_execution_and_the_task_resource(db: Db, with_sink: FakeCloudLogging) -> None:
    run = OUTCOME_RUNS[ExitCode.OK](db, Path())
    assert run.code == 0
    entry = with_sink.entries()[-1]
    assert entry["labels"] == CLOUD_RUN_LABELS
    assert entry["resource"]["labels"] | {"project_id": PROJECT} == {
        "project_id": PROJECT, "location": "global", "namespace": "db-init-job", "job": "db-init",
        "task_id": "db-init-x7k2p"}


def test_console_lines_on_a_terminal_still_send_the_full_entries(db: Db, fake: FakeCloudLogging) -> None:
    run = run_job(db.url, DB_INIT_LOG_FORMAT="console", **sink_env(fake.url))
    assert run.code == 0, run.stderr
    entries = fake.entries()
    assert entries[-1]["jsonPayload"]["event"] == "run.finished"
    assert entries[-1]["sourceLocation"]["file"] == "job/cli.py"
    assert all(e["severity"] in ("INFO", "WARNING") for e in entries)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("fault", ["refused", "denied", "no project"])
def test_a_sink_fault_never_changes_the_exit_code_and_is_said_once(db: Db, fake: FakeCloudLogging,
                                                                    fault: str) -> None:
    env = sink_env(fake.url if fault != "refused" else f"http://127.0.0.1:{closed_port()}")
    if fault == "denied":
        fake.status = 403
    if fault == "no project":
        env["GOOGLE_CLOUD_PROJECT"] = ""
    run = run_job(db.url, **env)
    assert run.code == 0
    said = [e["line"] for e in run.events if e["event"] == "<not json>"]
    assert len(said) == 1 and said[0].startswith("db-init: log sink cloud-logging failed"), said
    assert "exit code is unaffected" in said[0]
    assert run.summary["outcome"] == "ok"
    bad = run_job("postgresql://u@127.0.0.1:1/db", DB_INIT_CONNECT_TIMEOUT="1s", **env)
    assert bad.code == 3
