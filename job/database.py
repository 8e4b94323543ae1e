"""The one seam to PostgreSQL: the only module that holds a connection or a cursor.

A handful of operations, as narrow as a migration runner's driver should be:
open, inspect, try_lock / try_xact_lock / lock_holders / unlock, transaction +
execute, close.  Everything it returns is plain data from ``job.state`` and
``job.schemamodel``; every psycopg error leaves it as a ``DatabaseFault``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from job import statements as q
from job.redact import redact
from job.schemamodel import Column, ForeignKey, Index, Schema, Table
from job.state import DatabaseState, LedgerRow

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_INSPECT_TRIES = 5
_IDLE = psycopg.pq.TransactionStatus.IDLE
# Tables whose row counts the planner needs when they exist.
_COUNTED = ("session", "Session")


# Connection failures that no amount of waiting heals: fail at once.
_FATAL_CONNECT = (
    "password authentication failed", "no password supplied", "authentication failed",
    "does not exist", "no pg_hba.conf entry", "invalid connection option", "invalid uri",
    "invalid integer value", "invalid port", "invalid sslmode", "certificate verify failed",
    "server does not support ssl", "received invalid response to ssl negotiation",
    "expected authentication request", "unsupported frontend protocol", "permission denied",
    "invalid value for parameter", "insufficient data in", "server requested",
)
# SQLSTATEs after which a statement may simply be tried again a little later.
_TRANSIENT = {
    "55P03",  # lock_not_available: our lock_timeout fired; the app kept its locks
    "40P01",  # deadlock_detected
    "40001",  # serialization_failure
}


_SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}  # admin_shutdown, crash_shutdown, cannot_connect_now


class DatabaseFault(Exception):
    """A failed database call as plain data; the message never holds a password."""

    def __init__(self, message: str, *, sqlstate: str | None = None, retryable: bool = False,
                 connection_lost: bool = False, statement: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.retryable = retryable
        self.connection_lost = connection_lost
        self.statement = statement


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
    return DatabaseFault(message, sqlstate=exc.sqlstate, retryable=not fatal)


def _statement_fault(exc: psycopg.Error, index: int | None) -> DatabaseFault:
    _reraise_interrupt(exc)
    diag = exc.diag
    message = redact(diag.message_primary or "") or _one_line(exc)
    # No SQLSTATE (the socket closed), a connection exception (08...), or the server going down.
    state = exc.sqlstate or ""
    lost = (isinstance(exc, psycopg.OperationalError) and not state) or state.startswith("08") \
        or state in _SERVER_GOING_AWAY
    return DatabaseFault(message, sqlstate=exc.sqlstate, statement=index, connection_lost=lost,
                         retryable=lost or exc.sqlstate in _TRANSIENT)


def _schema_from_rows(columns: list[Any], indexes: list[Any], fks: list[Any]
                     ) -> tuple[Schema, frozenset[str]]:
    by_table: dict[str, list[Column]] = {}
    for table, name, type_, nullable, default in columns:
        by_table.setdefault(table, []).append(Column(name, type_, nullable, default))
    idx: dict[str, list[Index]] = {}
    for table, name, unique, primary, cols in indexes:
        idx.setdefault(table, []).append(Index(name, tuple(cols), unique, primary))
    keys: dict[str, list[ForeignKey]] = {}
    unvalidated = set()
    for table, name, ref, cols, ref_cols, on_del, on_upd, valid in fks:
        keys.setdefault(table, []).append(ForeignKey(
            name, tuple(cols), ref, tuple(ref_cols), _FK_ACTIONS[on_del], _FK_ACTIONS[on_upd]))
        if not valid:
            unvalidated.add(name)
    schema = {t: Table(t, tuple(cols), tuple(idx.get(t, ())), tuple(keys.get(t, ())))
              for t, cols in by_table.items()}
    return schema, frozenset(unvalidated)


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
        return cls(conn)

    @property
    def server_version(self) -> int:
        return self._conn.info.server_version

    def _rows(self, query: q.Statement, params: dict[str, str] | None = None) -> list[Any]:
        try:
            cur = self._conn.execute(query, params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise _statement_fault(exc, None) from None

    def configure_session(self) -> None:
        self._rows(q.session_settings(self.server_version))

    def inspect(self, schema: str) -> DatabaseState:
        """Everything the planner needs, in two round trips (each one pipelined).

        Outside the lock another runner may rename or drop a table between the two
        rounds (42P01 in the second): then the catalog is simply read again.
        """
        for _ in range(_INSPECT_TRIES - 1):
            try:
                return self._inspect(schema)
            except DatabaseFault as fault:
                if fault.sqlstate != "42P01" or self._conn.info.transaction_status != _IDLE:
                    raise
        return self._inspect(schema)

    def _inspect(self, schema: str) -> DatabaseState:
        found, columns, indexes, fks = self._pipelined(
            (q.INSPECT, q.DESCRIBE_COLUMNS, q.DESCRIBE_INDEXES, q.DESCRIBE_FOREIGN_KEYS), {"schema": schema})
        version, in_recovery, read_only, schema_exists, tables, relations = found[0]
        table_set = frozenset(tables)
        live, unvalidated = _schema_from_rows(columns, indexes, fks)

        # Second round: the ledger and the session tables, only where they exist.
        second: list[q.Statement] = []
        if q.LEDGER in table_set:
            second.append(q.ledger_rows(schema))
        counted = [t for t in _COUNTED if t in table_set]
        second += [q.count_rows(schema, t) for t in counted]
        if len(counted) == len(_COUNTED):
            second.append(q.count_shared_ids(schema, *_COUNTED))
        results = self._pipelined(second)
        ledger = tuple(LedgerRow(*r) for r in results.pop(0)) if q.LEDGER in table_set else None
        counts = tuple((t, int(results.pop(0)[0][0])) for t in counted)
        shared = int(results.pop(0)[0][0]) if results else 0
        return DatabaseState(server_version=version, in_recovery=in_recovery, read_only=read_only,
                             schema=schema, schema_exists=schema_exists, tables=table_set,
                             relations=frozenset(relations), ledger=ledger, live=live,
                             unvalidated_fks=unvalidated, row_counts=counts, shared_session_ids=shared)

    def _pipelined(self, queries: Sequence[q.Statement], params: dict[str, str] | None = None
                   ) -> list[list[Any]]:
        """Several queries in one network round trip."""
        if not queries:
            return []
        try:
            with self._conn.pipeline():
                cursors = [self._conn.execute(query, params) for query in queries]
            return [c.fetchall() for c in cursors]
        except psycopg.Error as exc:
            raise _statement_fault(exc, None) from None

    def describe(self, schema: str) -> Schema:
        """The schema's tables as the catalog has them, for comparison with the contract."""
        return self.inspect(schema).live

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

    def execute(self, statements: Sequence[q.Statement]) -> None:
        """Statements in order, inside the current transaction; a fault names the one that failed."""
        for index, statement in enumerate(statements):
            try:
                self._conn.execute(statement)
            except psycopg.Error as exc:
                raise _statement_fault(exc, index) from None

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
