"""Fleet mode end to end: 44 databases on PostgreSQL 16 and 13, real task processes with Cloud Run's and
Kubernetes' variables, one task SIGKILLed mid-run and started again, SIGTERM, and `fleet status`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

import pytest
from jobtools import MIGRATIONS_DIR, job_env, parse_events
from matrix import bindir_for, prerequisite_missing
from pgcluster import PgCluster, find_postgres_bindirs
from psycopg import sql
from scenarios import STATES

from job import shard
from job.migrations import load_migrations

pytestmark = pytest.mark.slow
SHIPPED = [m.name for m in load_migrations(MIGRATIONS_DIR)]
HEALTHY = 42
TASKS = 3


@dataclass
class Fleet:
    path: Path
    targets: list[dict[str, str]]
    clusters: list[PgCluster]
    db_of: dict[str, tuple[PgCluster, str]] = field(default_factory=dict)  # name -> (cluster, database)

    @property
    def names(self) -> list[str]:
        return [t["name"] for t in self.targets]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """42 databases in every state of HISTORY.md, split over 16 and 13; one unreachable, one read-only."""
    other = bindir_for(13)
    if other is None:
        prerequisite_missing("PostgreSQL 13 binaries are missing")
    main = find_postgres_bindirs()
    with PgCluster(main[max(main)]) as a, PgCluster(other[0]) as b:
        assert a.major != b.major
        fleet = Fleet(tmp_path_factory.mktemp("fleet") / "targets.json", [], [a, b])
        states = cycle(sorted(STATES))
        for n in range(HEALTHY):
            cluster = (a, b)[n % 2]
            state = next(states)
            name = cluster.create_database(f"t{n:02d}_{state}")
            with cluster.admin(name) as conn:
                STATES[state](conn, "public", MIGRATIONS_DIR)
            target = {"name": f"shop-{n:02d}", "url": cluster.url(name)}
            if n % 7 == 0:
                target["group"] = "canary"
            fleet.targets.append(target)
            fleet.db_of[target["name"]] = (cluster, name)
        ro = b.create_database("t_read_only")
        with b.admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on")
                         .format(sql.Identifier(ro)))
        fleet.targets.append({"name": "read-only", "url_env": "READ_ONLY_URL"})
        fleet.targets.append({"name": "unreachable", "url": f"postgresql://app:pw-gone-4242@127.0.0.1:{free_port()}/x"})
        fleet.path.write_text(json.dumps({"targets": fleet.targets}))
        fleet.db_of["read-only"] = (b, ro)
        yield fleet
        for cluster in (a, b):  # throwaway data: no shutdown checkpoint of 44 databases
            cluster.kill()


def env(fleet: Fleet, **extra: str) -> dict[str, str]:
    ro_cluster, ro = fleet.db_of["read-only"]
    return job_env(None, **{"DB_INIT_FLEET_TARGETS": str(fleet.path), "READ_ONLY_URL": ro_cluster.url(ro),
                            "DB_INIT_CONNECT_TIMEOUT": "2s", "DB_INIT_FLEET_CONCURRENCY": "3"} | extra)


class Task:
    """One task process; its stderr read as it comes, so a test can act on a line."""

    def __init__(self, fleet: Fleet, *args: str, **extra: str) -> None:
        self.proc = subprocess.Popen([*JOB, "fleet", *(args or ("run",))], cwd=ROOT, env=env(fleet, **extra),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, event: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(f'"event": "{event}"' in ln for ln in list(self.lines)) < count:
            assert self.proc.poll() is None, f"exited before {count} {event}"
            assert time.monotonic() < deadline, f"no {count} {event} in {timeout}s"
            time.sleep(0.02)

    def finish(self, timeout: float = 120) -> tuple[int, list[dict[str, Any]], str]:
        assert self.proc.stdout is not None  # stderr is the reader thread's alone
        out = self.proc.stdout.read()
        self.proc.wait(timeout)
        self.reader.join(10)
        return self.proc.returncode, parse_events("".join(self.lines)), out


ROOT = Path(__file__).resolve().parent.parent
JOB = [__import__("sys").executable, "-m", "job"]


def finished(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["target_name"]: e for e in events if e["event"] == "target.finished"}


def ledger_counts(fleet: Fleet, name: str) -> dict[str, int]:
    cluster, db = fleet.db_of[name]
    with cluster.admin(db) as conn:
        rows = conn.execute("SELECT migration_name, count(*) FROM _prisma_migrations WHERE finished_at IS NOT"
                            " NULL AND rolled_back_at IS NULL GROUP BY 1").fetchall()
    return {m: c for m, c in rows if m in SHIPPED}


def task_of(fleet: Fleet, name: str) -> int:
    return shard.task_of(name, TASKS)


def test_a_fleet_converges_once_through_a_killed_task_and_a_second_execution_is_a_no_op(fleet: Fleet) -> None:
    # Execution 1, as Cloud Run starts it: three tasks at once; task 1 is SIGKILLed after its first target.
    cloud_run = {"CLOUD_RUN_TASK_COUNT": str(TASKS), "CLOUD_RUN_EXECUTION": "db-init-x1"}
    tasks = [Task(fleet, CLOUD_RUN_TASK_INDEX=str(i), CLOUD_RUN_TASK_ATTEMPT="0", **cloud_run)
             for i in range(TASKS)]
    tasks[1].wait_for("target.finished")
    tasks[1].proc.send_signal(signal.SIGKILL)
    killed = finished(tasks[1].finish()[1])
    assert 1 <= len(killed) < len([n for n in fleet.names if task_of(fleet, n) == 1]), "killed mid-run"
    retry = Task(fleet, CLOUD_RUN_TASK_INDEX="1", CLOUD_RUN_TASK_ATTEMPT="1", **cloud_run)  # the task's retry
    runs = [tasks[0].finish(), retry.finish(), tasks[2].finish()]

    seen: dict[str, dict[str, Any]] = {}
    for index, (code, events, _) in enumerate(runs):
        assert not [e for e in events if e["event"] in ("<not json>", "run.crashed", "target.crashed")]
        mine = [n for n in fleet.names if task_of(fleet, n) == index]
        lines = finished(events)
        assert sorted(lines) == sorted(mine), "each task runs exactly its share, every target of it"
        seen |= lines
        summary = next(e for e in events if e["event"] == "fleet.finished")
        assert summary["task_index"] == index and summary["targets"] == len(mine)
        broken = {n: lines[n]["outcome"] for n in ("read-only", "unreachable") if n in mine}
        assert summary["not_ok"] == {o: [n] for n, o in broken.items()}, "reported by name and class"
        assert code == {(): 0, ("database_unavailable",): 3, ("needs_human",): 5}.get(
            tuple(sorted(broken.values())), 3), (code, broken)
        for e in events:  # every line of a target's own run carries its name
            if e["event"] in ("db.connected", "plan.ready", "step.applied", "lock.acquired"):
                assert e.get("target_name") in mine, e
    assert sorted(seen) == sorted(fleet.names), "nothing lost"
    assert seen["unreachable"]["outcome"] == "database_unavailable" and seen["unreachable"]["exit_code"] == 3
    assert seen["read-only"]["outcome"] == "needs_human" and seen["read-only"]["exit_code"] == 5
    assert "pw-gone-4242" not in "".join(ln for t in (*tasks, retry) for ln in t.lines)

    # Every healthy database converged exactly once, whoever applied it.
    for name in fleet.names[:HEALTHY]:
        counts = ledger_counts(fleet, name)
        assert counts == dict.fromkeys(SHIPPED, 1), (name, counts)

    # Execution 2, as an Indexed Job runs it: nothing left to apply anywhere.
    again = [Task(fleet, JOB_COMPLETION_INDEX=str(i), DB_INIT_FLEET_TASK_COUNT=str(TASKS))
             for i in range(TASKS)]
    second: dict[str, dict[str, Any]] = {}
    for code, events, _ in (t.finish() for t in again):
        second |= finished(events)
        assert code in (0, 3, 5)
    assert sorted(second) == sorted(fleet.names), "the same assignment, every target once"
    assert all(second[n]["outcome"] == "ok" and second[n]["migrations_applied"] == []
               for n in fleet.names[:HEALTHY])
    for name in fleet.names[:HEALTHY:5]:
        assert ledger_counts(fleet, name) == dict.fromkeys(SHIPPED, 1)

    # Status: the healthy ones converged, the broken ones named with their class; the canary group alone is 0.
    code, events, out = Task(fleet, "status", "--json").finish()
    report = {t["name"]: t for t in json.loads(out)["targets"]}
    assert sorted(report) == sorted(fleet.names)
    assert all(report[n]["status"] == "ok" and report[n]["pending"] == [] and report[n]["drift"] == []
               and report[n]["last_applied"] == SHIPPED[-1] for n in fleet.names[:HEALTHY]), report
    assert report["unreachable"]["status"] == "database_unavailable"
    assert code == 3 and next(e for e in events if e["event"] == "fleet.status")["converged"] is False
    code, _, out = Task(fleet, "status", "--group", "canary").finish()
    assert code == 0, out
    rows = out.splitlines()
    assert rows[0].split() == ["TARGET", "GROUP", "STATUS", "PENDING", "FAILED", "ROWS", "DRIFT", "LAST",
                               "APPLIED"]
    assert len(rows) == 1 + len([t for t in fleet.targets if t.get("group") == "canary"])


def test_sigterm_stops_the_fleet_no_new_target_the_running_one_rolled_back(fleet: Fleet,
                                                                           tmp_path: Path) -> None:
    """The running target waits for Prisma's lock, held by someone else; SIGTERM: exit 7 at once."""
    cluster = fleet.clusters[0]
    names = [cluster.create_database() for _ in range(3)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": f"db{n}", "url": cluster.url(d)} for n, d in enumerate(names)]))
    with cluster.admin(names[0]) as holder:
        holder.execute("SELECT pg_advisory_lock(72707369)")
        task = Task(fleet, DB_INIT_FLEET_TARGETS=str(path), DB_INIT_FLEET_CONCURRENCY="1",
                    DB_INIT_LOCK_TIMEOUT="60s")
        task.wait_for("lock.waiting")
        sent = time.monotonic()
        task.proc.send_signal(signal.SIGTERM)
        code, events, _ = task.finish(timeout=30)
        took = time.monotonic() - sent
    assert code == 7 and took < 10, (code, took)
    lines = finished(events)
    assert lines["db0"]["outcome"] == "interrupted" and lines["db0"].get("started") is not False
    assert all(lines[n]["outcome"] == "interrupted" and lines[n]["started"] is False for n in ("db1", "db2"))
    summary = next(e for e in events if e["event"] == "fleet.finished")
    assert summary["exit_code"] == 7 and summary["outcomes"] == {"interrupted": 3}
    with cluster.admin(names[0]) as conn:  # rolled back: nothing of the run left, its session gone
        assert conn.execute("SELECT to_regclass('_prisma_migrations')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'db-init-job'"
                            ).fetchone() == (0,)
