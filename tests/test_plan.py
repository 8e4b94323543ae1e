"""The planner is a pure function: these tests need no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from catalogjson import load_contract

from job.app_history import BASELINE as BASELINE_NAME
from job.app_history import RETIRED
from job.errors import NeedsHuman
from job.migrations import load_migrations
from job.plan import Plan, heal_target, make_plan, settled
from job.schemamodel import Catalog, Schema, Table
from job.state import DatabaseState, LedgerRow, TableSize

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = load_migrations(ROOT / "prisma" / "migrations")
CONTRACT = load_contract().tables
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TODAY = date(2026, 11, 22)
BASELINE, FIX = (m.name for m in MIGRATIONS)
assert BASELINE == BASELINE_NAME
RETIRED_SQLITE = "20251008130439_update_for_new_pricing"
assert RETIRED_SQLITE in RETIRED


def row(name: str, *, finished: bool = True, rolled_back: bool = False) -> LedgerRow:
    checksum = next((m.checksum for m in MIGRATIONS if m.name == name), "0" * 64)
    return LedgerRow(id=f"id-{name}", migration_name=name, checksum=checksum, started_at=NOW,
                     finished_at=NOW if finished else None, rolled_back_at=NOW if rolled_back else None,
                     applied_steps_count=1 if finished else 0)


def state_with(live: Schema, **kw: object) -> DatabaseState:
    names = frozenset(live)
    relations = names | {i.name for t in live.values() for i in t.indexes}
    base = DatabaseState(server_version=160002, in_recovery=False, read_only=False, schema="public",
                         schema_exists=True, tables=names, relations=relations, ledger=None,
                         catalog=Catalog(live))
    return replace(base, **kw)  # type: ignore[arg-type]


def with_live(state: DatabaseState, live: Schema) -> DatabaseState:
    return replace(state, catalog=Catalog(live), tables=frozenset(live))


def lowercase(table: Table) -> Table:
    """"Session" as the lowercase era left it."""
    return replace(table, name="session", indexes=tuple(
        replace(i, name=i.name.replace("Session_", "session_")) for i in table.indexes))


EMPTY = state_with({})
FIXED = state_with(dict(CONTRACT), ledger=(row(BASELINE), row(FIX)))


def plan_of(state: DatabaseState) -> Plan:
    """As the runner plans: healing aims at what the recorded migrations (or the baseline rule) built."""
    target = Catalog(CONTRACT) if BASELINE in {m.name for m in heal_target(state, MIGRATIONS)} else Catalog()
    return make_plan(state, MIGRATIONS, target=target, contract=Catalog(CONTRACT), today=TODAY)


def actions(state: DatabaseState) -> list[str]:
    return [s.action for s in plan_of(state).steps]


def test_empty_database_gets_ledger_and_both_migrations() -> None:
    assert actions(EMPTY) == ["create_ledger", "apply_migration", "apply_migration"]


def test_missing_schema_is_created_first() -> None:
    assert actions(replace(EMPTY, schema="shop_app", schema_exists=False))[0] == "create_schema"


def test_fixed_database_needs_nothing_and_is_settled_without_the_contract() -> None:
    plan = plan_of(FIXED)
    assert plan.empty and plan.notes == () and plan.unresolved == () and plan.validations == ()
    assert settled(FIXED, MIGRATIONS)


@pytest.mark.parametrize("state", [
    replace(FIXED, ledger=(row(BASELINE),)),
    replace(FIXED, ledger=(row(BASELINE), row(FIX),
                           row("20251008130439_update_for_new_pricing", finished=False))),
    replace(FIXED, ledger=(row(BASELINE), row(FIX)), tables=frozenset({"_prisma_migrations"})),
    replace(FIXED, tables=FIXED.tables | {"session"}),
    replace(FIXED, tables=FIXED.tables - {"Session"}),  # our app's sessions gone: the storage would fail
    replace(FIXED, tables=FIXED.tables - {"Session"} | {"session"}),  # renamed by hand, no ledger row
    replace(FIXED, unvalidated=frozenset({"ProductProfile_tenantId_fkey"})),  # a run stopped before VALIDATE
    replace(FIXED, schema_exists=False),
    replace(FIXED, ledger=None),
], ids=["pending", "failed_retired_row", "no_tables", "session_beside_Session", "no_Session",
        "only_session_no_ledger_row", "not_validated_untried", "no_schema", "no_ledger"])
def test_anything_worth_a_look_is_not_settled(state: DatabaseState) -> None:
    assert not settled(state, MIGRATIONS)


def test_the_app_model_named_session_is_left_alone() -> None:
    """A Shopify app whose own model is "session": the contract has "session", nothing is renamed."""
    mine = {"session": lowercase(CONTRACT["Session"])}
    state = state_with(mine, ledger=(row(BASELINE), row(FIX)), row_counts=(("session", 3),))
    # Our baseline's name with no "Session" is worth one replay (Shopify's storage would fail if the
    # model were "Session"); the contract then says "session" is the model: nothing to do.
    assert not settled(state, MIGRATIONS)
    plan = make_plan(state, MIGRATIONS, target=Catalog(mine), contract=Catalog(mine), today=TODAY)
    assert plan.empty and plan.unresolved == ()


def test_sqlite_era_failed_row_is_closed_then_everything_applied() -> None:
    state = replace(EMPTY, ledger=(row("20251008130439_update_for_new_pricing", finished=False),))
    plan = plan_of(state)
    assert [s.action for s in plan.steps][:1] == ["close_failed_row"]
    assert plan.ledger_rows_repaired == 1
    assert plan.migrations_applied == (BASELINE, FIX)
    assert "rolled_back_at = pg_catalog.now()" in plan.steps[0].sql_text()


def test_lowercase_session_is_renamed_before_anything_else() -> None:
    live = {k: v for k, v in CONTRACT.items() if k != "Session"} | {"session": lowercase(CONTRACT["Session"])}
    state = state_with(live, ledger=(row(BASELINE), row("20251204205052_map_session_table_to_lowercase")),
                       row_counts=(("session", 25),))
    plan = plan_of(state)
    assert [s.action for s in plan.steps] == ["rename_session_table", "apply_migration"]
    text = plan.steps[0].sql_text()
    assert 'ALTER TABLE "public"."session" RENAME TO "Session"' in text
    assert 'ALTER INDEX "public"."session_pkey" RENAME TO "Session_pkey"' in text
    assert 'ALTER INDEX "public"."session_shop_idx" RENAME TO "Session_shop_idx"' in text


def with_both(lower_rows: int, upper_rows: int, shared: int = 0) -> DatabaseState:
    live = dict(CONTRACT) | {"session": lowercase(CONTRACT["Session"])}
    return state_with(live, ledger=(row(BASELINE), row(FIX)), shared_ids=shared,
                      row_counts=(("session", lower_rows), ("Session", upper_rows)))


def test_both_tables_with_empty_lowercase_drops_only_the_empty_one() -> None:
    plan = plan_of(with_both(0, 5))
    assert [s.action for s in plan.steps] == ["drop_empty_session"]
    text = plan.steps[0].sql_text()
    assert 'DROP TABLE "public"."session"' in text and 'IF EXISTS (SELECT 1 FROM "public"."session")' in text


def test_both_tables_with_empty_uppercase_keeps_the_populated_one_as_session() -> None:
    plan = plan_of(with_both(8, 0))
    assert [s.action for s in plan.steps] == ["drop_empty_session", "rename_session_table"]
    assert 'DROP TABLE "public"."Session"' in plan.steps[0].sql_text()
    # "Session_pkey" is free once the empty "Session" is gone
    assert 'RENAME TO "Session_pkey"' in plan.steps[1].sql_text()


def test_both_populated_are_merged_and_the_old_table_kept_under_a_dated_name() -> None:
    plan = plan_of(with_both(10, 4, shared=3))
    assert [s.action for s in plan.steps] == ["merge_session_tables"]
    step = plan.steps[0]
    assert step.details["rows_copied"] == 7 and step.details["shared_ids"] == 3
    text = step.sql_text()
    assert 'INSERT INTO "public"."Session"' in text and "WHERE NOT EXISTS" in text
    assert 'RENAME TO "session_merged_20261122"' in text
    assert "DROP" not in text


def test_merge_name_never_collides_with_an_earlier_copy() -> None:
    state = with_both(2, 2)
    state = replace(state, relations=state.relations | {"session_merged_20261122"})
    assert 'RENAME TO "session_merged_20261122_2"' in plan_of(state).steps[0].sql_text()


def test_partial_schema_is_healed_before_the_baseline() -> None:
    session = CONTRACT["Session"]
    cut = replace(session, columns=tuple(c for c in session.columns
                                         if c.name not in ("refreshToken", "refreshTokenExpires")),
                  indexes=tuple(i for i in session.indexes if i.primary))
    tenant = replace(CONTRACT["Tenant"], foreign_keys=())
    state = state_with({"Session": cut, "Tenant": tenant, "Plan": CONTRACT["Plan"]},
                       ledger=(row("20251008130439_update_for_new_pricing", finished=False),))
    plan = plan_of(state)
    acts = [s.action for s in plan.steps]
    assert acts.count("add_column") == 2
    assert "create_index" in acts and acts.count("create_table") == 15
    assert acts.index("add_foreign_key") < acts.index("apply_migration")
    assert any("NOT VALID" in s.sql_text() for s in plan.steps if s.action == "add_foreign_key")
    assert {s.details["constraint"] for s in plan.validations} >= {"Tenant_planId_fkey"}


def test_index_under_another_name_is_renamed_not_duplicated() -> None:
    session = CONTRACT["Session"]
    odd = replace(session, indexes=tuple(replace(i, name="shop_lookup") if not i.primary else i
                                         for i in session.indexes))
    plan = plan_of(with_live(FIXED, dict(CONTRACT) | {"Session": odd}))
    assert [s.action for s in plan.steps] == ["rename_index"]


def test_wrong_type_and_nullability_are_reported_not_rewritten() -> None:
    session = CONTRACT["Session"]
    cols = tuple(replace(c, type="text") if c.name == "expires" else
                 replace(c, nullable=True) if c.name == "shop" else c for c in session.columns)
    plan = plan_of(with_live(FIXED, dict(CONTRACT) | {"Session": replace(session, columns=cols)}))
    assert plan.empty
    assert len(plan.unresolved) == 2
    assert any('"expires" is text' in u for u in plan.unresolved)


def test_rows_ahead_of_the_job_are_left_alone() -> None:
    state = replace(FIXED, ledger=(*(FIXED.ledger or ()), row("20260301000000_add_wishlist"),
                                   row("20260302000000_broken", finished=False)))
    plan = plan_of(state)
    assert plan.empty
    assert any("20260302000000_broken" in n for n in plan.notes)


def test_ahead_database_is_not_healed_to_an_older_contract() -> None:
    state = with_live(replace(FIXED, ledger=(*(FIXED.ledger or ()), row("20260301000000_drop_alerts"))),
                      {k: v for k, v in CONTRACT.items() if k != "Alert"})
    plan = plan_of(state)
    assert plan.empty and plan.unresolved == ()
    assert any("not healed back" in n for n in plan.notes)


def test_rolled_back_rows_count_as_pending_like_prisma() -> None:
    state = replace(FIXED, ledger=(row(BASELINE), row(FIX, finished=False, rolled_back=True)))
    assert actions(state) == ["apply_migration"]


def test_recorded_migrations_whose_tables_are_gone_are_healed_back() -> None:
    """Tables dropped by hand after their migration was recorded: created again from the contract."""
    plan = plan_of(replace(EMPTY, ledger=(row(BASELINE), row(FIX))))
    acts = [s.action for s in plan.steps]
    assert acts.count("create_table") == len(CONTRACT) and "apply_migration" not in acts
    assert not any(s.ledger_change for s in plan.steps)


def test_pending_migrations_are_never_healed_ahead() -> None:
    """A pending migration adds a column: healing aims at the recorded state, so the migration runs."""
    tenant = CONTRACT["Tenant"]
    newer = dict(CONTRACT) | {"Tenant": replace(tenant, columns=(*tenant.columns, replace(
        tenant.columns[0], name="wishlistCount", type="integer", default="0")))}
    plan = make_plan(FIXED, MIGRATIONS, target=Catalog(CONTRACT), contract=Catalog(newer), today=TODAY)
    assert plan.empty  # nothing recorded is missing; the new column belongs to the pending file


def test_an_invalid_index_of_the_contract_is_dropped_then_built_again() -> None:
    session = CONTRACT["Session"]
    broken = replace(session, indexes=tuple(replace(i, valid=False) if not i.primary else i
                                            for i in session.indexes))
    plan = plan_of(with_live(replace(FIXED, ledger=(row(BASELINE),)), dict(CONTRACT) | {"Session": broken}))
    acts = [s.action for s in plan.steps]
    assert acts[:1] == ["drop_invalid_index"] and "create_index" in acts
    assert acts.index("create_index") < acts.index("apply_migration")


def test_unvalidated_foreign_keys_are_retried_without_forcing_a_run() -> None:
    plan = plan_of(replace(FIXED, unvalidated=frozenset({"Tenant_planId_fkey"})))
    assert plan.empty
    assert [s.details["constraint"] for s in plan.validations] == ["Tenant_planId_fkey"]


@pytest.mark.parametrize("change, words", [
    ({"server_version": 110022}, "PostgreSQL 11 is not supported"),
    ({"in_recovery": True}, "standby"),
    ({"read_only": True}, "read-only"),
])
def test_unsafe_servers_are_refused(change: dict[str, object], words: str) -> None:
    with pytest.raises(NeedsHuman) as err:
        plan_of(replace(EMPTY, **change))  # type: ignore[arg-type]
    assert words in err.value.reason


def test_every_retired_name_is_a_known_history_entry() -> None:
    assert len(RETIRED) == 7
    assert not RETIRED & {m.name for m in MIGRATIONS}


def test_ledger_rows_are_recorded_like_prisma_deploy() -> None:
    unit = next(s for s in plan_of(EMPTY).steps if s.action == "apply_migration")
    started, script, finished = (s.as_string() for s in unit.statements)
    assert MIGRATIONS[0].checksum in started and "NULL, NULL, pg_catalog.clock_timestamp(), 0)" in started
    assert script == MIGRATIONS[0].sql
    assert "applied_steps_count = 1, finished_at = pg_catalog.clock_timestamp()" in finished


def _without_product_indexes(state: DatabaseState) -> DatabaseState:
    products = CONTRACT["ProductProfile"]
    live = dict(CONTRACT) | {"ProductProfile": replace(products, indexes=tuple(
        i for i in products.indexes if i.primary))}
    return with_live(state, live)


def test_indexes_of_a_big_table_are_built_concurrently_and_of_a_small_one_in_a_transaction() -> None:
    partial = replace(_without_product_indexes(EMPTY), ledger=(row(RETIRED_SQLITE, finished=False),))
    small = plan_of(replace(partial, sizes=(TableSize("ProductProfile", 9_999.0, 100, 9_999, False),)))
    big = plan_of(replace(partial, sizes=(TableSize("ProductProfile", 10_000.0, 100, 10_000, False),)))
    assert {s.action for s in small.healing} == {"create_index"}
    assert all(not s.outside_transaction for s in small.healing)
    assert {s.action for s in big.healing} == {"create_index_concurrently"}
    assert all(s.outside_transaction and "CONCURRENTLY" in s.sql_text() for s in big.healing)
    unique = next(s for s in big.healing if str(s.details.get("index", "")).endswith("_key"))
    assert unique.details["needed_by"] == BASELINE  # the baseline would build it too: duplicates stop the run


def test_an_invalid_index_is_dropped_concurrently_then_built_again() -> None:
    products = CONTRACT["ProductProfile"]
    broken = replace(products, indexes=tuple(replace(i, valid=i.primary) for i in products.indexes))
    state = with_live(FIXED, dict(CONTRACT) | {"ProductProfile": broken})
    state = replace(state, invalid_indexes=frozenset(i.name for i in broken.indexes if not i.valid))
    plan = plan_of(state)
    drops = [s for s in plan.healing if s.action == "drop_invalid_index"]
    assert drops and all(s.outside_transaction and "DROP INDEX CONCURRENTLY" in s.sql_text() for s in drops)
    assert plan.prepare == ()


def test_constraints_whose_rows_refused_validation_wait_for_heal_always() -> None:
    name = "ProductProfile_tenantId_fkey"
    tried = replace(FIXED, unvalidated=frozenset({name}), refused=frozenset({name}))
    assert settled(tried, MIGRATIONS)
    quiet = make_plan(tried, MIGRATIONS, target=Catalog(CONTRACT), contract=Catalog(CONTRACT), today=TODAY,
                      retry_refused=False)
    again = make_plan(tried, MIGRATIONS, target=Catalog(CONTRACT), contract=Catalog(CONTRACT), today=TODAY)
    assert quiet.validations == ()
    assert [s.details["constraint"] for s in again.validations] == [name]
