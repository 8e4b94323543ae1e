"""Every line the job prints is a Cloud Logging structured entry, and none carries a secret."""

from __future__ import annotations

import io
import json
from datetime import datetime

from jobtools import run_job
from pgcluster import Db

from job import logs
from job.dburl import parse_database_url

CLOUD_RUN = {"CLOUD_RUN_JOB": "db-init", "CLOUD_RUN_EXECUTION": "db-init-x7k2p",
             "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_ATTEMPT": "2"}


def test_every_line_is_a_structured_entry_with_cloud_run_labels(db: Db) -> None:
    run = run_job(db.url, **CLOUD_RUN)
    assert run.code == 0
    assert run.stdout == ""  # logs go to stderr; stdout is for command output
    assert len(run.events) >= 5
    for e in run.events:
        assert e["event"] != "<not json>", e
        assert e["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert e["message"].startswith(e["event"])
        datetime.fromisoformat(e["time"])
        assert e["logging.googleapis.com/labels"] == {
            "app": "db-init-job", "job": "db-init", "execution": "db-init-x7k2p",
            "task_index": "0", "task_attempt": "2"}
        loc = e["logging.googleapis.com/sourceLocation"]
        assert loc["file"].endswith(".py") and loc["line"].isdigit() and loc["function"]
    assert db.cluster.password not in run.stderr


def test_pod_labels_in_kubernetes(db: Db) -> None:
    run = run_job(db.url, KUBERNETES_SERVICE_HOST="10.0.0.1", HOSTNAME="shop-7d9f-abc",
                  POD_NAMESPACE="shop")
    labels = run.events[0]["logging.googleapis.com/labels"]
    assert labels == {"app": "db-init-job", "pod": "shop-7d9f-abc", "namespace": "shop"}


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
