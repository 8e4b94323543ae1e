"""Bring an existing, partial schema to the contract: add what is missing, report the rest.

Added: missing tables, columns, missing defaults, primary keys, indexes (renamed
when the same index exists under another name) and foreign keys.  Foreign keys
are added NOT VALID, so rows that would violate them (orphans) do not keep the
app down; validation follows in its own short step.  Never rewritten: a column of
another type or nullability, a key with other columns.  Those are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from job import statements as q
from job.schemamodel import ForeignKey, Index, Schema, Table
from job.steps import Step


@dataclass(frozen=True)
class Healing:
    steps: tuple[Step, ...]
    validations: tuple[Step, ...]  # VALIDATE CONSTRAINT, each in its own transaction after commit
    unresolved: tuple[str, ...]  # differences the job will not change on its own


def heal(contract: Schema, live: Schema, schema: str, unvalidated: frozenset[str]) -> Healing:
    steps: list[Step] = []
    unresolved: list[str] = []
    new_fks: list[tuple[str, ForeignKey]] = []
    tables = [t for t in contract.values()]
    for want in tables:  # tables and columns first: keys and indexes need them
        got = live.get(want.name)
        if got is None:
            steps.append(Step("create_table", f'create missing table "{want.name}"',
                              (q.create_table(schema, want),)))
        else:
            steps += _columns(schema, want, got, unresolved)
    for want in tables:
        got = live.get(want.name)
        steps += _indexes(schema, want, got, unresolved)
    for want in tables:
        got = live.get(want.name)
        fk_steps, added = _foreign_keys(schema, want, got, unresolved)
        steps += fk_steps
        new_fks += [(want.name, fk) for fk in added]
    pending = [(t.name, fk) for t in tables for fk in t.foreign_keys
               if fk.name in unvalidated and live.get(t.name) is not None]
    validations = tuple(
        Step("validate_foreign_key", f'validate foreign key "{fk.name}" on "{table}"',
             (q.validate_constraint(schema, table, fk.name),),
             details={"table": table, "constraint": fk.name})
        for table, fk in new_fks + pending)
    return Healing(tuple(steps), validations, tuple(unresolved))


def _columns(schema: str, want: Table, got: Table, unresolved: list[str]) -> list[Step]:
    steps = []
    where = f'"{want.name}"'
    for col in want.columns:
        live_col = got.column(col.name)
        if live_col is None:
            steps.append(Step("add_column", f'add missing column {where}."{col.name}" {col.type}',
                              (q.add_column(schema, want.name, col),)))
            continue
        if live_col.type != col.type:
            unresolved.append(f'{where}."{col.name}" is {live_col.type}, the contract says {col.type}')
        if live_col.nullable != col.nullable:
            unresolved.append(f'{where}."{col.name}" is {"" if live_col.nullable else "NOT "}NULL,'
                              f' the contract says {"" if col.nullable else "NOT "}NULL')
        if col.default is not None and live_col.default is None:
            steps.append(Step("set_default", f'set missing default of {where}."{col.name}" to {col.default}',
                              (q.set_default(schema, want.name, col),)))
        elif live_col.default != col.default:
            unresolved.append(f'{where}."{col.name}" defaults to {live_col.default},'
                              f" the contract says {col.default or 'no default'}")
    return steps


def _same_index(a: Index, b: Index) -> bool:
    return (a.columns, a.unique, a.primary) == (b.columns, b.unique, b.primary)


def _indexes(schema: str, want: Table, got: Table | None, unresolved: list[str]) -> list[Step]:
    if got is None:  # created just now, with its primary key
        return [Step("create_index", f'create index "{i.name}"', (q.create_index(schema, want.name, i),))
                for i in want.indexes if not i.primary]
    steps = []
    contract_names = {i.name for i in want.indexes}
    for idx in want.indexes:
        live_idx = got.index(idx.name)
        if live_idx is not None:
            if not _same_index(idx, live_idx):
                unresolved.append(f'index "{idx.name}" on "{want.name}" differs from the contract')
            continue
        twin = next((i for i in got.indexes if i.name not in contract_names and _same_index(i, idx)), None)
        if twin is not None:
            steps.append(Step("rename_index", f'rename index "{twin.name}" to "{idx.name}"',
                              (q.rename_index(schema, twin.name, idx.name),)))
        elif idx.primary:
            if any(i.primary for i in got.indexes):
                unresolved.append(f'"{want.name}" has a primary key on other columns than {idx.columns}')
            else:
                steps.append(Step("add_primary_key", f'add primary key "{idx.name}"',
                                  (q.add_primary_key(schema, want.name, idx),)))
        else:
            steps.append(Step("create_index", f'create missing index "{idx.name}"',
                              (q.create_index(schema, want.name, idx),)))
    return steps


def _same_fk(a: ForeignKey, b: ForeignKey) -> bool:
    return (a.columns, a.ref_table, a.ref_columns, a.on_delete, a.on_update) == (
        b.columns, b.ref_table, b.ref_columns, b.on_delete, b.on_update)


def _foreign_keys(schema: str, want: Table, got: Table | None, unresolved: list[str]
                  ) -> tuple[list[Step], list[ForeignKey]]:
    steps: list[Step] = []
    added: list[ForeignKey] = []
    contract_names = {f.name for f in want.foreign_keys}
    for fk in want.foreign_keys:
        live_fk = got.foreign_key(fk.name) if got else None
        if live_fk is not None:
            if not _same_fk(fk, live_fk):
                unresolved.append(f'foreign key "{fk.name}" on "{want.name}" differs from the contract')
            continue
        twin = next((f for f in (got.foreign_keys if got else ())
                     if f.name not in contract_names and _same_fk(f, fk)), None)
        if twin is not None:
            steps.append(Step("rename_foreign_key", f'rename foreign key "{twin.name}" to "{fk.name}"',
                              (q.rename_constraint(schema, want.name, twin.name, fk.name),)))
            continue
        steps.append(Step("add_foreign_key", f'add foreign key "{fk.name}" (NOT VALID, validated after)',
                          (q.add_foreign_key(schema, want.name, fk),)))
        added.append(fk)
    return steps, added
