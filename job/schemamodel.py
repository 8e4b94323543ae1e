"""Plain data describing one schema as PostgreSQL's catalog spells it.

Both sides of every comparison are read by the same catalog queries
(``job.statements.DESCRIBE``): the live schema, and the contract, which is what
the migrations folder builds when it is replayed in a scratch schema
(``job.database.Database.replay``).  Spellings are PostgreSQL's own renderers
(``format_type``, ``pg_get_expr``, ``pg_get_indexdef``, ``pg_get_constraintdef``,
``pg_get_viewdef``), read with ``search_path`` set to the schema being read, so
the same object reads the same wherever it lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): "text", "timestamp(3) without time zone", "\"Status\"[]"
    nullable: bool
    default: str | None  # pg_get_expr(): "CURRENT_TIMESTAMP", "'inactive'::text", None
    identity: str = ""  # "ALWAYS" or "BY DEFAULT" for identity columns
    generated: str | None = None  # the expression of a stored generated column


@dataclass(frozen=True)
class Index:
    """An index, including those behind primary keys and unique constraints."""

    name: str
    columns: tuple[str, ...]  # key columns in order; "" for an expression key
    unique: bool
    primary: bool
    # pg_get_indexdef() from the access method on: "btree (shop)", "btree (lower(email)) WHERE ...".
    definition: str = ""
    constraint: str = ""  # "p", "u" or "x" when the index backs a constraint of that kind
    valid: bool = True  # False: left INVALID by an interrupted CREATE INDEX CONCURRENTLY


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str  # "CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT" or "NO ACTION"
    on_update: str
    definition: str = ""  # pg_get_constraintdef(), without " NOT VALID"


@dataclass(frozen=True)
class Check:
    name: str
    definition: str  # pg_get_constraintdef(), without " NOT VALID": "CHECK ((price >= 0))"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]
    checks: tuple[Check, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def index(self, name: str) -> Index | None:
        return next((i for i in self.indexes if i.name == name), None)

    def foreign_key(self, name: str) -> ForeignKey | None:
        return next((f for f in self.foreign_keys if f.name == name), None)


# The tables of a schema, by name.
Schema = dict[str, Table]


@dataclass(frozen=True)
class Catalog:
    """Everything of one schema that a migration can build and the job compares."""

    tables: Schema = field(default_factory=dict)
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)  # labels in sort order
    views: dict[str, str] = field(default_factory=dict)  # name -> "VIEW: <pg_get_viewdef>"
    sequences: frozenset[str] = frozenset()
