"""Every difference between two Schemas, one human-readable line each.

Columns, indexes and foreign keys are matched by name, so their order in the
Table tuples does not count: PostgreSQL cannot reorder columns, and a column
added later by ALTER TABLE is still the column the contract asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from job.schemamodel import Column, ForeignKey, Index, Schema, Table

_Named = TypeVar("_Named", Column, Index, ForeignKey)


def diff_schemas(
    expected: Schema, actual: Schema, *, allowed_extra_tables: frozenset[str] = frozenset()
) -> list[str]:
    """Lines sorted by table, then columns, indexes, foreign keys; [] when identical."""
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if want is None:
            if name not in allowed_extra_tables:
                lines.append(f'unexpected table "{name}"')
        elif got is None:
            lines.append(f'missing table "{name}"')
        else:
            lines += _diff_table(want, got)
    return lines


def _diff_table(want: Table, got: Table) -> list[str]:
    where = f'table "{want.name}"'
    return (
        _diff_items(where, "column", want.columns, got.columns, _column_changes, _describe_column)
        + _diff_items(where, "index", want.indexes, got.indexes, _index_changes, _describe_index)
        + _diff_items(where, "foreign key", want.foreign_keys, got.foreign_keys, _fk_changes, _describe_fk)
    )


def _diff_items(
    where: str,
    kind: str,
    want: Sequence[_Named],
    got: Sequence[_Named],
    changes: Callable[[_Named, _Named], list[str]],
    describe: Callable[[_Named], str],
) -> list[str]:
    """Missing and changed items in expected order, then unexpected ones in found order."""
    found = {i.name: i for i in got}
    expected_names = {i.name for i in want}
    lines = []
    for item in want:
        other = found.get(item.name)
        if other is None:
            lines.append(f'{where}: missing {kind} "{item.name}" ({describe(item)})')
        else:
            lines += [f'{where}: {kind} "{item.name}": {c}' for c in changes(item, other)]
    lines += [
        f'{where}: unexpected {kind} "{i.name}" ({describe(i)})' for i in got if i.name not in expected_names
    ]
    return lines


def _mismatch(what: str, want: object, got: object) -> list[str]:
    return [] if want == got else [f"{what} expected {want}, found {got}"]


def _nullability(nullable: bool) -> str:
    return "NULL" if nullable else "NOT NULL"


def _default(default: str | None) -> str:
    return "no default" if default is None else default


def _column_changes(want: Column, got: Column) -> list[str]:
    return (
        _mismatch("type", want.type, got.type)
        + _mismatch("nullability", _nullability(want.nullable), _nullability(got.nullable))
        + _mismatch("default", _default(want.default), _default(got.default))
    )


def _describe_column(c: Column) -> str:
    default = "" if c.default is None else f" DEFAULT {c.default}"
    return f"{c.type} {_nullability(c.nullable)}{default}"


def _describe_index(i: Index) -> str:
    kind = "PRIMARY KEY" if i.primary else "UNIQUE" if i.unique else "INDEX"
    if i.primary and not i.unique:  # not in PostgreSQL, but then still a difference
        kind += " NOT UNIQUE"
    return f"{kind} ({', '.join(i.columns)})"


def _index_changes(want: Index, got: Index) -> list[str]:
    return _mismatch("definition", _describe_index(want), _describe_index(got))


def _describe_fk(k: ForeignKey) -> str:
    return (
        f"({', '.join(k.columns)}) REFERENCES \"{k.ref_table}\" ({', '.join(k.ref_columns)})"
        f" ON DELETE {k.on_delete} ON UPDATE {k.on_update}"
    )


def _fk_changes(want: ForeignKey, got: ForeignKey) -> list[str]:
    return _mismatch("definition", _describe_fk(want), _describe_fk(got))
