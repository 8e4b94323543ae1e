"""The one seam to PostgreSQL: the only module that holds a connection or a cursor.

A handful of operations, as narrow as a migration runner's driver should be:
open, inspect, try_lock / try_xact_lock / lock_holders / unlock, transaction +
execute, close.  Everything it returns is plain data from ``job.state`` and
``job.schemamodel``; every psycopg error leaves it as a ``DatabaseFault``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from job import statements as q
from job import units as units_mod
from job.redact import redact
from job.schemamodel import Catalog, Check, Column, ForeignKey, Index, Table
from job.state import DatabaseState, LedgerRow, TableSize
from job.units import Unit, plan_units

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_INSPECT_TRIES = 5
_IDLE = psycopg.pq.TransactionStatus.IDLE
_INTRANS = psycopg.pq.TransactionStatus.INTRANS
REPLAY_PREFIX = "db_init_replay_"  # + random hex: scratch schemas nobody can name in advance
_SCRATCH_TRIES = 3  # names tried before giving up (a clash of 64 random bits means someone reads ours)
# What the comment of a scratch schema of ours says: which backend made it (q.SCRATCH_COMMENT).
_SCRATCH_COMMENT = re.compile(r"db-init replay scratch: backend (\d+) started (\S+)\Z")


# Connection failures that no amount of waiting heals: fail at once.
_FATAL_CONNECT = (
    "password authentication failed", "no password supplied", "authentication failed",
    "does not exist", "no pg_hba.conf entry", "invalid connection option", "invalid uri",
    "invalid integer value", "invalid port", "invalid sslmode", "certificate verify failed",
    "server does not support ssl", "received invalid response to ssl negotiation",
    "expected authentication request", "unsupported frontend protocol", "permission denied",
    "invalid value for parameter", "insufficient data in", "server requested",
    "no such database",  # PgBouncer's own refusal: no entry of that name in its [databases]
)
INVALID_CATALOG_NAME = "3D000"  # the database named at connection does not exist
_DUPLICATE_DATABASE = "42P04"
_UNIQUE_VIOLATION = "23505"  # two CREATE DATABASE of one name at once: pg_database's unique index decides
_OBJECT_IN_USE = "55006"  # CREATE DATABASE: another session is connected to the template; it goes away
# SQLSTATEs after which a statement may simply be tried again a little later.
_TRANSIENT = {
    "55P03",  # lock_not_available: our lock_timeout fired; the app kept its locks
    "40P01",  # deadlock_detected
    "40001",  # serialization_failure
}


_SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}  # admin_shutdown, crash_shutdown, cannot_connect_now
# active_sql_transaction: "... cannot run inside a transaction block"
_NO_TRANSACTION_BLOCK = "25001"
_REFUSED_IN_A_BLOCK = {_NO_TRANSACTION_BLOCK, "2D000"}  # ... or a COMMIT in a procedure or DO block
_UNSAFE_NEW_ENUM_VALUE = "55P04"  # a value added by ALTER TYPE ... ADD VALUE used before its commit


class DatabaseFault(Exception):
    """A failed database call as plain data; the message never holds a password."""

    def __init__(self, message: str, *, sqlstate: str | None = None, retryable: bool = False,
                 connection_lost: bool = False, statement: int | None = None,
                 position: int | None = None, database: str | None = None,
                 server: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.retryable = retryable
        self.connection_lost = connection_lost
        self.statement = statement
        self.position = position  # 1-based character of the statement text where the error is
        self.database = database  # a refused connection: the database it asked for
        self.server = server  # ... and the server's host:port


def _one_line(exc: BaseException) -> str:
    text = str(exc).removeprefix("connection failed: ")
    lines = [ln.strip(" \t-") for ln in text.splitlines() if ln.strip()]
    return redact("; ".join(lines)) or type(exc).__name__


def _reraise_interrupt(exc: BaseException) -> None:
    """A signal that lands inside psycopg (e.g. while leaving pipeline mode) can come back as a psycopg
    error with the interrupt as its context: the interrupt is what happened, so it wins."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            raise seen
        seen = seen.__context__


