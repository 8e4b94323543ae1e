"""The Deployment's pod, run: `podman kube play` of `kubectl kustomize k8s/`, against real PostgreSQL.

The init container is the real job image (built once per session from the Dockerfile, containerimage.py)
with the rendered Deployment's own args, env (the URL from a Secret, POD_NAME from the downward API),
securityContext and /tmp emptyDir. The app container is a stand-in from the same image: it reads the
schema the job left and prints one line. The proof comes from podman's own records (`podman inspect`:
State.StartedAt, FinishedAt, ExitCode; `podman pod inspect`) and the job's log lines (`podman logs`):

- the app container starts only after the init container exited 0, and finds the migrated schema;
- after a needs-a-human exit (5, a read-only database) the app container is never started, not even
  when the pod is started again (the kubelet's retry in Init:CrashLoopBackOff).

What podman 4.3.1 (Debian bookworm) cannot take from the rendered Deployment, the test's copy changes,
each listed in `for_podman` with its reason; the first test below checks that the init container
differs from the rendered one in nothing else.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from containerimage import Image, build_image, missing_tools, rlimits, skip_or_fail
from jobtools import parse_events
from pgcluster import Db
from test_logs import PASSWORD, check_entry

from job.errors import ExitCode

K8S = Path(__file__).resolve().parent.parent / "k8s"
NAMESPACE = "default"  # where `kubectl apply -k k8s/` puts the Deployment without --namespace
NEVER = "0001-01-01T00:00:00Z"  # podman's StartedAt of a container that never started

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# The app's stand-in: it needs the schema the job brings up (Shopify's session storage reads "Session").
APP_STANDIN = """\
import json, os, signal, sys, time
import psycopg
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
    session = conn.execute("SELECT to_regclass('public.\\"Session\\"') IS NOT NULL").fetchone()[0]
    applied = conn.execute("SELECT count(*) FROM public._prisma_migrations"
                           " WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL").fetchone()[0]
print(json.dumps({"event": "app.started", "session_table": session, "migrations": applied,
                  "time": time.time()}), flush=True)
