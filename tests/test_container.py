"""The real Dockerfile, built and run: non-root, read-only root file system, against real PostgreSQL.

The image is built from the repository's Dockerfile with buildah on a locally made base
(tests/container/build-base.sh: no container registry is needed), then run with podman the way
Kubernetes' restricted profile runs it: its own numeric user, a read-only root with a writable /tmp,
every capability dropped, no privilege escalation. Without buildah/podman or root these tests skip
with one line; in CI (CI=true) they fail instead, so CI always proves the image.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from containerimage import Image, image_or_skip, runtime_flags
from jobtools import JobRun, job_sessions, parse_events, wait_for_job_session
from pgcluster import Db
from test_logs import CLOUD_RUN, CLOUD_RUN_LABELS, PASSWORD, check_entry, free_port, holding_prisma_lock

from job.errors import ExitCode

# The first test on a new machine pays for the base image (~75 s) and the image build (~35 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="session")
def image() -> Image:
    return image_or_skip()  # built once per session (containerimage.py), shared with test_pod.py


@dataclass
class ContainerRun(JobRun):
    tmp_files: list[str] | None = None


def podman_command(image: Image, *args: str, env: dict[str, str], name: str, tmp: Path,
                   mounts: tuple[str, ...] = (), entrypoint: str | None = None) -> list[str]:
    cmd = ["podman", "run", "--rm", "--name", name, *runtime_flags(), "--network", "host",
           # Kubernetes' restricted profile + readOnlyRootFilesystem with an emptyDir /tmp:
           "--read-only", "--read-only-tmpfs=false", "--volume", f"{tmp}:/tmp",
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for m in mounts:
        cmd += ["--volume", m]
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return [*cmd, image.name, *args]


def parse(code: int, out: str, err: str, seconds: float, tmp: Path) -> ContainerRun:
    return ContainerRun(code, out, err, seconds, parse_events(err),
                        tmp_files=sorted(p.name for p in tmp.iterdir()))


def scratch(tmp_path: Path) -> Path:
    """The container's /tmp, as an emptyDir: writable by anyone, checked empty afterwards."""
    tmp = tmp_path / f"tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    return tmp


def run_container(image: Image, tmp_path: Path, *args: str, env: dict[str, str],
                  mounts: tuple[str, ...] = (), entrypoint: str | None = None) -> ContainerRun:
    tmp = scratch(tmp_path)
    cmd = podman_command(image, *args, env=env, name=f"db-init-test-{uuid.uuid4().hex[:10]}", tmp=tmp,
                         mounts=mounts, entrypoint=entrypoint)
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    return parse(res.returncode, res.stdout, res.stderr, time.monotonic() - started, tmp)


def container_url(db: Db) -> str:
    return db.url  # TCP on 127.0.0.1 with the real password: the container shares the host's network






# --- the image itself --------------------------------------------------------------------------

