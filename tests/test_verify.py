"""verify: silent on a healthy database, precise on a damaged one; run heals what it safely can."""

from __future__ import annotations

import json

from jobtools import MIGRATIONS_DIR, run_job
from pgcluster import Db
from scenarios import STATES

DAMAGE = """
DROP INDEX "Lead_shop_createdAt_idx";
ALTER TABLE "Session" DROP COLUMN "refreshTokenExpires";
ALTER TABLE "Tenant" DROP CONSTRAINT "Tenant_planId_fkey";
ALTER TABLE "Alert" ALTER COLUMN "severity" DROP DEFAULT;
ALTER TABLE "Session" ALTER COLUMN "scope" TYPE varchar(40);
ALTER TABLE "Lead" ALTER COLUMN "name" SET NOT NULL;
UPDATE _prisma_migrations SET finished_at = NULL WHERE migration_name LIKE '%fix_session%';
"""


def test_verify_names_every_difference_then_run_heals_the_safe_ones(db: Db) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    healthy = run_job(db.url, "verify")
    assert healthy.code == 0 and "matches the contract" in healthy.stdout

    with db.connect() as conn:
        conn.execute(DAMAGE)
    found = run_job(db.url, "verify", "--json")
    assert found.code == 8
    lines = json.loads(found.stdout)["differences"]
    expected = ['missing index "Lead_shop_createdAt_idx"', 'missing column "refreshTokenExpires"',
                'missing foreign key "Tenant_planId_fkey"', 'column "severity": default',
                'column "scope": type expected text, found character varying(40)',
                'column "name": nullability', "failed ledger row 20251213003742_fix_session_table_uppercase",
                "migration 20251213003742_fix_session_table_uppercase is not recorded as applied"]
    for words in expected:
        assert any(words in ln for ln in lines), (words, lines)
    assert len(lines) == len(expected), lines
    assert found.summary["outcome"] == "schema_drift"

    healed = run_job(db.url)
    # The type and nullability are left for a human, and reported; the run still passes, as
    # `prisma migrate deploy` would (verify is the gate that fails on drift).
    assert healed.code == 0, healed.stderr
    assert [d["difference"] for d in healed.events if d["event"] == "drift.found"] == [
        '"Lead"."name" is NOT NULL, the contract says NULL',
        '"Session"."scope" is character varying(40), the contract says text']
    assert len(healed.event("drift.remaining")["differences"]) == 2
    left = json.loads(run_job(db.url, "verify", "--json").stdout)["differences"]
    assert len(left) == 2 and all('"scope"' in ln or '"name"' in ln for ln in left)


def test_verify_without_a_ledger_says_so(db: Db) -> None:
    run = run_job(db.url, "verify")
    assert run.code == 8
    assert "not managed by Prisma Migrate" in run.stdout and 'missing table "Session"' in run.stdout