def _connect_fault(exc: psycopg.Error) -> DatabaseFault:
    _reraise_interrupt(exc)
    message = _one_line(exc)
    if isinstance(exc, psycopg.ProgrammingError):  # libpq rejected the conninfo itself
        return DatabaseFault(message, retryable=False)
    fatal = any(p in message.lower() for p in _FATAL_CONNECT)
    pgconn = exc.pgconn
    database = pgconn.db.decode(errors="replace") if pgconn and pgconn.db else None
    server = f"{pgconn.host.decode(errors='replace')}:{(pgconn.port or b'').decode()}" \
        if pgconn and pgconn.host else None
    sqlstate = exc.sqlstate
    # libpq keeps no SQLSTATE for a connection the server refused, only the server's message: the one
    # PostgreSQL (and PgBouncer, relaying it) sends with 3D000, naming the very database asked for.
    if sqlstate is None and database and f'database "{database}" does not exist' in str(exc):
        sqlstate = INVALID_CATALOG_NAME
    return DatabaseFault(message, sqlstate=sqlstate, retryable=not fatal, database=database, server=server)


def _statement_fault(exc: psycopg.Error, index: int | None) -> DatabaseFault:
    _reraise_interrupt(exc)
    diag = exc.diag
    message = redact(diag.message_primary or "") or _one_line(exc)
    # No SQLSTATE (the socket closed), a connection exception (08...), or the server going down.
    state = exc.sqlstate or ""
    lost = (isinstance(exc, psycopg.OperationalError) and not state) or state.startswith("08") \
        or state in _SERVER_GOING_AWAY
    position = int(diag.statement_position) if diag.statement_position else None
    return DatabaseFault(message, sqlstate=exc.sqlstate, statement=index, connection_lost=lost,
                         retryable=lost or exc.sqlstate in _TRANSIENT, position=position)


def _index_tail(definition: str, table: str) -> str:
    """pg_get_indexdef() from the access method on: the part that names neither index nor schema
    (the table comes qualified by whatever its schema is called, pg_temp_3 included)."""
    for marker in (f".{table} USING ", f" {table} USING "):
        at = definition.find(marker)
        if at >= 0:
            return definition[at + len(marker):]
    return definition


def _catalog_from_rows(columns: list[Any], indexes: list[Any], constraints: list[Any], enums: list[Any],
                       views: list[Any], sequences: list[Any]
                       ) -> tuple[Catalog, frozenset[str], frozenset[str]]:
    """The catalog rows of one schema as plain data, the names of constraints not validated yet, and
    those of them whose validation a run tried and rows refused (q.MARK)."""
    by_table: dict[str, list[Column]] = {}
    for table, name, type_, nullable, default, identity, generated in columns:
        by_table.setdefault(table, []).append(Column(name, type_, nullable, default, identity, generated))
    idx: dict[str, list[Index]] = {}
    for table, name, unique, primary, cols, definition, qualified, constraint, valid in indexes:
        idx.setdefault(table, []).append(Index(name, tuple(cols), unique, primary,
                                               _index_tail(definition, qualified), constraint, valid))
    keys: dict[str, list[ForeignKey]] = {}
    checks: dict[str, list[Check]] = {}
    unvalidated, refused = set(), set()
    for table, name, kind, rendered, valid, ref, cols, ref_cols, on_del, on_upd, marked in constraints:
        definition = rendered.removesuffix(" NOT VALID")
        if kind == "f":
            actions = _FK_ACTIONS[on_del], _FK_ACTIONS[on_upd]
            keys.setdefault(table, []).append(ForeignKey(name, tuple(cols), ref, tuple(ref_cols), *actions,
                                                         definition))
        else:
            checks.setdefault(table, []).append(Check(name, definition))
        if not valid:
            unvalidated.add(name)
            if marked:
                refused.add(name)
    tables = {t: Table(t, tuple(cols), tuple(idx.get(t, ())), tuple(keys.get(t, ())),
                       tuple(checks.get(t, ()))) for t, cols in by_table.items()}
    catalog = Catalog(tables, {name: tuple(labels) for name, labels in enums}, dict(views),
                      frozenset(r[0] for r in sequences))
    return catalog, frozenset(unvalidated), frozenset(refused)


@dataclass(frozen=True)
class ReplayFault(Exception):
    """A migration that PostgreSQL refused while the contract was being replayed."""

    migration: str
    fault: DatabaseFault
    line: int | None  # line of the file where PostgreSQL placed the error


