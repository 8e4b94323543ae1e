"""The bench scripts still run: every question of bench/run_all.py once at tiny size (`--quick`), and
bench/gentle.py (big tables under app traffic) at 5000 rows.

No number is checked: a benchmark never fails CI on a figure (bench/RESULTS.md holds those). What is
checked is that each script ran to its end and reported what RESULTS.md quotes. hyperfine, GNU time and
psql come from apt-get (.ci/run installs them); without them this skips, and fails under CI=true.
The image question runs only where the container tests can (buildah, podman, root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_quick(tmp_path: Path, script: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``script --quick`` (each part once, tiny), its output and its JSON; skipped without the tools."""
    missing = [t for t in ("hyperfine", "psql") if shutil.which(t) is None]
    missing += [] if Path("/usr/bin/time").exists() else ["/usr/bin/time"]
    if missing:
        reason = f"the bench needs {', '.join(missing)} (apt-get install hyperfine time postgresql-client)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the bench smoke, but {reason}")
        pytest.skip(reason)
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_INIT_")} | {"PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, script, "--quick", "--json", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res, json.loads(out.read_text())


def test_every_bench_script_runs_once_at_tiny_size(tmp_path: Path) -> None:
    res, r = run_quick(tmp_path, "bench/run_all.py")
    assert {"floor", "job"} <= set(r["noop"]["results"])
    assert r["noop"]["results"]["job"]["peak_rss_mb"] > 0
    assert r["imports"]["job_imports_ms"] > 0
    assert {"job", "floor + psql"} <= set(r["fresh"]["results"])
    trips = r["replicas"]["roundtrips_noop"]
    assert trips["job"] > trips["connect"] > 0
    for batch in r["replicas"]["batches"]:  # correctness, not speed: every replica exits 0, once each
        assert batch["exit_codes"] == [0], batch
        assert batch["each_migration_once"], batch
    assert "sizes" in r["image"] or "skipped" in r["image"]
    assert "question" in res.stdout  # the table


def test_gentle_runs_once_at_tiny_size(tmp_path: Path) -> None:
    """bench/gentle.py (big tables under app traffic) at 5000 rows: it finishes and reports every figure.

    No figure is checked; the job's exit code is: under the app's traffic it must succeed (the session
    merge once met a duplicate key when the app upserted a session it was copying).
    """
    out = tmp_path / "gentle.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_INIT_")} | {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "bench/gentle.py", "--rows", "5000", "--cases", "partial,both_populated",
           "--json", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["machine"]["cores"] and r["postgres"]["version"] and r["job"]["head"]
    assert "load" in r["load_at_start"] and "load" in r["load_at_end"]
    assert [(c["case"], c["rows"]) for c in r["results"]] == [("partial", 5000), ("both_populated", 5000)]
    for c in r["results"]:
        assert c["database"]["reltuples"]["ProductProfile"] >= 5000
        assert c["job"]["exit_code"] == 0, c["job"]
        assert c["job"]["duration_s"] > 0
        assert any(e.get("event") == "run.finished" for e in c["job"]["events"])
        assert isinstance(c["longest_strong_holds"], dict)
        for table, modes in c["longest_strong_holds"].items():
            assert table and all(h["held_ms"] >= 0 and h["window_ms"] >= 0 and h["queries"]
                                 for h in modes.values())
        for phase in ("before", "during"):
            lat = c["latency"][phase]
            assert lat["ops"] > 0 and {"p50_ms", "p99_ms", "max_ms", "errors"} <= set(lat), (phase, lat)
        assert isinstance(c["app_waits_over_1s"], list)
        assert c["sampler"]["samples"] > 0
    partial = r["results"][0]["database"]
    assert partial["missing_before"] == partial["baseline_wants"]["indexes"] + \
        partial["baseline_wants"]["foreign_keys"]
    assert len(partial["missing_before"]) == 3  # two indexes and the foreign key of "ProductProfile"
    assert "| case | rows |" in res.stdout  # the table


def test_pod_start_sitting_runs_once_at_tiny_size(tmp_path: Path) -> None:
    """bench/pod_start.py (issue 21: no-op and fresh apply side by side, imports before and after) at its
    quick size: it finishes and writes every part; Prisma 7 and dbmate are measured or said missing."""
    res, r = run_quick(tmp_path, "bench/pod_start.py")
    assert {"floor", "job"} <= set(r["noop"]["results"])
    assert {"job", "floor + psql"} <= set(r["fresh"]["results"])
    assert "dbmate up" in r["fresh"]["results"] or any("dbmate" in n for n in r["fresh"]["notes"])
    assert "job.database" in r["imports_after"]["job_modules_loaded"]
    assert "job.heal" not in r["imports_after"]["job_modules_loaded"]
    if "skipped" not in r["imports_before"]:  # a shallow clone lacks the revision before issue 21
        assert "job.heal" in r["imports_before"]["job_modules_loaded"]  # the before really is the old job
    assert "imports of a no-op" in res.stdout  # the table