signal.pause()
"""


def catatonit_missing() -> bool:
    """podman builds its pod infra ("pause") image from catatonit; no registry can provide one."""
    dirs = ("/usr/libexec/podman", "/usr/lib/podman", "/usr/local/libexec/podman")
    return shutil.which("catatonit") is None and not any(Path(d, "catatonit").exists() for d in dirs)


@pytest.fixture(scope="module")
def image() -> Image:
    reason = missing_tools()
    if reason is None and shutil.which("kubectl") is None:
        reason = "kubectl is not installed (`kubectl kustomize k8s/` renders the Deployment)"
    if reason is None and catatonit_missing():
        reason = "catatonit is not installed (apt-get install catatonit: podman's pod infra container)"
    if reason:
        skip_or_fail(reason, "run the Deployment's pod")
    return build_image()  # once per session, shared with test_container.py


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    if shutil.which("kubectl") is None:
        skip_or_fail("kubectl is not installed (`kubectl kustomize k8s/` renders the Deployment)",
                     "run the Deployment's pod")
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    return next(d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "Deployment")


def for_podman(deployment: dict[str, Any], image: Image, suffix: str, secret: str) -> dict[str, Any]:
    """The rendered Deployment as podman 4.3.1 can play it here; every change, with its reason."""
    d = copy.deepcopy(deployment)
    # Names in podman are global to the host (pods, secrets, volumes): a suffix keeps runs apart.
    d["metadata"]["name"] = f"{d['metadata']['name']}-{suffix}"
    # Keep the init container after it ran (podman's default type "once" removes it, and its record).
    d["metadata"]["annotations"] = {"io.podman.annotations.init.container.type": "always"}
    d["spec"]["replicas"] = 1
    spec = d["spec"]["template"]["spec"]
    # Reach the PostgreSQL on 127.0.0.1: all traffic stays on this machine.
    spec["hostNetwork"] = True
    # podman 4.3 gives the pod's restartPolicy to init containers too: with Always it restarts the job
    # after its exit 0 in a loop and the pod never comes up. The kubelet never restarts a finished init
    # container; a failed one it retries (the test does so by hand, `podman pod start`).
    spec["restartPolicy"] = "Never"
    names = {v["name"]: f"{v['name']}-{suffix}" for v in spec["volumes"]}
    for v in spec["volumes"]:
        v["name"] = names[v["name"]]  # an emptyDir becomes a podman volume of that name
    for c in [*spec["initContainers"], *spec["containers"]]:
        c["image"] = image.id  # this session's build, by ID: no registry, and no other session's tag
        for m in c.get("volumeMounts", []):
            m["name"] = names[m["name"]]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                ref["name"] = secret
    init = spec["initContainers"][0]
    for e in init["env"]:
        if e["name"] == "POD_NAMESPACE":  # 4.3: "fieldPath metadata.namespace is ... not supported"
            del e["valueFrom"]
            e["value"] = NAMESPACE
    init["env"].append({"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"})  # the kubelet sets it
    app = spec["containers"][0]
    app["command"] = ["/opt/venv/bin/python", "-c", APP_STANDIN]
    # The stand-in serves nothing; podman 4.3 would publish containerPort on the host, which host
    # networking refuses ("PortMappings can only be used with Bridge or slirp4netns networking").
    del app["ports"], app["readinessProbe"]
    return d


def podman_secret(values: dict[str, str]) -> bytes:
    """A secret as podman 4.3 reads it for secretKeyRef: JSON of key -> base64 (not a Secret object)."""
    return json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in values.items()}).encode()


def timestamp(value: str) -> datetime:
    """podman's RFC 3339 with nanoseconds, to a datetime (microseconds)."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    assert m, value
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{m.group(3).replace('Z', '+00:00')}")


def podman(*args: str, conf: Path, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False,
                         env={**os.environ, "CONTAINERS_CONF": str(conf)})
    if check:
        assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
    return res


def containers_conf(tmp_path: Path) -> Path:
    """kube play has no --runtime/--ulimit: the same host needs (container-build.md) as configuration."""
    nofile, nproc = rlimits()
    runtime = '[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                    + runtime)
    return conf


