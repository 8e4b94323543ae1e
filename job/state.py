"""What inspection found, as plain data: the planner's only input from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from job.schemamodel import Catalog, Schema


@dataclass(frozen=True)
class LedgerRow:
    """One row of Prisma's ``_prisma_migrations``."""

    id: str
    migration_name: str
    checksum: str
    started_at: datetime
    finished_at: datetime | None
    rolled_back_at: datetime | None
    applied_steps_count: int
    logs: str | None = None

    @property
    def failed(self) -> bool:
        # Prisma's definition (P3009): neither finished nor rolled back.
        return self.finished_at is None and self.rolled_back_at is None

    @property
    def applied(self) -> bool:
        return self.finished_at is not None and self.rolled_back_at is None


@dataclass(frozen=True)
class DatabaseState:
    server_version: int  # server_version_num, e.g. 160002
    in_recovery: bool  # a hot standby: nothing can be written
    read_only: bool  # default_transaction_read_only is on
    schema: str
    schema_exists: bool
    tables: frozenset[str]  # ordinary and partitioned tables in the target schema
    relations: frozenset[str]  # every relation name in the schema (tables, indexes, sequences...)
    ledger: tuple[LedgerRow, ...] | None  # None: no _prisma_migrations table
    # The schema in detail, as the catalog has it.
    catalog: Catalog = field(default_factory=Catalog)
    # Constraints added NOT VALID and not validated yet (orphan rows, or validation pending).
    unvalidated: frozenset[str] = frozenset()
    # Of those, the ones whose validation a run tried and rows refused (marked by the job's comment).
    refused: frozenset[str] = frozenset()
    # Row counts, read only for the tables the planner must weigh (the app's hook names them).
    row_counts: tuple[tuple[str, int], ...] = ()
    # Ids present in both weighed tables, when both exist.
    shared_ids: int = 0
    # Indexes left INVALID (an interrupted CREATE INDEX CONCURRENTLY).
    invalid_indexes: frozenset[str] = frozenset()
    # Each table's size as the statistics hold it (no scan): what decides a concurrent index build and
    # what the lock estimates weigh.
    sizes: tuple[TableSize, ...] = ()

    @property
    def live(self) -> Schema:
        return self.catalog.tables

    def estimate(self, table: str) -> int:
        """A table's estimated rows; 0 when not known."""
        return next((s.rows or 0 for s in self.sizes if s.table == table), 0)

    def rows_in(self, table: str) -> int | None:
        return dict(self.row_counts).get(table)

    def applied(self, name: str) -> bool:
        return any(r.migration_name == name and r.applied for r in self.ledger or ())


@dataclass(frozen=True)
class TableSize:
    """One table's size as PostgreSQL's statistics hold it: what the lock estimates weigh (job.lockrisk)."""

    table: str
    reltuples: float  # rows at the last VACUUM or ANALYZE: -1 if never (PostgreSQL 14+), 0 before
    relpages: int  # pages at that time (0 if never)
    live_rows: int  # live rows by the cumulative statistics (pg_stat_get_live_tuples), counted as rows change
    partitioned: bool  # a partitioned table holds no rows of its own

    @property
    def rows(self) -> int | None:
        """Rows as the statistics estimate them: ``reltuples`` once VACUUM or ANALYZE has seen the table;
        never seen (-1 on PostgreSQL 14+, 0 with no pages before), the cumulative statistics' live rows."""
        if self.partitioned:
            return None  # its rows are its partitions', which this does not sum
        if self.reltuples > 0 or (self.reltuples == 0 and self.relpages > 0):
            return round(self.reltuples)
        return max(self.live_rows, 0)