def test_image_runs_the_job_as_a_numeric_non_root_user(image: Image) -> None:
    config = json.loads(subprocess.run(["podman", "image", "inspect", image.name], capture_output=True,
                                       text=True, check=True).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-P", "-m", "job"] and config["Cmd"] == ["run"]
    assert config["WorkingDir"] == "/app"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PATH"].startswith("/opt/venv/bin:")


def test_image_holds_no_compiler_no_pip_no_caches_and_no_build_context(image: Image, tmp_path: Path) -> None:
    script = (
        "set -u\n"
        "for t in gcc cc c++ make; do command -v $t && echo FOUND $t; done\n"
        "ls /opt/venv/bin/pip* /src /root/.cache /app/README.md /app/pyproject.toml /app/.git 2>/dev/null"
        " && echo FOUND leftovers\n"
        # What this Dockerfile adds lives in /opt/venv and /app; the base's own files are the base's.
        "find /opt /app /root /home -xdev \\( -name '*.whl' -o -name '*.tar.gz' -o -name '.env'"
        " -o -name 'id_rsa' -o -name '*.pem' -o -name '.netrc' -o -name 'pip.conf' \\) | sed 's/^/FOUND /'\n"
        "ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' | sed 's/^/FOUND apt /'\n"
        "ls -A /app; ls -A /app/prisma\n"
        "id -u; id -g\n"
    )
    run = run_container(image, tmp_path, "-c", script, env={}, entrypoint="/bin/sh")
    assert run.code == 0, run.stderr
    assert "FOUND" not in run.stdout, run.stdout
    assert run.stdout.split()[-4:] == ["migrations", "schema.prisma", "10001", "10001"], run.stdout


def test_every_module_a_run_imports_was_compiled_at_build_time(image: Image, db: Db, tmp_path: Path) -> None:
    """On a read-only root nothing can be compiled at start-up: every .py the run loads has its .pyc."""
    probe = (
        "import atexit, importlib.util, json, os, sys, runpy\n"
        "def report():\n"
        "    missing = []\n"
        "    for name, m in list(sys.modules.items()):\n"
        "        f = getattr(m, '__file__', None)\n"
        "        if f and f.endswith('.py') and not os.path.exists(importlib.util.cache_from_source(f)):\n"
        "            missing.append(name)\n"
        "    print(json.dumps({'event': 'probe', 'missing': sorted(missing), 'modules': len(sys.modules)}),"
        " file=sys.stderr)\n"
        "atexit.register(report)\n"
        "sys.argv = ['db-init', 'run']\n"
        "runpy.run_module('job', run_name='__main__')\n"
    )
    run = run_container(image, tmp_path, "-c", probe, env={"DATABASE_URL": container_url(db)},
                        entrypoint="/opt/venv/bin/python")
    assert run.code == 0, run.stderr
    report = run.event("probe")
    assert report["modules"] > 100 and report["missing"] == []


# --- the three outcomes CI must see --------------------------------------------------------------

def test_success_then_a_fast_no_op_on_a_read_only_root(image: Image, db: Db, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    first = run_container(image, tmp_path, env={"DATABASE_URL": container_url(db), **CLOUD_RUN})
    assert first.code == ExitCode.OK, first.stderr
    assert first.stdout == "" and first.tmp_files == [], "logs on stderr; nothing written, not even in /tmp"
    for e in first.events:
        check_entry(e, CLOUD_RUN_LABELS)
    assert first.summary["changed"] is True and len(first.summary["migrations_applied"]) >= 2

    k8s = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "shop-app-7d9f-abc", "POD_NAMESPACE": "shop"}
    no_ops = [run_container(image, tmp_path, env={"DATABASE_URL": container_url(db), **k8s})
              for _ in range(3)]
    for run in no_ops:
        assert run.code == ExitCode.OK and run.summary["changed"] is False, run.stderr
        assert not run.has("lock.acquired"), "a no-op takes no lock"
        for e in run.events:
            check_entry(e, {"app": "db-init-job", "pod": "shop-app-7d9f-abc", "namespace": "shop"})
    wall = statistics.median(r.seconds for r in no_ops)
    job_ms = statistics.median(r.summary["duration_ms"] for r in no_ops)
    assert wall < 10
    with capsys.disabled():
        print(f"\n[container] image {image.name} on {image.base}: {image.size_mb:.0f} MB, built in "
              f"{image.build_seconds:.1f} s; no-op run {wall:.2f} s wall (podman run to exit), "
              f"{job_ms:.0f} ms in the job")


def test_needs_a_human_exits_5_with_the_reason_in_the_termination_log(image: Image, db: Db,
                                                                       tmp_path: Path) -> None:
    with db.connect() as conn:
        conn.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    termination = tmp_path / "termination-log"
    termination.touch()
    os.chown(termination, 10001, 10001)  # as the kubelet provides it: writable by the container's user
    run = run_container(image, tmp_path, env={"DATABASE_URL": container_url(db), **CLOUD_RUN},
                        mounts=(f"{termination}:/dev/termination-log:rw",))
    assert run.code == ExitCode.NEEDS_HUMAN, run.stderr
    for e in run.events:
        check_entry(e, CLOUD_RUN_LABELS)
    summary = run.summary
    assert summary["outcome"] == "needs_human" and "read-only" in summary["reason"]
    assert termination.read_text() == summary["reason"] + "\n"
    assert PASSWORD not in run.stdout + run.stderr and "Traceback" not in run.stderr


def test_unreachable_database_exits_3_after_logged_retries(image: Image, tmp_path: Path) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    run = run_container(image, tmp_path, env={"DATABASE_URL": url, "DB_INIT_CONNECT_TIMEOUT": "2s",
                                              **CLOUD_RUN})
    assert run.code == ExitCode.UNAVAILABLE, run.stderr
    for e in run.events:
        check_entry(e, CLOUD_RUN_LABELS)
    assert run.has("db.connect.retry")
    assert run.summary["retryable"] is True and "unreachable" in run.summary["reason"]
    assert PASSWORD not in run.stdout + run.stderr


def test_sigterm_to_pid_1_rolls_back_releases_and_exits_7(image: Image, db: Db, tmp_path: Path) -> None:
    """What Kubernetes and Cloud Run send on shutdown, delivered to the job as PID 1."""
    name = f"db-init-test-{uuid.uuid4().hex[:10]}"
    tmp = scratch(tmp_path)
    cmd = podman_command(image, env={"DATABASE_URL": container_url(db), "DB_INIT_LOCK_TIMEOUT": "60s"},
                         name=name, tmp=tmp)
    with holding_prisma_lock(db):
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_job_session(db)
            sent = time.monotonic()
            subprocess.run(["podman", "kill", "--signal", "TERM", name], check=True, capture_output=True)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                subprocess.run(["podman", "kill", name], capture_output=True, check=False)
                proc.wait(30)
        stopped = time.monotonic() - sent
    run = parse(proc.returncode, out, err, time.monotonic() - started, tmp)
    assert run.code == ExitCode.INTERRUPTED, run.stderr
    assert stopped < 10, "within Cloud Run's 10 s between SIGTERM and SIGKILL"
    assert "interrupted by SIGTERM" in run.summary["reason"]
    assert job_sessions(db) == 0, "the lock went with the session"