@dataclass(frozen=True)
class Replay:
    catalogs: dict[int, Catalog]  # after how many scripts -> what they had built
    # Files whose statements PostgreSQL runs only outside a transaction block and that replay
    # therefore left out (VACUUM, a file of nothing but CONCURRENTLY builds it could not rebuild).
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    client: str
    connected_since: datetime
    state: str | None


class Database:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @classmethod
    def open(cls, conninfo: dict[str, str]) -> Database:
        """Connect once (the caller retries); autocommit, no server-side prepared statements."""
        try:
            conn = psycopg.connect(make_conninfo(**conninfo), autocommit=True, prepare_threshold=None)
        except psycopg.Error as exc:
            raise _connect_fault(exc) from None
        # Every transaction psycopg opens for us says READ COMMITTED, whatever the database's default
        # (q.BEGIN says it for those we open by hand): under REPEATABLE READ the snapshot would be taken
        # by a transaction's first statement, before a lock it then waits for, and a re-check under that
        # lock could not see a row committed while it waited.
        conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        return cls(conn)

    @property
    def server_version(self) -> int:
        return self._conn.info.server_version

    @property
    def user(self) -> str:
        return self._conn.info.user

    @property
    def server(self) -> str:
        """host:port of the server this connection reached (a socket directory for a Unix socket)."""
        return f"{self._conn.info.host}:{self._conn.info.port}"

    def may_create_database(self) -> bool:
        """Whether this role may run CREATE DATABASE (superuser or CREATEDB), as the catalog says."""
        return bool(self._rows(q.MAY_CREATE_DATABASE)[0][0])

    def create_database(self, name: str) -> bool:
        """CREATE DATABASE, from this (maintenance) connection, in autocommit. False when it exists
        already: another session made it first (42P04, or 23505 when both inserted at once)."""
        try:
            self._conn.execute(q.create_database(name))
        except psycopg.Error as exc:
            fault = _statement_fault(exc, None)
            if fault.sqlstate in (_DUPLICATE_DATABASE, _UNIQUE_VIOLATION):
                return False
            if fault.sqlstate == _OBJECT_IN_USE:  # the template is busy for a moment: try again
                fault.retryable = True
            raise fault from None
        return True

    def _rows(self, query: q.Statement, params: dict[str, Any] | None = None) -> list[Any]:
        try:
            cur = self._conn.execute(query, params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise _statement_fault(exc, None) from None

    def configure_session(self, schema: str) -> None:
        """Dead-client detection, and the target schema first on the session's search_path, as Prisma
        sets it: a migration that commits by itself runs the rest of its file there too."""
        self._rows(q.session_settings(self.server_version))
        self._rows(q.session_search_path(schema))

    def inspect(self, schema: str, counted: Sequence[str] = ()) -> DatabaseState:
        """Everything the planner needs, in two round trips (each one pipelined).

        ``counted``: tables whose rows the planner weighs when they exist (with the
        ids two of them share, when both exist).  Outside the lock another runner may
        rename or drop a table between the two rounds (42P01 in the second): then the
        catalog is simply read again.
        """
        for _ in range(_INSPECT_TRIES - 1):
            try:
                return self._inspect(schema, counted)
            except DatabaseFault as fault:
                if fault.sqlstate != "42P01" or self._conn.info.transaction_status != _IDLE:
                    raise
        return self._inspect(schema, counted)

    def _inspect(self, schema: str, counted: Sequence[str]) -> DatabaseState:
        found, sizes, *described = self._pipelined((q.INSPECT, q.TABLE_SIZES, *q.DESCRIBE),
                                                       {"schema": schema}, search_path=schema)
        version, in_recovery, read_only, schema_exists, tables, relations = found[0]
        table_set = frozenset(tables)
        catalog, unvalidated, refused = _catalog_from_rows(*described)

        # Second round: the ledger and the weighed tables, only where they exist.
        second: list[q.Statement] = []
        if q.LEDGER in table_set:
            second.append(q.ledger_rows(schema))
        present = [t for t in counted if t in table_set]
        second += [q.count_rows(schema, t) for t in present]
        if len(present) == 2:
            second.append(q.count_shared_ids(schema, *present))
        results = self._pipelined(second)
        ledger = tuple(LedgerRow(*r) for r in results.pop(0)) if q.LEDGER in table_set else None
        counts = tuple((t, int(results.pop(0)[0][0])) for t in present)
        shared = int(results.pop(0)[0][0]) if results else 0
        return DatabaseState(server_version=version, in_recovery=in_recovery, read_only=read_only,
                             schema=schema, schema_exists=schema_exists, tables=table_set,
                             relations=frozenset(relations), ledger=ledger, catalog=catalog,
                             unvalidated=unvalidated, refused=refused, row_counts=counts, shared_ids=shared,
                             invalid_indexes=frozenset(i.name for t in catalog.tables.values()
                                                       for i in t.indexes if not i.valid),
                             sizes=tuple(TableSize(*r) for r in sizes))

    def glance(self, schema: str) -> DatabaseState | None:
        """Enough to tell an up-to-date database, in one round trip and without describing the schema:
        the server, the schema's tables, INVALID indexes, constraints not validated, the ledger.
        None when there is no ledger to read (then nothing is settled: inspect)."""
        try:
            found, rows = self._pipelined((q.GLANCE, q.ledger_rows(schema)), {"schema": schema})
        except DatabaseFault as fault:
            if fault.sqlstate in ("42P01", "3F000"):  # no ledger table, or no schema
                return None
            raise
        version, in_recovery, read_only, schema_exists, tables, invalid, unvalidated, refused = found[0]
        return DatabaseState(server_version=version, in_recovery=in_recovery, read_only=read_only,
                             schema=schema, schema_exists=schema_exists, tables=frozenset(tables),
                             relations=frozenset(), ledger=tuple(LedgerRow(*r) for r in rows),
                             unvalidated=frozenset(unvalidated), refused=frozenset(refused),
                             invalid_indexes=frozenset(invalid))

    def _pipelined(self, queries: Sequence[q.Statement], params: dict[str, Any] | None = None,
                   *, search_path: str | None = None) -> list[list[Any]]:
        """Several queries in one network round trip; with ``search_path``, in one transaction that
        resolves and renders names relative to that schema, pg_catalog first.  Inside a transaction
        (the replay's) the path stays the schema alone: a setting made in the savepoint would outlive
        it and send the next file's CREATEs to pg_catalog; PostgreSQL searches it first all the same."""
        if not queries:
            return []
        path = q.local_search_path if self.in_transaction else q.reading_search_path
        try:
            with self._conn.pipeline():
                if search_path is None:
                    cursors = [self._conn.execute(query, params) for query in queries]
                else:
                    with self._conn.transaction():
                        self._conn.execute(path(search_path))
                        cursors = [self._conn.execute(query, params) for query in queries]
            return [c.fetchall() for c in cursors]
        except psycopg.Error as exc:
            raise _statement_fault(exc, None) from None

    def describe(self, schema: str) -> Catalog:
        """The schema as the catalog has it, for comparison with the contract."""
        return self.inspect(schema).catalog

    def replay(self, scripts: Sequence[tuple[str, str]], *, lock_timeout_ms: int,
               statement_timeout_ms: int, home: str, pooled: bool, checkpoints: Sequence[int] = ()
               ) -> Replay:
        """What ``scripts`` (name, SQL) build, run in order in a scratch schema and read from the catalog.

        All of it happens in one transaction (a savepoint, when the caller is in one already) that
        is always rolled back, so nothing is left behind.  Without the right to create a schema,
        the session's temporary schema serves.  A file that PostgreSQL runs only outside a
        transaction block (CREATE INDEX CONCURRENTLY) is run again without CONCURRENTLY, which
        builds the same index on the empty scratch tables.  ``checkpoints``: counts of scripts
        after which the catalog is read too (the end always is).

        Only unqualified names land in the scratch schema, so a file that names a real schema
        (``"public"."User"``, ``WITH SCHEMA``, its own ``search_path``) is not replayed: the
        contract is then unknown, and nothing real was touched.  Two things need a commit in the
        middle, as applying the files has: an enum value used by a later file (55P04), and a file
        with its own COMMIT.  On a direct connection the scratch schema is then committed (it is
        first on the *session's* search_path for the replay, so what such a file runs after its
        COMMIT lands there too) and dropped at the end, or after a crash by the next replay.
        Behind a transaction pooler, or nested in the caller's transaction, nothing is ever
        committed: the contract is unknown instead.
        """
        self._refuse_unsafe_scripts(scripts, pooled)
        nested = self.in_transaction
        may_commit = not pooled and not nested
        settings = q.replay_settings(lock_timeout_ms, statement_timeout_ms)
        if may_commit:
            self._drop_stale_scratch(settings)
        skipped: list[str] = []
        catalogs: dict[int, Catalog] = {}
        scratch, committed = "", False
        self._rows(q.SAVEPOINT_OUTER if nested else q.BEGIN)
        try:
            self._rows(settings)
            scratch = self._scratch_schema(session=may_commit)
            for done, (name, text) in enumerate(scripts):
                if done in checkpoints:
                    catalogs[done] = self._read_scratch(scratch)
                self._rows(q.SAVEPOINT)
                try:
                    if (parts := plan_units(text)) is not None:
                        committed = self._units(name, parts, settings, scratch, may_commit, skipped) \
                            or committed
                    else:
                        self._script(name, text)
                except ReplayFault as refused:
                    if not self.in_transaction:  # the file committed, then failed: its scratch is real now
                        committed = True
                        raise
                    self._rows(q.ROLLBACK_TO_SAVEPOINT)
                    if refused.fault.sqlstate == _UNSAFE_NEW_ENUM_VALUE and may_commit:
                        # A value added by an earlier file is usable only once that file committed, as
                        # it is when the files are applied: commit what was replayed so far, go on.
                        self._rows(q.COMMIT)
                        committed = True
                        self._restart(settings, scratch)
                        self._rows(q.SAVEPOINT)
                        self._script(name, text)
                    elif refused.fault.sqlstate in _REFUSED_IN_A_BLOCK:
                        # A statement no plan foresaw refuses a transaction: statement by statement, as
                        # the runner then applies it, leaving out what still refuses (it builds nothing).
                        committed = self._units(name, units_mod.one_by_one(text, 0), settings, scratch,
                                                may_commit, skipped, refused_ok=True) or committed
                    else:
                        raise
                if self.in_transaction:
                    self._rows(q.RELEASE_SAVEPOINT)
                else:  # the file committed: the scratch schema is real now; carry on in a new transaction
                    committed = True
                    if not may_commit:
                        raise ReplayFault(name, DatabaseFault("it commits by itself, which cannot be"
                                                              " replayed here"), None)
                    self._restart(settings, scratch)
            catalogs[len(scripts)] = self._read_scratch(scratch)
            return Replay(catalogs, tuple(skipped))
        finally:
            if nested:
                if self.in_transaction:
                    self._rows(q.ROLLBACK_TO_SAVEPOINT_OUTER)
                    self._rows(q.RELEASE_SAVEPOINT_OUTER)
            elif self.in_transaction:
                self._rows(q.ROLLBACK)
            if committed and may_commit:  # temporary objects would shadow the real tables otherwise
                self._rows(q.session_search_path(home))
                if scratch == "pg_temp":
                    self._rows(q.DISCARD_TEMP)
                else:
                    self._drop_scratch(scratch, settings)

    def _units(self, name: str, parts: Sequence[Unit], settings: q.Statement, scratch: str, may_commit: bool,
               skipped: list[str], *, refused_ok: bool = False) -> bool:
        """A file that runs in units, replayed unit by unit: a CONCURRENTLY build as a plain one (the same
        index, on empty tables), other statements that run only outside a transaction left out (they
        build nothing), and a commit before a unit that uses an enum value an earlier one added (True
        then: the scratch schema was committed)."""
        committed = False
        for unit in parts:
            text = unit.text
            if not unit.transaction:
                if not units_mod.creates_index(unit.statements[0]) and not units_mod.drops_indexes(
                        unit.statements[0]):
                    skipped.append(f"{name} (statement {unit.first + 1})")
                    continue
                text = q.without_concurrently(text)
            self._rows(q.SAVEPOINT_UNIT)
            try:
                self._script(name, text, offset_line=unit.line - 1)
            except ReplayFault as refused:
                self._rows(q.ROLLBACK_TO_SAVEPOINT_UNIT)
                if refused_ok and refused.fault.sqlstate in _REFUSED_IN_A_BLOCK:
                    self._rows(q.RELEASE_SAVEPOINT_UNIT)
                    skipped.append(f"{name} (statement {unit.first + 1})")
                    continue
                if refused.fault.sqlstate != _UNSAFE_NEW_ENUM_VALUE or not may_commit:
                    raise
                self._rows(q.RELEASE_SAVEPOINT_UNIT)
                self._rows(q.RELEASE_SAVEPOINT)  # the file's savepoint: what its units built stays
                self._rows(q.COMMIT)
                committed = True
                self._restart(settings, scratch)
                self._rows(q.SAVEPOINT)
                self._rows(q.SAVEPOINT_UNIT)
                self._script(name, text, offset_line=unit.line - 1)
            self._rows(q.RELEASE_SAVEPOINT_UNIT)
        return committed

    def _refuse_unsafe_scripts(self, scripts: Sequence[tuple[str, str]], pooled: bool) -> None:
        """Files the replay must not run: they would reach real objects (or, behind a pooler, commit)."""
        schemas = [r[0] for r in self._rows(q.REAL_SCHEMAS)]
        for name, text in scripts:
            reason = q.names_a_real_schema(text, schemas)
            if reason is None and pooled and q.has_transaction_control(text):
                reason = "it controls its own transaction: not replayed behind a transaction pooler"
            if reason is not None:
                raise ReplayFault(name, DatabaseFault(reason), None)

    def _restart(self, settings: q.Statement, scratch: str) -> None:
        self._rows(q.BEGIN)
        self._rows(settings)
        self._rows(q.local_search_path(scratch))

    def _read_scratch(self, scratch: str) -> Catalog:
        namespace = self._namespace(scratch)
        if namespace is None:  # no temporary object made yet: nothing built
            return Catalog()
        described = self._pipelined(q.DESCRIBE, {"schema": namespace}, search_path=scratch)
        return _catalog_from_rows(*described)[0]

    def _script(self, name: str, text: str, *, offset_line: int = 0) -> None:
        try:
            self._conn.execute(q.script(text))
        except psycopg.Error as exc:
            fault = _statement_fault(exc, None)
            line = offset_line + text[:fault.position - 1].count("\n") + 1 if fault.position else None
            raise ReplayFault(name, fault, line) from None

    def _scratch_schema(self, *, session: bool) -> str:
        """A schema of our own for the replay, first on the search_path (the session's, when
        ``session``: rolled back with the transaction, unless a file commits it).

        Its name is random, so nobody can make it in advance, and it is created plainly: one that
        exists already (someone else's, whatever they put in it) is never used.  Its comment names
        the backend that made it (pid and start time), for _drop_stale_scratch."""
        pid, started = self._rows(q.MY_BACKEND)[0]
        for attempt in range(_SCRATCH_TRIES):
            scratch = REPLAY_PREFIX + secrets.token_hex(8)
            self._rows(q.SAVEPOINT)
            try:
                self._rows(q.create_scratch_schema(scratch))
                self._rows(q.comment_on_schema(scratch, q.SCRATCH_COMMENT.format(pid=pid, started=started)))
            except DatabaseFault as fault:
                self._rows(q.ROLLBACK_TO_SAVEPOINT)
                self._rows(q.RELEASE_SAVEPOINT)
                if fault.sqlstate == "42P06" and attempt < _SCRATCH_TRIES - 1:  # duplicate_schema
                    continue
                if fault.sqlstate != "42501":  # insufficient_privilege: no CREATE on the database
                    raise
                scratch = "pg_temp"
                break
            self._rows(q.RELEASE_SAVEPOINT)
            break
        self._rows(q.session_search_path(scratch) if session else q.local_search_path(scratch))
        return scratch

    def _namespace(self, scratch: str) -> str | None:
        """The catalog name of the scratch schema: pg_temp is an alias of this session's pg_temp_N."""
        if scratch != "pg_temp":
            return scratch
        rows = self._rows(q.TEMP_NAMESPACE)
        return str(rows[0][0]) if rows else None

    def _drop_stale_scratch(self, settings: q.Statement) -> None:
        """A replay killed after a self-committing file leaves its scratch schema behind: drop those
        whose backend is gone.

        The name says nothing (it is random): a schema is ours only when our role owns it and its
        comment names the backend that made it.  That backend is gone when no backend has its pid,
        or the one that has it started at another time (pids are reused).  Where the start time of
        a backend is hidden from us (another role's session), it counts as alive: kept, never dropped
        on a guess."""
        started = {pid: start for pid, start in self._rows(q.BACKENDS)}
        for name, comment in self._rows(q.SCRATCH_SCHEMAS, {"prefix": REPLAY_PREFIX}):
            maker = _SCRATCH_COMMENT.match(comment or "")
            if maker is None:
                continue  # not made by a replay: not ours to drop
            pid, start = int(maker[1]), maker[2]
            if pid not in started or started[pid] not in (start, None):
                self._drop_scratch(name, settings)

    def _drop_scratch(self, name: str, settings: q.Statement) -> None:
        """Drop a scratch schema of ours, waiting for locks no longer than the replay's lock_timeout.
        One that cannot be dropped now is left to a later run (its backend will be gone by then)."""
        try:
            self._rows(q.BEGIN)
            self._rows(settings)
            self._rows(q.drop_schema(name))
            self._rows(q.COMMIT)
        except DatabaseFault as fault:
            if fault.connection_lost:
                raise
            if self.in_transaction:
                self._rows(q.ROLLBACK)

    def begin(self) -> None:
        self._rows(q.BEGIN)

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != _IDLE

    def count(self, query: q.Statement) -> int:
        return int(self._rows(query)[0][0])

    def try_lock(self) -> bool:
        return bool(self._rows(q.TRY_LOCK)[0][0])

    def lock_holders(self) -> list[LockHolder]:
        return [LockHolder(*r) for r in self._rows(q.LOCK_HOLDERS)]

    def unlock(self) -> None:
        self._rows(q.UNLOCK)

    @contextmanager
    def transaction(self, *, schema: str, lock_timeout_ms: int, statement_timeout_ms: int
                    ) -> Iterator[None]:
        """One transaction with bounded waits: it commits when the block ends, else rolls back."""
        try:
            with self._conn.transaction():
                self._conn.execute(q.transaction_settings(schema, lock_timeout_ms, statement_timeout_ms))
                yield
        except psycopg.Error as exc:  # BEGIN, the settings, COMMIT or the rollback itself
            raise _statement_fault(exc, None) from None

    def execute(self, statements: Sequence[q.Statement]) -> int:
        """Statements in order, in the current transaction or each on its own (autocommit).

        A fault names the one that failed; returns the row count of the last one."""
        count = -1
        for index, statement in enumerate(statements):
            try:
                count = self._conn.execute(statement).rowcount
            except psycopg.Error as exc:
                raise _statement_fault(exc, index) from None
        return count

    def fetch_one(self, statement: q.Statement, params: dict[str, Any]) -> tuple[Any, ...]:
        """One statement with parameters, its one row (the merge's batches report what they did)."""
        try:
            row = self._conn.execute(statement, params).fetchone()
        except psycopg.Error as exc:
            raise _statement_fault(exc, 0) from None
        return tuple(row) if row else ()

    def index_state(self, schema: str, name: str) -> tuple[bool, bool] | None:
        """(valid, being built by another session) for an index of ``schema``; None when absent."""
        rows = self._rows(q.INDEX_STATE, {"schema": schema, "index": name})
        return (bool(rows[0][0]), bool(rows[0][1])) if rows else None

    def index_progress(self, pid: int) -> tuple[Any, ...] | None:
        """How far the index build of backend ``pid`` has come (pg_stat_progress_create_index)."""
        rows = self._rows(q.INDEX_PROGRESS, {"pid": str(pid)})
        return tuple(rows[0]) if rows else None

    def function_volatility(self, functions: Sequence[str]) -> dict[str, str]:
        """Each named function's volatility ('i', 's' or 'v'): for the lock estimates of pending files."""
        if not functions:
            return {}
        return {name: v for name, v in self._rows(q.FUNCTION_VOLATILITY, {"functions": list(functions)})}

    def type_exists(self, schema: str, name: str) -> bool:
        """Whether a type of exactly this name is visible from ``schema`` (as a migration there sees it)."""
        return bool(self._pipelined([q.TYPE_EXISTS], {"name": name}, search_path=schema)[0][0][0])

    def try_xact_lock(self) -> bool:
        """The same key, held until the transaction ends: what a transaction pooler allows."""
        return bool(self._rows(q.TRY_XACT_LOCK)[0][0])

    def behind_pooler(self) -> bool:
        """PgBouncer answers with its own backend key, so the pid the server reports differs."""
        return bool(self._rows(q.BACKEND_PID)[0][0] != self._conn.info.backend_pid)

    def close(self) -> None:
        self._conn.close()

    @property
    def backend_pid(self) -> int:
        return self._conn.info.backend_pid
