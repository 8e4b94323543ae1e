"""Plain data describing tables as PostgreSQL's catalog spells them.

Both sides of a comparison use these types: the contract (parsed from
``prisma/schema.prisma``) and the live database (read from the catalog).
Spellings follow PostgreSQL's own renderers so the two compare with ``==``:
``format_type()`` for types and ``pg_get_expr()`` for defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    # As format_type() renders it: "text", "integer", "bigint", "double precision",
    # "boolean", "timestamp(3) without time zone", "jsonb", "text[]".
    type: str
    nullable: bool
    # As pg_get_expr() renders it: "false", "0", "CURRENT_TIMESTAMP",
    # "'inactive'::text"; None when the column has no default.
    default: str | None


@dataclass(frozen=True)
class Index:
    """An index, including those behind primary keys and unique constraints."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    primary: bool


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    # "CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT" or "NO ACTION".
    on_delete: str
    on_update: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def index(self, name: str) -> Index | None:
        return next((i for i in self.indexes if i.name == name), None)

    def foreign_key(self, name: str) -> ForeignKey | None:
        return next((f for f in self.foreign_keys if f.name == name), None)


# A schema is its tables by name.
Schema = dict[str, Table]