@dataclass
class Pod:
    name: str
    conf: Path
    play: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def init_name(self) -> str:
        return f"{self.name}-db-init"

    @property
    def app_name(self) -> str:
        return f"{self.name}-app"

    def inspect(self, container: str) -> dict[str, Any]:
        out = podman("inspect", "--type", "container", container, conf=self.conf).stdout
        return dict(json.loads(out)[0])

    def state(self, container: str) -> dict[str, Any]:
        return dict(self.inspect(container)["State"])

    def pod_inspect(self) -> dict[str, Any]:
        return dict(json.loads(podman("pod", "inspect", self.name, conf=self.conf).stdout))

    def logs(self, container: str) -> subprocess.CompletedProcess[str]:
        return podman("logs", container, conf=self.conf)

    def job_events(self) -> list[dict[str, Any]]:
        return parse_events(self.logs(self.init_name).stderr)

    def app_line(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.logs(self.app_name).stdout.splitlines():
                if '"app.started"' in line:
                    return dict(json.loads(line))
            exited = self.state(self.app_name)["Status"] == "exited"
            assert not exited and time.monotonic() < deadline, f"no app line: {self.logs(self.app_name)}"
            time.sleep(0.2)


@contextmanager
def played(deployment: dict[str, Any], image: Image, url: str, tmp_path: Path) -> Iterator[Pod]:
    """`podman kube play` of the test's copy; the pod, its containers, volumes and secret removed after."""
    suffix = uuid.uuid4().hex[:8]
    conf = containers_conf(tmp_path)
    secret = f"shop-db-{suffix}"
    manifest = for_podman(deployment, image, suffix, secret)
    kube = tmp_path / "deployment.yaml"
    kube.write_text(yaml.safe_dump(manifest))
    pod = f"{manifest['metadata']['name']}-pod-0"
    volumes = [v["name"] for v in manifest["spec"]["template"]["spec"]["volumes"]]
    secret_file = tmp_path / "secret.json"
    secret_file.write_bytes(podman_secret({"DATABASE_URL": url}))
    podman("secret", "create", secret, str(secret_file), conf=conf)
    secret_file.unlink()
    try:
        started = time.monotonic()
        play = podman("kube", "play", str(kube), conf=conf, check=False, timeout=300)
        yield Pod(pod, conf, play, time.monotonic() - started)
    finally:
        podman("pod", "rm", "--force", "--time", "0", pod, conf=conf, check=False)
        podman("volume", "rm", "--force", *volumes, conf=conf, check=False)
        podman("secret", "rm", secret, conf=conf, check=False)
        left = podman("ps", "--all", "--quiet", "--filter", f"name={suffix}", conf=conf).stdout
        assert left.strip() == "", "no container of the test left behind"
        assert podman("pod", "exists", pod, conf=conf, check=False).returncode == 1


def restricted(init: dict[str, Any]) -> None:
    """The init container as the manifest says: uid 10001, read-only root, /tmp mounted, no capability."""
    assert init["Config"]["User"] == "10001:10001"
    assert init["HostConfig"]["ReadonlyRootfs"] is True
    assert not init["EffectiveCaps"] and not init["HostConfig"]["CapAdd"]
    assert "no-new-privileges" in init["HostConfig"]["SecurityOpt"]
    assert [m["Destination"] for m in init["Mounts"]] == ["/tmp"]
    assert init["HostConfig"]["NetworkMode"] == "host"


# --- the copy podman plays ------------------------------------------------------------------------

def test_the_copy_changes_the_init_container_only_where_podman_needs(rendered: dict[str, Any]) -> None:
    fake = Image("localhost/x:y", "0" * 64, "base", 0.0, 0.0)
    copy_ = for_podman(rendered, fake, "s", "shop-db-s")
    before = rendered["spec"]["template"]["spec"]["initContainers"]
    after = copy_["spec"]["template"]["spec"]["initContainers"]
    assert len(before) == len(after) == 1
    before_env = {e["name"]: e for e in before[0]["env"]}
    after_env = {e["name"]: e for e in after[0]["env"]}
    assert after_env.pop("POD_NAMESPACE") == {"name": "POD_NAMESPACE", "value": NAMESPACE}
    assert after_env.pop("KUBERNETES_SERVICE_HOST")["value"]
    url_ref = after_env.pop("DATABASE_URL")["valueFrom"]["secretKeyRef"]
    assert url_ref == {"name": "shop-db-s", "key": "DATABASE_URL"}
    before_env.pop("POD_NAMESPACE"), before_env.pop("DATABASE_URL")
    after_env["DIRECT_URL"]["valueFrom"]["secretKeyRef"]["name"] = "shop-db"
    assert after_env == before_env, "POD_NAME (downward API), DB_INIT_LOG_FORMAT, DIRECT_URL as rendered"
    same = {k: v for k, v in after[0].items() if k not in ("image", "env", "volumeMounts")}
    assert same == {k: v for k, v in before[0].items() if k not in ("image", "env", "volumeMounts")}
    assert before[0]["securityContext"]["runAsUser"] == 10001 and before[0]["args"] == ["run"]
    assert [m["mountPath"] for m in after[0]["volumeMounts"]] == ["/tmp"]
    assert copy_["spec"]["template"]["spec"]["securityContext"] == rendered["spec"]["template"]["spec"][
        "securityContext"]


# --- the pod -----------------------------------------------------------------------------------------

def test_app_starts_only_after_the_job_exited_0(image: Image, rendered: dict[str, Any], db: Db,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with played(rendered, image, db.url, tmp_path) as pod:
        assert pod.play.returncode == 0, pod.play.stderr
        app_line = pod.app_line()
        init, app = pod.inspect(pod.init_name), pod.state(pod.app_name)
        restricted(init)
        job = init["State"]
        assert job["Status"] == "exited" and job["ExitCode"] == ExitCode.OK
        assert app["Status"] == "running" and app["StartedAt"] != NEVER
        job_started, job_finished = timestamp(job["StartedAt"]), timestamp(job["FinishedAt"])
        app_started = timestamp(app["StartedAt"])
        assert job_started < job_finished <= app_started, (job, app)

        events = pod.job_events()
        for e in events:
            check_entry(e, {"app": "db-init-job", "pod": pod.name, "namespace": NAMESPACE})
        summary = next(e for e in events if e["event"] == "run.finished")
        assert summary["outcome"] == "ok" and summary["changed"] is True
        assert len(summary["migrations_applied"]) >= 2
        assert [e["event"] for e in events].count("run.started") == 1, "the init container ran once"
        finished_logged = datetime.fromisoformat(summary["time"])
        assert finished_logged <= app_started, "the job's last line was written before the app started"
        assert app_line["session_table"] is True and app_line["migrations"] >= 2, app_line
        assert app_line["time"] >= finished_logged.timestamp()

        states = {c["Name"]: c["State"] for c in pod.pod_inspect()["Containers"]}
        assert states[pod.init_name] == "exited" and states[pod.app_name] == "running"
        assert PASSWORD not in pod.logs(pod.init_name).stderr
        gap = (app_started - job_finished).total_seconds()
    with capsys.disabled():
        print(f"\n[pod] kube play of the Deployment: {pod.seconds:.1f} s to a running app; job "
              f"{(job_finished - job_started).total_seconds():.2f} s in its container, app started "
              f"{gap:.2f} s after the job's exit 0")


def test_app_never_starts_after_a_needs_a_human_exit(image: Image, rendered: dict[str, Any], db: Db,
                                                     tmp_path: Path) -> None:
    with db.connect() as conn:  # a database the job may not write to: it refuses with exit 5
        conn.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    with played(rendered, image, db.url, tmp_path) as pod:
        assert pod.play.returncode != 0
        assert "exited with code 5" in pod.play.stderr, pod.play.stderr
        first = pod.state(pod.init_name)
        assert first["Status"] == "exited" and first["ExitCode"] == ExitCode.NEEDS_HUMAN
        app = pod.state(pod.app_name)
        assert app["Status"] == "created" and app["StartedAt"] == NEVER, app

        # The kubelet retries a failed init container (Init:CrashLoopBackOff); so does `podman pod start`.
        again = podman("pod", "start", pod.name, conf=pod.conf, check=False)
        assert again.returncode != 0 and "exited with code 5" in again.stderr, again.stderr
        second = pod.state(pod.init_name)
        assert second["ExitCode"] == ExitCode.NEEDS_HUMAN
        assert timestamp(second["StartedAt"]) > timestamp(first["FinishedAt"]), "it ran again"

        app = pod.state(pod.app_name)
        assert app["Status"] == "created" and app["StartedAt"] == NEVER, "never started, not even once"
        logs = pod.logs(pod.app_name)
        assert logs.stdout == logs.stderr == ""
        states = {c["Name"]: c["State"] for c in pod.pod_inspect()["Containers"]}
        assert states[pod.app_name] == "created"

        finished = [e for e in pod.job_events() if e["event"] == "run.finished"]
        assert [e["exit_code"] for e in finished] == [ExitCode.NEEDS_HUMAN] * 2
        assert all(e["outcome"] == "needs_human" and e["retryable"] is False for e in finished)
        assert "read-only" in finished[0]["reason"]
    with db.connect() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,), "nothing was applied"
