"""Bring an existing schema to what its recorded migrations built: add what is missing, report the rest.

The target is a catalog (what the migrations folder builds, replayed by
PostgreSQL), so every object PostgreSQL has is healed from PostgreSQL's own
rendering of it.  Added: missing sequences, enum types and enum values, tables,
columns, defaults (a default is metadata: set when it differs), primary keys,
unique constraints, indexes (renamed when the same index exists under another
name; built CONCURRENTLY on a table with rows, so app writes go on, and a unique
constraint then attached to its index), foreign keys and CHECK constraints (both NOT VALID, validated after in
their own step), views.  Never rewritten: a column of another type or
nullability, an index or constraint with another definition, enum values in
another order.  Those are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from job import statements as q
from job.schemadiff import describe_index, same_default
from job.schemamodel import Catalog, Check, ForeignKey, Index, Table
from job.steps import Step


@dataclass(frozen=True)
class Healing:
    steps: tuple[Step, ...]
    validations: tuple[Step, ...]  # VALIDATE CONSTRAINT, each in its own transaction after commit
    unresolved: tuple[str, ...]  # differences the job will not change on its own


# From this many rows (estimated), an index is built CONCURRENTLY: a plain build holds a SHARE lock,
# which stops the table's writes, for as long as it takes (about 1 s a million rows on 2 cores).
CONCURRENT_FROM_ROWS = 10_000


def heal(target: Catalog, live: Catalog, schema: str, unvalidated: frozenset[str], *,
         rows: Callable[[str], int] = lambda table: 0, needed_by: str | None = None) -> Healing:
    """``unvalidated``: constraints found NOT VALID that this run validates again; ``rows``: a
    table's estimated rows; ``needed_by``: the pending migration that builds the
    target too (a unique index refused over duplicate keys then stops the run: it would fail too)."""
    steps: list[Step] = []
    unresolved: list[str] = []
    steps += [Step("create_sequence", f'create missing sequence "{name}"', (q.create_sequence(schema, name),))
              for name in sorted(target.sequences - live.sequences)]
    steps += _enums(schema, target, live, unresolved)
    tables = list(target.tables.values())
    for want in tables:  # tables and columns first: keys and indexes need them
        got = live.tables.get(want.name)
        if got is None:
            steps.append(Step("create_table", f'create missing table "{want.name}"',
                              (q.create_table(schema, want),)))
        else:
            steps += _columns(schema, want, got, unresolved)
    for want in tables:
        big = rows(want.name) >= CONCURRENT_FROM_ROWS
        steps += _indexes(schema, want, live.tables.get(want.name), unresolved, big, needed_by)
    added: list[tuple[str, str]] = []
    for want in tables:
        got = live.tables.get(want.name)
        fk_steps, names = _constraints(schema, want, got, unresolved)
        steps += fk_steps
        added += [(want.name, n) for n in names]
    steps += [Step("create_view", f'create missing view "{name}"', (q.create_view(schema, name, view),))
              for name, view in sorted(target.views.items()) if name not in live.views]
    unresolved += [f'view "{name}" differs from the contract' for name, view in sorted(target.views.items())
                   if name in live.views and " ".join(live.views[name].split()) != " ".join(view.split())]
    pending = [(t.name, name) for t in tables if t.name in live.tables
               for name in [*(f.name for f in t.foreign_keys), *(c.name for c in t.checks)]
               if name in unvalidated]
    validations = tuple(
        Step("validate_constraint", f'validate constraint "{name}" on "{table}"',
             (q.validate_constraint(schema, table, name), q.clear_mark(schema, table, name)),
             details={"table": table, "constraint": name})
        for table, name in added + pending)
    return Healing(tuple(steps), validations, tuple(unresolved))


def _enums(schema: str, target: Catalog, live: Catalog, unresolved: list[str]) -> list[Step]:
    steps = []
    for name, labels in sorted(target.enums.items()):
        have = live.enums.get(name)
        if have is None:
            steps.append(Step("create_enum", f'create missing enum "{name}"',
                              (q.create_enum(schema, name, labels),)))
            continue
        missing = [label for label in labels if label not in have]
        for label in missing:
            at = labels.index(label)
            after = next((x for x in reversed(labels[:at]) if x in have), None)
            before = None if after is not None else next((x for x in labels[at + 1:] if x in have), None)
            steps.append(Step("add_enum_value", f'add missing value {label!r} to enum "{name}"',
                              (q.add_enum_value(schema, name, label, after=after, before=before),)))
        kept = [x for x in have if x in labels]
        if kept != [x for x in labels if x in have]:
            unresolved.append(f'enum "{name}" has its values in another order than the contract')
    return steps


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
        if (live_col.identity, live_col.generated) != (col.identity, col.generated):
            unresolved.append(f'{where}."{col.name}" is generated otherwise than the contract says')
        elif col.default is not None and not same_default(col.default, live_col.default):
            steps.append(Step("set_default", f'set default of {where}."{col.name}" to {col.default}'
                              f' (was {live_col.default or "none"})',
                              (q.set_default(schema, want.name, col),)))
        elif col.default is None and live_col.default is not None:
            unresolved.append(f'{where}."{col.name}" defaults to {live_col.default},'
                              " the contract has no default")
    return steps


def _same_index(a: Index, b: Index) -> bool:
    return (a.definition, a.unique, a.primary) == (b.definition, b.unique, b.primary)


def _indexes(schema: str, want: Table, got: Table | None, unresolved: list[str], big: bool,
             needed_by: str | None) -> list[Step]:
    if got is None:  # created just now, with its primary key
        return [s for i in want.indexes if not i.primary for s in _create_index(schema, want.name, i)]
    steps = []
    contract_names = {i.name for i in want.indexes}
    for idx in want.indexes:
        live_idx = got.index(idx.name)
        if live_idx is not None:
            if not _same_index(idx, live_idx):
                unresolved.append(f'index "{idx.name}" on "{want.name}" is {describe_index(live_idx)},'
                                  f" the contract says {describe_index(idx)}")
            continue
        twin = next((i for i in got.indexes
                     if i.name not in contract_names and i.valid and _same_index(i, idx)), None)
        if twin is not None:
            steps.append(Step("rename_index", f'rename index "{twin.name}" to "{idx.name}"',
                              (q.rename_index(schema, twin.name, idx.name),)))
        elif idx.primary and any(i.primary for i in got.indexes):
            unresolved.append(f'"{want.name}" has a primary key on other columns than {idx.columns}')
        elif created := (_build_concurrently(schema, want.name, idx, needed_by) if big
                         else _create_index(schema, want.name, idx)):
            steps += created
        else:
            unresolved.append(f'exclusion constraint "{idx.name}" on "{want.name}" is missing')
    return steps


def _create_index(schema: str, table: str, idx: Index) -> list[Step]:
    """In a short transaction: for a table just created, or one too small to make anyone wait."""
    if idx.constraint == "x":  # an exclusion constraint: its definition is not the index's
        return []
    if idx.primary:
        return [Step("add_primary_key", f'add primary key "{idx.name}"',
                     (q.add_primary_key(schema, table, idx),))]
    if idx.constraint == "u":
        return [Step("add_unique_constraint", f'add unique constraint "{idx.name}"',
                     (q.add_unique_constraint(schema, table, idx),))]
    return [Step("create_index", f'create missing index "{idx.name}"', (q.create_index(schema, table, idx),))]


def _build_concurrently(schema: str, table: str, idx: Index, needed_by: str | None) -> list[Step]:
    """CREATE [UNIQUE] INDEX CONCURRENTLY: the table's reads and writes go on during the build; a
    primary key or unique constraint is then attached to the index in a short transaction."""
    if idx.constraint == "x":
        return []
    unique = idx.unique or idx.primary
    details: dict[str, int | str] = {"table": table, "index": idx.name, "columns": ", ".join(idx.columns)}
    if unique and needed_by:
        details["needed_by"] = needed_by
    build = Step("create_index_concurrently",
                 f'build missing {"unique " if unique else ""}index "{idx.name}" on "{table}" concurrently',
                 (q.create_index_concurrently(schema, table, idx, unique=unique),), details=details,
                 outside_transaction=True)
    if not (idx.primary or idx.constraint == "u"):
        return [build]
    kind = "primary key" if idx.primary else "unique constraint"
    return [build, Step("attach_index", f'make index "{idx.name}" the {kind} of "{table}"',
                        (q.attach_index(schema, table, idx),), details={"table": table, "index": idx.name})]


def _constraints(schema: str, want: Table, got: Table | None, unresolved: list[str]
                 ) -> tuple[list[Step], list[str]]:
    """Foreign keys and CHECKs: renamed from a twin, else added NOT VALID (validated after commit)."""
    steps: list[Step] = []
    added: list[str] = []
    wanted: list[ForeignKey | Check] = [*want.foreign_keys, *want.checks]
    have: list[ForeignKey | Check] = [*got.foreign_keys, *got.checks] if got else []
    names = {c.name for c in wanted}
    for con in wanted:
        kind = "foreign key" if isinstance(con, ForeignKey) else "check constraint"
        live_con = next((c for c in have if c.name == con.name), None)
        if live_con is not None:
            if live_con.definition != con.definition:
                unresolved.append(f'{kind} "{con.name}" on "{want.name}" is {live_con.definition},'
                                  f" the contract says {con.definition}")
            continue
        twin = next((c for c in have if c.name not in names and c.definition == con.definition), None)
        if twin is not None:
            steps.append(Step("rename_constraint", f'rename {kind} "{twin.name}" to "{con.name}"',
                              (q.rename_constraint(schema, want.name, twin.name, con.name),)))
            continue
        action = "add_foreign_key" if isinstance(con, ForeignKey) else "add_check"
        steps.append(Step(action, f'add {kind} "{con.name}" (NOT VALID, validated after)',
                          (q.add_constraint(schema, want.name, con.name, con.definition),)))
        added.append(con.name)
    return steps, added
