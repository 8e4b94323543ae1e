"""Our app's history, as a plug-in to the generic runner: everything the core does not know.

The core knows migrations folders, ledgers, catalogs and locks.  This module knows
what HISTORY.md tells about one Shopify app, behind the narrow hook ``History``:

- the retired migration names (the SQLite era and the deleted lowercase migration)
  whose failed ledger rows are closed as `prisma migrate resolve --rolled-back` would;
- the baseline rule: the app's PostgreSQL baseline is idempotent, so on a database
  that already has app tables (the `db push` era, Prisma's P3005) the tables are
  healed to what the baseline builds, then the baseline runs and is recorded;
- the Session fix.  Shopify's PrismaSessionStorage reads and writes the table of
  its model; where the app's contract has "Session" (and no "session"), the
  lowercase era's "session" is brought back:

  - only "session": renamed to "Session", its key and index given Prisma's names;
  - both, "session" empty: the empty "session" is dropped (checked empty again under lock);
  - both, "Session" empty: the empty "Session" is dropped and "session" takes its name;
  - both populated: every row of "session" whose id "Session" lacks is copied into
    "Session", in batches of short transactions (a rerun after an interruption copies
    only what is still missing); then one last transaction stops writes to "session" (SHARE ROW
    EXCLUSIVE), copies the ids still missing (rows an old pod wrote meanwhile) and renames it,
    so no row written to "session" is left behind.  On the same id, the row already in "Session"
    wins: it is the one the running app wrote last, since the app went back to "Session".  The row
    that lost is not deleted: the old table is kept, whole, as "session_merged_<YYYYMMDD>".

  An app whose own model is named "session" has "session" in its contract: then
  nothing here touches it.

Pure functions of inspected data, like the planner that calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from job import statements as q
from job.migrations import Migration
from job.schemamodel import Catalog, Schema
from job.state import DatabaseState
from job.steps import Step

# Migrations the app once had and has deleted from its folder (HISTORY.md).
# Their rows are still found in production ledgers: failed ones are closed as
# `prisma migrate resolve --rolled-back` would, finished ones are left alone.
LOWERCASE_MIGRATION = "20251204205052_map_session_table_to_lowercase"
RETIRED = frozenset({
    "20251008130439_update_for_new_pricing",
    "20251013000000_add_billing_status",
    "20251013115957_add_billing_status",
    "20251019164828_add_product_image_url",
    "20251023234506_add_product_url_to_profile",
    "20251024000500_add_price_to_product_profile",
    LOWERCASE_MIGRATION,
})
# The idempotent baseline: safe to run over tables that exist (IF NOT EXISTS everywhere).
BASELINE = "20251024020000_postgresql_baseline_migration"
# The Session fix: idempotent too (it looks at what is there, and changes nothing twice).
SESSION_FIX = "20251213003742_fix_session_table_uppercase"

LOWER, UPPER = "session", "Session"
# Prisma's names for the key and index; the lowercase era left them lowercase.
INDEX_RENAMES = (("session_pkey", "Session_pkey"), ("session_shop_idx", "Session_shop_idx"))
MERGED_PREFIX = "session_merged_"


@dataclass(frozen=True)
class Resolution:
    before: tuple[Step, ...]  # renames and drops, first in the transaction
    merge: Step | None  # the copy, after "Session" has been healed to the contract
    live: Schema  # the tables as they will be once `before` has run


def resolve(state: DatabaseState, contract: Catalog | None, today: date) -> Resolution:
    tables, live, schema = state.tables, dict(state.live), state.schema
    if LOWER not in tables or not _fix_applies(contract):
        return Resolution((), None, live)
    assert contract is not None
    contract_columns = tuple(c.name for c in contract.tables[UPPER].columns)
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
    shared = state.shared_ids
    copied = lower_rows - shared
    live = dict(live)
    if lower:
        live[kept_as] = replace(live.pop(LOWER), name=kept_as)
    step = Step(
        "merge_session_tables",
        f'copy {copied} sessions from "{LOWER}" into "{UPPER}" ({shared} ids in both: "{UPPER}"\'s row'
        f' kept), then keep "{LOWER}" whole as "{kept_as}"',
        (q.copy_missing_batch(schema, LOWER, UPPER, columns), q.lock_against_writes(schema, LOWER),
         q.copy_missing(schema, LOWER, UPPER, columns), q.rename_table(schema, LOWER, kept_as)),
        details={"rows_in_session": lower_rows, "rows_in_Session": upper_rows, "shared_ids": shared,
                 "rows_copied": copied, "kept_as": kept_as})
    return Resolution((), step, live)


def _free_name(relations: frozenset[str], wanted: str) -> str:
    name, n = wanted, 1
    while name in relations:
        n += 1
        name = f"{wanted}_{n}"
    return name


def runs_again_safely(migration: str) -> bool:
    """A migration whose failed row may be closed and the file run again whatever it left: the baseline
    (IF NOT EXISTS everywhere) and the Session fix (it changes nothing twice)."""
    return migration in (BASELINE, SESSION_FIX)


def is_kept_copy(table: str) -> bool:
    """A dated copy this job kept on purpose: allowed beside the contract."""
    return table.startswith(MERGED_PREFIX)


def _fix_applies(contract: Catalog | None) -> bool:
    """The app's contract has "Session" and not "session": the lowercase table is the era's mistake."""
    return contract is not None and UPPER in contract.tables and LOWER not in contract.tables


# --- the hook the core calls ------------------------------------------------------------------

COUNTED = (LOWER, UPPER)  # tables whose rows (and shared ids) inspection reads when they exist


def needs_look(state: DatabaseState) -> bool:
    """Worth a replay of the contract even when the ledger says all is applied.

    The lowercase era's marks: "session" beside "Session", or "session" with a ledger that
    saw the lowercase migration (an app whose model is "session" shows neither); and our
    app's ledger with neither table at all: Shopify's session storage would fail at once.
    """
    if UPPER not in state.tables and state.applied(BASELINE):
        return True
    if LOWER not in state.tables:
        return False
    return UPPER in state.tables or any(r.migration_name == LOWERCASE_MIGRATION for r in state.ledger or ())


def heal_through(state: DatabaseState, migrations: Sequence[Migration]) -> Migration | None:
    """The baseline rule: pending, over app tables that exist, it is healed to and then run."""
    baseline = next((m for m in migrations if m.name == BASELINE), None)
    app_tables = state.tables - {q.LEDGER} - {t for t in state.tables if is_kept_copy(t)}
    if baseline is None or state.applied(baseline.name) or not app_tables:
        return None
    return baseline

