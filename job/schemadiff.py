"""The one diff engine: every difference between two catalogs, one human-readable line each.

Both sides come from the same catalog queries, so most things compare with
``==``.  Columns, indexes and constraints are matched by name, so their order
does not count: PostgreSQL cannot reorder columns, and a column added later by
ALTER TABLE is still the column the contract asks for.  Defaults compare by
meaning (``same_default``): ``now()`` and ``CURRENT_TIMESTAMP`` are one default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from job.schemamodel import Catalog, Check, Column, ForeignKey, Index, Table

_Named = TypeVar("_Named", Column, Index, ForeignKey, Check)

# Spellings PostgreSQL keeps apart that mean the same default: the transaction's start time.
_NOW = {"now()", "CURRENT_TIMESTAMP", "transaction_timestamp()"}
# A constant with the cast the parser adds to it: 'a'::text, '-1'::integer, 'x'::character varying.
_CAST_CONSTANT = re.compile(r"^\(?('(?:[^']|'')*')\)?::[\w \"\.\[\]\(\),]+$")
_NUMBER = re.compile(r"^'(-?\d+(?:\.\d+)?)'$")


def _normal_default(default: str | None) -> str | None:
    if default is None:
        return None
    text = default.strip()
    if text in _NOW:
        return "now()"
    m = _CAST_CONSTANT.match(text)
    if m:
        text = m.group(1)
    number = _NUMBER.match(text)
    return number.group(1) if number else text


def same_default(a: str | None, b: str | None) -> bool:
    """Equal by meaning on the same column: a differing spelling of one constant is no difference."""
    return _normal_default(a) == _normal_default(b)


def diff_catalogs(expected: Catalog, actual: Catalog, *,
                  allowed_extra_tables: frozenset[str] = frozenset()) -> list[str]:
    """Lines sorted by kind and name; [] when the two are the same."""
    lines: list[str] = []
    for name in sorted(expected.enums.keys() | actual.enums.keys()):
        want, got = expected.enums.get(name), actual.enums.get(name)
        if want is None:
            lines.append(f'unexpected enum "{name}" ({", ".join(got or ())})')
        elif got is None:
            lines.append(f'missing enum "{name}" ({", ".join(want)})')
        elif want != got:
            lines.append(f'enum "{name}": values expected ({", ".join(want)}), found ({", ".join(got)})')
    for name in sorted(expected.sequences ^ actual.sequences):
        lines.append(f'{"missing" if name in expected.sequences else "unexpected"} sequence "{name}"')
    lines += diff_schemas(expected.tables, actual.tables, allowed_extra_tables=allowed_extra_tables)
    for name in sorted(expected.views.keys() | actual.views.keys()):
        want_view, got_view = expected.views.get(name), actual.views.get(name)
        if want_view is None:
            lines.append(f'unexpected view "{name}"')
        elif got_view is None:
            lines.append(f'missing view "{name}"')
        elif " ".join(want_view.split()) != " ".join(got_view.split()):
            lines.append(f'view "{name}": definition differs')
    return lines


def diff_schemas(expected: dict[str, Table], actual: dict[str, Table], *,
                 allowed_extra_tables: frozenset[str] = frozenset()) -> list[str]:
    """Tables only: sorted by table, then columns, indexes, foreign keys, checks."""
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
        _diff_items(where, "column", want.columns, got.columns, column_changes, describe_column)
        + _diff_items(where, "index", want.indexes, got.indexes, _index_changes, describe_index)
        + _diff_items(where, "foreign key", want.foreign_keys, got.foreign_keys, _fk_changes, _describe_fk)
        + _diff_items(where, "check", want.checks, got.checks, _check_changes, _describe_check)
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


def column_changes(want: Column, got: Column) -> list[str]:
    default = [] if same_default(want.default, got.default) else [
        f"default expected {_default(want.default)}, found {_default(got.default)}"]
    return (
        _mismatch("type", want.type, got.type)
        + _mismatch("nullability", _nullability(want.nullable), _nullability(got.nullable))
        + default
        + _mismatch("identity", want.identity or "none", got.identity or "none")
        + _mismatch("generated", want.generated or "none", got.generated or "none")
    )


def describe_column(c: Column) -> str:
    default = "" if c.default is None else f" DEFAULT {c.default}"
    identity = f" GENERATED {c.identity} AS IDENTITY" if c.identity else ""
    return f"{c.type} {_nullability(c.nullable)}{default}{identity}"


def describe_index(i: Index) -> str:
    kind = "PRIMARY KEY" if i.primary else "UNIQUE" if i.unique else "INDEX"
    shape = i.definition or f"({', '.join(i.columns)})"
    return f"{kind} {shape}" + ("" if i.valid else " INVALID")


def _index_changes(want: Index, got: Index) -> list[str]:
    return _mismatch("definition", describe_index(want), describe_index(got))


def _describe_fk(k: ForeignKey) -> str:
    return k.definition or (
        f"({', '.join(k.columns)}) REFERENCES \"{k.ref_table}\" ({', '.join(k.ref_columns)})"
        f" ON DELETE {k.on_delete} ON UPDATE {k.on_update}")


def _fk_changes(want: ForeignKey, got: ForeignKey) -> list[str]:
    return _mismatch("definition", _describe_fk(want), _describe_fk(got))


def _describe_check(c: Check) -> str:
    return c.definition


def _check_changes(want: Check, got: Check) -> list[str]:
    return _mismatch("definition", want.definition, got.definition)
