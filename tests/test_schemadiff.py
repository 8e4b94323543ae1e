"""The one diff engine, on the contract as PostgreSQL built it (tests/fixtures/contract.json)."""

from __future__ import annotations

import dataclasses

import pytest
from catalogjson import load_contract

from job.schemadiff import diff_catalogs, diff_schemas, same_default
from job.schemamodel import Catalog, Check, Column, Schema, Table

CONTRACT = load_contract()


@pytest.fixture
def contract() -> Schema:
    return dict(CONTRACT.tables)


def with_table(schema: Schema, name: str, **changes: object) -> Schema:
    return {**schema, name: dataclasses.replace(schema[name], **changes)}  # type: ignore[arg-type]


def test_identical_schemas_have_no_differences(contract: Schema) -> None:
    assert diff_catalogs(CONTRACT, Catalog(dict(contract))) == []


def test_order_of_columns_indexes_and_keys_does_not_count(contract: Schema) -> None:
    t = contract["Tenant"]
    shuffled = with_table(contract, "Tenant", columns=t.columns[::-1], indexes=t.indexes[::-1])
    assert diff_schemas(contract, shuffled) == []


def test_tables(contract: Schema) -> None:
    actual = {k: v for k, v in contract.items() if k != "Session"}
    actual["session"] = dataclasses.replace(contract["Session"], name="session")
    actual["_prisma_migrations"] = Table("_prisma_migrations", (), (), ())
    assert diff_schemas(contract, actual) == [  # code point order: "S" < "_" < "s"
        'missing table "Session"', 'unexpected table "_prisma_migrations"', 'unexpected table "session"']
    assert diff_schemas(contract, actual, allowed_extra_tables=frozenset({"_prisma_migrations"})) == [
        'missing table "Session"', 'unexpected table "session"']


def test_columns(contract: Schema) -> None:
    cols = {c.name: c for c in contract["Session"].columns}
    changed = [
        dataclasses.replace(cols["isOnline"], type="text", nullable=True, default=None),
        *(c for n, c in cols.items() if n not in ("isOnline", "refreshToken")),
        Column("extra", "integer", True, "0"),
    ]
    assert diff_schemas(contract, with_table(contract, "Session", columns=tuple(changed))) == [
        'table "Session": column "isOnline": type expected boolean, found text',
        'table "Session": column "isOnline": nullability expected NOT NULL, found NULL',
        'table "Session": column "isOnline": default expected false, found no default',
        'table "Session": missing column "refreshToken" (text NULL)',
        'table "Session": unexpected column "extra" (integer NULL DEFAULT 0)',
    ]


@pytest.mark.parametrize("a, b, same", [
    ("now()", "CURRENT_TIMESTAMP", True),
    ("CURRENT_TIMESTAMP", "transaction_timestamp()", True),
    ("'a'::text", "'a'", True),
    ("'a'::text", "'a'::character varying", True),
    ("'-1'::integer", "'-1'", True),
    ("'-1'::integer", "-1", True),
    ("'it''s'::text", "'it''s'", True),
    ("'a'::text", "'b'::text", False),
    ("now()", "clock_timestamp()", False),
    ("0", None, False),
])
def test_defaults_compare_by_meaning(a: str, b: str | None, same: bool) -> None:
    assert same_default(a, b) is same


def test_a_default_written_otherwise_is_no_difference(contract: Schema) -> None:
    cols = tuple(dataclasses.replace(c, default="now()") if c.default == "CURRENT_TIMESTAMP" else c
                 for c in contract["Tenant"].columns)
    assert diff_schemas(contract, with_table(contract, "Tenant", columns=cols)) == []


def test_index_definitions_compare_whole(contract: Schema) -> None:
    tenant = contract["Tenant"]
    indexes = tuple(dataclasses.replace(i, definition=i.definition + " WHERE (shop IS NOT NULL)")
                    if i.name == "Tenant_shop_key" else i for i in tenant.indexes)
    lines = diff_schemas(contract, with_table(contract, "Tenant", indexes=indexes))
    assert lines == ['table "Tenant": index "Tenant_shop_key": definition expected UNIQUE btree (shop),'
                     ' found UNIQUE btree (shop) WHERE (shop IS NOT NULL)']


def test_foreign_keys_compare_by_postgresql_definition(contract: Schema) -> None:
    variant = contract["Variant"]
    fks = tuple(dataclasses.replace(f, definition=f.definition.replace("ON DELETE CASCADE",
                                                                       "ON DELETE RESTRICT"))
                for f in variant.foreign_keys)
    lines = diff_schemas(contract, with_table(contract, "Variant", foreign_keys=fks))
    assert len(lines) == 1 and "ON DELETE RESTRICT" in lines[0] and "ON DELETE CASCADE" in lines[0]


def test_checks_enums_views_and_sequences(contract: Schema) -> None:
    want = Catalog(with_table(contract, "Plan", checks=(Check("Plan_price_check", "CHECK ((price >= 0))"),)),
                   {"Status": ("ACTIVE", "PAUSED")}, {"active_plans": "VIEW: SELECT 1"},
                   frozenset({"Plan_id_seq"}))
    got = Catalog(dict(contract), {"Status": ("ACTIVE",)}, {}, frozenset())
    assert diff_catalogs(want, got) == [
        'enum "Status": values expected (ACTIVE, PAUSED), found (ACTIVE)',
        'missing sequence "Plan_id_seq"',
        'table "Plan": missing check "Plan_price_check" (CHECK ((price >= 0)))',
        'missing view "active_plans"',
    ]


def test_an_invalid_index_is_a_difference(contract: Schema) -> None:
    indexes = tuple(dataclasses.replace(i, valid=False) if i.name == "Tenant_shop_key" else i
                    for i in contract["Tenant"].indexes)
    lines = diff_schemas(contract, with_table(contract, "Tenant", indexes=indexes))
    assert len(lines) == 1 and lines[0].endswith("INVALID")
