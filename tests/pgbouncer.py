"""A real PgBouncer in front of a PgCluster, for the pooler tests.

Clients authenticate to PgBouncer with scram-sha-256 (the same password as the
server); PgBouncer reaches the server over its trusted Unix socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

import psycopg
from pgcluster import PG_USER, PgCluster, _server_user

PoolMode = Literal["session", "transaction"]


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    def __init__(self, cluster: PgCluster, mode: PoolMode, *, pool_size: int = 4,
                 wildcard: bool = True) -> None:
        """``wildcard``: any database name goes through to the server; else only ``postgres`` is known."""
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed")
        self.binary, self.cluster, self.mode = binary, cluster, mode
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir="/tmp"))
        self.dir.chmod(0o755)
        (self.dir / "userlist.txt").write_text(f'"{PG_USER}" "{cluster.password}"\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
{"*" if wildcard else "postgres"} = host={cluster.socket_dir} port={cluster.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.dir}/userlist.txt
pool_mode = {mode}
default_pool_size = {pool_size}
max_client_conn = 300
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
""")
        user = _server_user()
        if user:
            for path in [self.dir, *self.dir.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
        self._user = user
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        kw = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        self._proc = subprocess.Popen([self.binary, str(self.dir / "pgbouncer.ini")],  # type: ignore[call-overload]
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._proc.poll() is not None:
                    break
                time.sleep(0.05)
        log = (self.dir / "pgbouncer.log").read_text() if (self.dir / "pgbouncer.log").exists() else ""
        raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}")

    def url(self, dbname: str = "postgres", params: str = "") -> str:
        return (f"postgresql://{PG_USER}:{quote(self.cluster.password, safe='')}@127.0.0.1:{self.port}"
                f"/{dbname}{params}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # PgBouncer: SIGINT is a safe shutdown
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
