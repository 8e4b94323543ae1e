"""The bench scripts still run: every question of bench/run_all.py once at tiny size (`--quick`).

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

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_bench_script_runs_once_at_tiny_size(tmp_path: Path) -> None:
    missing = [t for t in ("hyperfine", "psql") if shutil.which(t) is None]
    missing += [] if Path("/usr/bin/time").exists() else ["/usr/bin/time"]
    if missing:
        reason = f"the bench needs {', '.join(missing)} (apt-get install hyperfine time postgresql-client)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the bench smoke, but {reason}")
        pytest.skip(reason)
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_INIT_")} | {"PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "bench/run_all.py", "--quick", "--json", str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r = json.loads(out.read_text())
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
