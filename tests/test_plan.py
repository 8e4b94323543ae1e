"""The planner is a pure function: these tests need no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from job.contract import load_contract
from job.errors import NeedsHuman
from job.migrations import RETIRED, load_migrations
from job.plan import make_plan
from job.state import DatabaseState, LedgerRow

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = load_migrations(ROOT / "prisma" / "migrations")
CONTRACT = frozenset(load_contract(ROOT / "prisma" / "schema.prisma"))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASELINE, FIX = (m.name for m in MIGRATIONS)


def row(name: str, *, finished: bool = True, rolled_back: bool = False) -> LedgerRow:
    return LedgerRow(id=f"id-{name}", migration_name=name, checksum="0" * 64, started_at=NOW,
                     finished_at=NOW if finished else None, rolled_back_at=NOW if rolled_back else None,
                     applied_steps_count=1 if finished else 0)


EMPTY = DatabaseState(server_version=160002, in_recovery=False, read_only=False, schema="public",
                      schema_exists=True, tables=frozenset(), relations=frozenset(), ledger=None)
FIXED = replace(EMPTY, tables=CONTRACT | {"_prisma_migrations"},
                ledger=(row(BASELINE), row(FIX)))


def actions(state: DatabaseState) -> list[str]:
    return [s.action for s in make_plan(state, MIGRATIONS, CONTRACT).steps]


def test_empty_database_gets_ledger_and_both_migrations() -> None:
    assert actions(EMPTY) == ["create_ledger", "apply_migration", "record_migration",
                              "apply_migration", "record_migration"]


def test_missing_schema_is_created_first() -> None:
    assert actions(replace(EMPTY, schema="shop_app", schema_exists=False))[0] == "create_schema"


def test_fixed_database_needs_nothing() -> None:
    plan = make_plan(FIXED, MIGRATIONS, CONTRACT)
    assert plan.empty
    assert plan.notes == ()


def test_sqlite_era_failed_row_is_closed_then_everything_applied() -> None:
    state = replace(EMPTY, tables=frozenset({"_prisma_migrations"}),
                    ledger=(row("20251008130439_update_for_new_pricing", finished=False),))
    plan = make_plan(state, MIGRATIONS, CONTRACT)
    assert [s.action for s in plan.steps][:1] == ["close_failed_row"]
    assert plan.ledger_rows_repaired == 1
    assert plan.migrations_applied == (BASELINE, FIX)
    assert "rolled_back_at = now()" in plan.steps[0].sql_text()


def test_lowercase_session_is_renamed_before_anything_else() -> None:
    tables = (CONTRACT - {"Session"}) | {"session", "_prisma_migrations"}
    state = replace(EMPTY, tables=tables, relations=tables | {"session_pkey", "session_shop_idx"},
                    ledger=(row(BASELINE), row("20251204205052_map_session_table_to_lowercase")),
                    row_counts=(("session", 25),))
    plan = make_plan(state, MIGRATIONS, CONTRACT)
    assert [s.action for s in plan.steps] == ["rename_session_table", "apply_migration", "record_migration"]
    text = plan.steps[0].sql_text()
    assert 'ALTER TABLE "public"."session" RENAME TO "Session"' in text
    assert 'ALTER INDEX "public"."session_pkey" RENAME TO "Session_pkey"' in text
    assert 'ALTER INDEX "public"."session_shop_idx" RENAME TO "Session_shop_idx"' in text


def test_both_session_tables_populated_is_refused_not_guessed() -> None:
    state = replace(FIXED, tables=FIXED.tables | {"session"}, row_counts=(("session", 3), ("Session", 2)))
    with pytest.raises(NeedsHuman) as err:
        make_plan(state, MIGRATIONS, CONTRACT)
    assert "3 rows" in err.value.reason and "refusing to guess" in err.value.reason


def test_rows_ahead_of_the_job_are_left_alone() -> None:
    state = replace(FIXED, ledger=(*(FIXED.ledger or ()), row("20260301000000_add_wishlist"),
                                   row("20260302000000_broken", finished=False)))
    plan = make_plan(state, MIGRATIONS, CONTRACT)
    assert plan.empty
    assert len(plan.notes) == 1 and "20260302000000_broken" in plan.notes[0]


def test_rolled_back_rows_count_as_pending_like_prisma() -> None:
    state = replace(FIXED, ledger=(row(BASELINE), row(FIX, finished=False, rolled_back=True)))
    assert actions(state) == ["apply_migration", "record_migration"]


def test_recorded_baseline_with_missing_tables_is_reapplied() -> None:
    state = replace(FIXED, tables=FIXED.tables - {"Lead", "Plan"})
    plan = make_plan(state, MIGRATIONS, CONTRACT)
    assert [s.action for s in plan.steps] == ["reapply_baseline"]
    assert "Lead" in plan.steps[0].summary and not plan.steps[0].ledger_change


@pytest.mark.parametrize("change, words", [
    ({"server_version": 110022}, "PostgreSQL 11 is not supported"),
    ({"in_recovery": True}, "standby"),
    ({"read_only": True}, "read-only"),
])
def test_unsafe_servers_are_refused(change: dict[str, object], words: str) -> None:
    with pytest.raises(NeedsHuman) as err:
        make_plan(replace(EMPTY, **change), MIGRATIONS, CONTRACT)  # type: ignore[arg-type]
    assert words in err.value.reason


def test_every_retired_name_is_a_known_history_entry() -> None:
    assert len(RETIRED) == 7
    assert not RETIRED & {m.name for m in MIGRATIONS}


def test_ledger_rows_are_recorded_like_prisma_deploy() -> None:
    plan = make_plan(EMPTY, MIGRATIONS, CONTRACT)
    record = next(s for s in plan.steps if s.action == "record_migration")
    text = record.sql_text()
    assert MIGRATIONS[0].checksum in text and "applied_steps_count" in text
    assert "clock_timestamp()" in text and ", 1)" in text
