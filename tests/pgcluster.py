"""Throwaway PostgreSQL clusters for tests: real servers, no mocks.

Each PgCluster is its own initdb'd data directory in a temp dir. It listens on
127.0.0.1 (scram-sha-256, so passwords are really checked) and on a private unix
socket (trust, so tests get an admin connection without a password).
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

__all__ = [
    "PG_USER",
    "Db",
    "PgCluster",
    "PgClusterError",
    "StopMode",
    "find_postgres_bindirs",
]

PG_USER = "postgres"  # the superuser initdb creates
RUN_AS = "pgtest"  # unprivileged OS user for the server when we are root
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

StopMode = Literal["smart", "fast", "immediate"]
# pg_ctl's shutdown modes are just these signals to the postmaster.
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


class PgClusterError(RuntimeError):
    """initdb or the server failed; the message carries its output or log tail."""


class _Default(enum.Enum):
    PASSWORD = enum.auto()  # url(): "use the cluster's real password"


def _is_bindir(bindir: Path) -> bool:
    return all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres"))


def _major_of(bindir: Path) -> int:
    out = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    if m is None:
        raise PgClusterError(f"unexpected `postgres -V` output: {out!r}")
    return int(m.group(1))


def find_postgres_bindirs(*, honour_override: bool = True) -> dict[int, Path]:
    """Major version -> bin dir with initdb and postgres; TEST_PG_BINDIR overrides.

    Looks at the pgserver wheel and /usr/lib/postgresql/*; tests/matrix.py adds the registry copies
    of every supported major for the version matrix.
    """
    override = os.environ.get("TEST_PG_BINDIR") if honour_override else None
    if override:
        bindir = Path(override)
        if not _is_bindir(bindir):  # an explicit choice must fail loudly, not skip
            raise PgClusterError(f"TEST_PG_BINDIR={override} has no initdb/postgres")
        return {_major_of(bindir): bindir}
    candidates: list[Path] = []
    # find_spec, not import: importing pgserver warns about XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found: dict[int, Path] = {}
    for bindir in candidates:
        if _is_bindir(bindir):
            with contextlib.suppress(OSError, subprocess.CalledProcessError, PgClusterError):
                found.setdefault(_major_of(bindir), bindir)
    return found


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: ourselves (None), unless root, which postgres refuses."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(RUN_AS)
    res = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            RUN_AS,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent run may have won the race to create it
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PgClusterError(f"cannot create user {RUN_AS}: {res.stderr.strip()}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # Fields after the ")" closing comm: state, ppid, ...
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:  # a zombie has already let go of shared memory; pid 1 may never reap it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PgCluster:
    """A throwaway cluster: start() runs initdb on first use, cleanup() deletes it."""

    def __init__(self, bindir: Path, *, password: str = "pw-Secr3t!", port: int | None = None) -> None:
        self.bindir = Path(bindir).absolute()  # the server runs in another cwd
        self.password = password
        self._major = _major_of(self.bindir)
        self._user = _server_user()
        self._auto_port = port is None
        self._port = _free_port() if port is None else port
        self._proc: subprocess.Popen[bytes] | None = None
        self._version: int | None = None
        # Under root, TMPDIR may not be traversable by the server user; /tmp (1777) is.
        self.dir = Path(tempfile.mkdtemp(prefix="pgcluster-", dir="/tmp" if self._user else None))
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self._socket_dir = self.dir / "sock"
        self._socket_dir.mkdir()
        self._chown(self.dir, self._socket_dir)

    def __repr__(self) -> str:
        return f"PgCluster(major={self._major}, port={self._port}, dir={str(self.dir)!r})"

    @property
    def port(self) -> int:
        return self._port

    @property
    def major(self) -> int:
        return self._major

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def version(self) -> int:
        """server_version_num, e.g. 160002, as reported at the last start()."""
        if self._version is None:
            raise PgClusterError("cluster has never been started")
        return self._version

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        if not self.data_dir.exists():
            self._initdb()
        for attempt in range(3):
            try:
                self._spawn_and_wait()
                return
            except PgClusterError as e:
                # The port was only probed free, so someone may grab it before we bind;
                # pick another, but never once URLs for it may have been handed out.
                if not (
                    self._auto_port
                    and self._version is None
                    and attempt < 2
                    and "Address already in use" in str(e)
                ):
                    raise
                self._port = _free_port()

    def stop(self, mode: StopMode = "fast") -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(_STOP_SIGNALS[mode])
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise PgClusterError(f"{mode} shutdown took over {STOP_TIMEOUT}s; killed") from None
        self._proc = None

    def kill(self) -> None:
        """Simulate a crash: SIGKILL the postmaster and its children.

        The next start() runs crash recovery. The children die too because a new
        postmaster refuses to start while an old backend still holds shared memory.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # Freeze it so that it cannot fork while we list its children.
        os.kill(proc.pid, signal.SIGSTOP)
        children = _children_of(proc.pid)
        for pid in (proc.pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.01)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()  # __exit__ won't run, so don't leak the dir
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # --- connecting --------------------------------------------------------

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str = PG_USER,
        password: str | Literal[_Default.PASSWORD] | None = _Default.PASSWORD,
        host: str = "127.0.0.1",
        params: str = "",
    ) -> str:
        """postgresql:// URL; password defaults to the real one, None leaves it out."""
        if password is _Default.PASSWORD:
            password = self.password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        if host.startswith("/"):  # a socket dir: libpq wants it percent-encoded here
            host = quote(host, safe="")
        elif ":" in host:  # IPv6
            host = f"[{host}]"
        url = f"postgresql://{auth}@{host}:{self._port}/{quote(dbname, safe='')}"
        return f"{url}?{params.lstrip('?')}" if params else url

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[TupleRow]:
        """Autocommit superuser connection over the unix socket (trust: no password)."""
        return psycopg.connect(
            host=str(self._socket_dir),
            port=self._port,
            user=PG_USER,
            dbname=dbname,
            autocommit=True,
        )

    def create_database(self, name: str | None = None) -> str:
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if self._major >= 15:  # the default WAL_LOG copies block by block: 3-4x slower
            query += sql.SQL(" STRATEGY = FILE_COPY")
        with self.admin() as conn:
            conn.execute(query)
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            # DROP DATABASE fails while anyone is connected; kick leftover sessions.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    # --- internals ---------------------------------------------------------

    def _chown(self, *paths: Path) -> None:
        if self._user is not None:
            for p in paths:
                os.chown(p, self._user.pw_uid, self._user.pw_gid)

    def _popen_user(self) -> tuple[int | None, int | None, list[int] | None]:
        u = self._user
        return (None, None, None) if u is None else (u.pw_uid, u.pw_gid, [])

    def _initdb(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        uid, gid, groups = self._popen_user()
        try:
            res = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    PG_USER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",  # nothing here must survive an OS crash
                ],
                cwd=self.dir,  # initdb wants a cwd it can access, which /root isn't
                capture_output=True,
                text=True,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        finally:
            pwfile.unlink()
        if res.returncode != 0:
            raise PgClusterError(f"initdb failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self._socket_dir),
            # Surviving an OS crash is pointless for throwaway data, and costly.
            "fsync": "off",
            "full_page_writes": "off",
            # Left on: with fsync off it gains nothing, and off it makes kill() lose
            # transactions that had already committed, unlike a real crashed server.
            "synchronous_commit": "on",
            # initdb --auth-host=scram-sha-256 implies it, but say so: PostgreSQL 12 and 13 default
            # to md5, and the job must prove it logs in with SCRAM on every supported version.
            "password_encryption": "scram-sha-256",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write("\n# pgcluster.py\n")
            f.writelines(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())

    def _spawn_and_wait(self) -> None:
        uid, gid, groups = self._popen_user()
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self._proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self._port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                user=uid,
                group=gid,
                extra_groups=groups,
                start_new_session=True,  # keep terminal Ctrl-C away; teardown stops it
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                raise PgClusterError(f"postgres exited ({rc}) on start:\n{self._log_tail()}")
            try:
                with self.admin() as conn:
                    row = conn.execute("SHOW server_version_num").fetchone()
                    assert row is not None
                    self._version = int(row[0])
                return
            # No socket yet, or "the database system is starting up" (recovery).
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise PgClusterError(f"not ready after {START_TIMEOUT}s:\n{self._log_tail()}") from None
                time.sleep(0.02)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Db:
    """A database of its own for one test (the `db` fixture)."""

    name: str
    url: str  # TCP + password, as the job under test would get it
    cluster: PgCluster

    def connect(self) -> psycopg.Connection[TupleRow]:
        """Autocommit superuser connection into this database over the unix socket."""
        return self.cluster.admin(self.name)
