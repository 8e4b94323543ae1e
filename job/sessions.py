"""The Session table in every state the lowercase era left, without losing a row.

Shopify's PrismaSessionStorage reads and writes "Session" only.  The rules:

- only "session": renamed to "Session", its key and index given Prisma's names;
- both, "session" empty: the empty "session" is dropped (checked empty again under lock);
- both, "Session" empty: the empty "Session" is dropped and "session" takes its name;
- both populated: every row of "session" whose id "Session" lacks is copied into
  "Session".  On the same id, the row already in "Session" wins: it is the one the
  running app wrote last, since the app went back to "Session".  The row that lost
  is not deleted: the old table is kept, whole, as "session_merged_<YYYYMMDD>".

Pure functions of inspected data, like the planner that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from job import statements as q
from job.schemamodel import Schema, Table
from job.state import DatabaseState
from job.steps import Step

LOWER, UPPER = "session", "Session"
# Prisma's names for the key and index; the lowercase era left them lowercase.
INDEX_RENAMES = (("session_pkey", "Session_pkey"), ("session_shop_idx", "Session_shop_idx"))
MERGED_PREFIX = "session_merged_"


@dataclass(frozen=True)
class Resolution:
    before: tuple[Step, ...]  # renames and drops, first in the transaction
    merge: Step | None  # the copy, after "Session" has been healed to the contract
    live: Schema  # the tables as they will be once `before` has run


def resolve(state: DatabaseState, contract_columns: tuple[str, ...], today: date) -> Resolution:
    tables, live, schema = state.tables, dict(state.live), state.schema
    if LOWER not in tables:
        return Resolution((), None, live)
    lower_rows, upper_rows = state.rows_in(LOWER) or 0, state.rows_in(UPPER) or 0

    if UPPER not in tables:
        step, live = _rename_lower(state, live, freed=frozenset())
        return Resolution((step,), None, live)
    if lower_rows == 0:
        live.pop(LOWER, None)
        return Resolution((Step("drop_empty_session", f'drop the empty "{LOWER}" that shadows "{UPPER}"',
                                (q.drop_if_empty(schema, LOWER),)),), None, live)
    if upper_rows == 0:
        freed = frozenset(i.name for i in live[UPPER].indexes) if UPPER in live else frozenset()
        live.pop(UPPER, None)
        drop = Step("drop_empty_session", f'drop the empty "{UPPER}"; "{LOWER}" holds the sessions',
                    (q.drop_if_empty(schema, UPPER),))
        rename, live = _rename_lower(state, live, freed)
        return Resolution((drop, rename), None, live)
    return _merge(state, live, contract_columns, today, lower_rows, upper_rows)


def _rename_lower(state: DatabaseState, live: Schema, freed: frozenset[str]) -> tuple[Step, Schema]:
    schema = state.schema
    taken = (state.relations - freed) | {UPPER}
    statements = [q.rename_table(schema, LOWER, UPPER)]
    renames = {old: new for old, new in INDEX_RENAMES if old in state.relations and new not in taken}
    statements += [q.rename_index(schema, old, new) for old, new in renames.items()]
    live = dict(live)
    if LOWER in live:
        t = live.pop(LOWER)
        live[UPPER] = replace(t, name=UPPER, indexes=tuple(
            replace(i, name=renames.get(i.name, i.name)) for i in t.indexes))
    step = Step("rename_session_table", f'rename "{LOWER}" to "{UPPER}" with Prisma\'s key and index names',
                tuple(statements))
    return step, live


def _merge(state: DatabaseState, live: Schema, contract_columns: tuple[str, ...], today: date,
           lower_rows: int, upper_rows: int) -> Resolution:
    schema = state.schema
    kept_as = _free_name(state.relations, f"{MERGED_PREFIX}{today:%Y%m%d}")
    lower = live.get(LOWER)
    lower_cols = {c.name for c in lower.columns} if lower else set()
    columns = [c for c in contract_columns if c in lower_cols]
    shared = state.shared_session_ids
    copied = lower_rows - shared
    live = dict(live)
    if lower:
        live[kept_as] = replace(live.pop(LOWER), name=kept_as)
    step = Step(
        "merge_session_tables",
        f'copy {copied} sessions from "{LOWER}" into "{UPPER}" ({shared} ids in both: "{UPPER}"\'s row'
        f' kept), then keep "{LOWER}" whole as "{kept_as}"',
        (q.copy_missing_rows(schema, LOWER, UPPER, columns), q.rename_table(schema, LOWER, kept_as)),
        details={"rows_in_session": lower_rows, "rows_in_Session": upper_rows, "shared_ids": shared,
                 "rows_copied": copied, "kept_as": kept_as})
    return Resolution((), step, live)


def _free_name(relations: frozenset[str], wanted: str) -> str:
    name, n = wanted, 1
    while name in relations:
        n += 1
        name = f"{wanted}_{n}"
    return name


def is_kept_copy(table: str) -> bool:
    """A dated copy this job kept on purpose: allowed beside the contract."""
    return table.startswith(MERGED_PREFIX)


def session_columns(contract: Schema) -> tuple[str, ...]:
    table: Table | None = contract.get(UPPER)
    return tuple(c.name for c in table.columns) if table else ("id",)

