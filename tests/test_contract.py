"""The contract parser and the schema differ, without a database.

Expected spellings were read from a live PostgreSQL 15 catalog after running the
DDL that Prisma 6.19.3 (`migrate diff --from-empty --script`) wrote for these schemas.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from job.contract import load_contract, parse_prisma_schema
from job.schemadiff import diff_schemas
from job.schemamodel import Column, ForeignKey, Index, Schema, Table

CONTRACT = Path(__file__).resolve().parents[1] / "prisma" / "schema.prisma"
HEADER = 'datasource db {\n  provider = "postgresql"\n  url = env("DATABASE_URL")\n}\n'


@pytest.fixture(scope="module")
def contract() -> Schema:
    return load_contract(CONTRACT)


def model(body: str, extra: str = "") -> Schema:
    return parse_prisma_schema(f"{HEADER}model M {{\n{body}\n}}\n{extra}")


def column(schema: Schema, table: str, name: str) -> Column:
    c = schema[table].column(name)
    assert c is not None, f"{table}.{name}"
    return c


# --- the contract -------------------------------------------------------------

def test_all_18_tables_named_as_their_models(contract: Schema) -> None:
    assert sorted(contract) == sorted([
        "Session", "Tenant", "ProductProfile", "IndexJob", "ChatSession", "Lead", "Event", "Alert",
        "AlertSettings", "Conversation", "Message", "CustomerToken", "CustomerAccountUrl",
        "CodeVerifier", "PromptVersion", "Experiment", "Variant", "Plan",
    ])
    assert all(t.name == name for name, t in contract.items())


def test_session_columns_in_field_order(contract: Schema) -> None:
    assert [c.name for c in contract["Session"].columns] == [
        "id", "shop", "state", "isOnline", "scope", "expires", "accessToken", "userId", "firstName",
        "lastName", "email", "accountOwner", "locale", "collaborator", "emailVerified", "refreshToken",
        "refreshTokenExpires",
    ]


def test_column_spellings(contract: Schema) -> None:
    assert column(contract, "Session", "isOnline") == Column("isOnline", "boolean", False, "false")
    assert column(contract, "Session", "collaborator") == Column("collaborator", "boolean", True, "false")
    assert column(contract, "Session", "userId") == Column("userId", "bigint", True, None)
    assert column(contract, "Tenant", "billingStatus") == Column("billingStatus", "text", False,
                                                                 "'inactive'::text")
    assert column(contract, "Tenant", "settings") == Column("settings", "jsonb", True, None)
    assert column(contract, "Tenant", "installedAt") == Column(
        "installedAt", "timestamp(3) without time zone", False, "CURRENT_TIMESTAMP")
    assert column(contract, "IndexJob", "totalProducts") == Column("totalProducts", "integer", False, "0")
    assert column(contract, "ProductProfile", "price") == Column("price", "double precision", True, None)
    # Prisma writes `"tags" TEXT[]`: a scalar list is nullable.
    assert column(contract, "ProductProfile", "tags") == Column("tags", "text[]", True, None)


def test_client_side_defaults_leave_no_database_default(contract: Schema) -> None:
    assert column(contract, "Tenant", "id") == Column("id", "text", False, None)  # cuid()
    assert column(contract, "Tenant", "updatedAt").default is None  # @updatedAt
    assert column(contract, "Conversation", "updatedAt").nullable is False


def test_relation_fields_are_not_columns(contract: Schema) -> None:
    assert contract["Tenant"].column("plan") is None
    assert contract["Tenant"].column("products") is None
    assert contract["Plan"].column("tenants") is None


def test_indexes(contract: Schema) -> None:
    assert contract["Session"].index("Session_pkey") == Index("Session_pkey", ("id",), True, True)
    assert contract["Tenant"].index("Tenant_shop_key") == Index("Tenant_shop_key", ("shop",), True, False)
    assert contract["ProductProfile"].index("ProductProfile_tenantId_shopifyProductId_key") == Index(
        "ProductProfile_tenantId_shopifyProductId_key", ("tenantId", "shopifyProductId"), True, False)
    assert contract["Event"].index("Event_shop_type_createdAt_idx") == Index(
        "Event_shop_type_createdAt_idx", ("shop", "type", "createdAt"), False, False)
    assert [i.name for i in contract["CodeVerifier"].indexes] == [
        "CodeVerifier_pkey", "CodeVerifier_state_idx", "CodeVerifier_state_key"]


def test_foreign_keys(contract: Schema) -> None:
    assert contract["Tenant"].foreign_keys == (
        ForeignKey("Tenant_planId_fkey", ("planId",), "Plan", ("id",), "SET NULL", "CASCADE"),)
    assert contract["Message"].foreign_key("Message_conversationId_fkey") == ForeignKey(
        "Message_conversationId_fkey", ("conversationId",), "Conversation", ("id",), "CASCADE", "CASCADE")
    assert {k.name for t in contract.values() for k in t.foreign_keys} == {
        "Tenant_planId_fkey", "ProductProfile_tenantId_fkey", "IndexJob_tenantId_fkey",
        "AlertSettings_tenantId_fkey", "Message_conversationId_fkey", "Variant_experimentId_fkey",
        "Variant_promptVersionId_fkey"}


def test_contract_compares_equal_with_itself(contract: Schema) -> None:
    assert diff_schemas(contract, load_contract(CONTRACT)) == []


# --- the parser beyond the contract --------------------------------------------

@pytest.mark.parametrize(("field", "default"), [
    ("Int @default(-1)", "'-1'::integer"),
    ("BigInt @default(0)", "0"),
    ("BigInt @default(-5)", "'-5'::integer"),
    ("BigInt @default(3000000000)", "'3000000000'::bigint"),
    ("Float @default(1.5)", "1.5"),
    ("Float @default(1.50)", "1.50"),
    ("Float @default(2)", "2"),
    ("Float @default(-1.5)", "'-1.5'::numeric"),
    ("Boolean @default(true)", "true"),
    ('String @default("it\'s \\"q\\" \\\\ back")', "'it''s \"q\" \\ back'::text"),
    ('String @default("http://x") // a comment', "'http://x'::text"),
    ('String @default("")', "''::text"),
    ("String @default(uuid())", None),
])
def test_default_spellings(field: str, default: str | None) -> None:
    assert column(model(f"id String @id\nv {field}"), "M", "v").default == default


def test_default_referential_actions_follow_arity() -> None:
    schema = model(
        "id String @id\nreq String\nr T @relation(fields: [req], references: [id])\n"
        "opt String?\no T? @relation(\"o\", fields: [opt], references: [id], onUpdate: NoAction)",
        "model T {\n  id String @id\n  ms M[]\n  os M[] @relation(\"o\")\n}",
    )
    assert schema["M"].foreign_keys == (
        ForeignKey("M_opt_fkey", ("opt",), "T", ("id",), "SET NULL", "NO ACTION"),
        ForeignKey("M_req_fkey", ("req",), "T", ("id",), "RESTRICT", "CASCADE"),
    )


def test_composite_keys() -> None:
    schema = model(
        "a String\nb Int\nkids K[]\n@@id([a, b])",
        "model K {\n  id Int @id\n  pa String\n  pb Int\n"
        "  m M @relation(fields: [pa, pb], references: [a, b])\n  @@unique([pa, pb])\n}",
    )
    assert schema["M"].indexes == (Index("M_pkey", ("a", "b"), True, True),)
    assert schema["K"].index("K_pa_pb_key") == Index("K_pa_pb_key", ("pa", "pb"), True, False)
    assert schema["K"].foreign_keys == (
        ForeignKey("K_pa_pb_fkey", ("pa", "pb"), "M", ("a", "b"), "RESTRICT", "CASCADE"),)


def test_long_names_are_cut_like_prisma_and_postgresql() -> None:
    long_model = "AVeryLongModelNameThatGoesOnAndOnAndOnForeverAndEver"
    accented = "Ünïcödé_Täblé_Nämé_Wïth_Mäny_Äccénts_Thät_Äré_Twö_Bytés_Éäch"
    schema = parse_prisma_schema(
        f"model {long_model} {{\n  id String @id\n  anotherRatherLongColumnNameForTesting String\n"
        "  yetAnotherQuiteLongColumnName String\n"
        "  @@index([anotherRatherLongColumnNameForTesting, yetAnotherQuiteLongColumnName])\n}\n"
        f"model {accented} {{\n  id String @id\n  ä String @unique\n}}\n"
    )
    assert schema[long_model].indexes[0].name == f"{long_model}_anothe_idx"
    cut = "Ünïcödé_Täblé_Nämé_Wïth_Mäny_Äccénts_Thät_Äré_Tw"  # as PostgreSQL cuts it
    assert [i.name for i in schema[cut].indexes] == [
        "Ünïcödé_Täblé_Nämé_Wïth_Mäny_Äccénts_Thät_Är_key",
        "Ünïcödé_Täblé_Nämé_Wïth_Mäny_Äccénts_Thät_Är_pkey",
    ]
    assert all(len(i.name.encode()) <= 63 for t in schema.values() for i in t.indexes)


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("enum Role {\n  A\n}", 1, "unsupported block 'enum'"),
    ("model M {\n  id String @id\n  kind Decimal\n}", 3, "unsupported type 'Decimal'"),
    ("model M {\n  id String @id @map(\"_id\")\n}", 2, "unsupported attribute @map"),
    ("model M {\n  id String @id @db.VarChar(20)\n}", 2, "unsupported attribute @db.VarChar"),
    ("model M {\n  id String @id\n  @@map(\"m\")\n}", 3, "unsupported block attribute @@map"),
    ("model M {\n  id String @id\n  @@index([nope])\n}", 3, "unknown scalar fields ['nope']"),
    ("model M {\n  id String @id\n  @@index([id(sort: Desc)])\n}", 3, "plain field names"),
    ("model M {\n  id Int @id @default(autoincrement())\n}", 2, "unsupported default"),
    ("model M {\n  id String @id @default(dbgenerated(\"x\"))\n}", 2, "unsupported default"),
    ("model M {\n  id String @id\n  j Json @default(\"{}\")\n}", 3, "unsupported default"),
    ("model M {\n  id Int @id\n  n Int @default(1.5)\n}", 3, "not an integer"),
    ("model M {\n  id String @id\n  s String @default(\"a\\qb\")\n}", 3, "unsupported escape"),
    ("model M {\n  id String @id\n  t T @relation(fields: [id], references: [id], onDelete: Boom)\n}\n"
     "model T {\n  id String @id\n  m M?\n}", 3, "unknown referential action"),
    ("model A {\n  id String @id\n  bs B[]\n}\nmodel B {\n  id String @id\n  as A[]\n}", 3, "many-to-many"),
    ("model M {\n  id String @id\n}\nmodel M {\n  id String @id\n}", 4, "declared twice"),
    ("model M {\n  id String @id\n  id String\n}", 1, "repeats fields ['id']"),
    ("model M {\n  id String @id\n  @@id([id])\n}", 1, "repeats index names ['M_pkey']"),
    ("model M {\n  id String @id\n  x String $\n}", 3, "unexpected text '$'"),
    ("model M {\n  id String @id\n", 1, "never closed"),
    ("id String", 1, "outside a block"),
])
def test_unsupported_constructs_name_their_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=f"^line {line}: ") as info:
        parse_prisma_schema(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_load_contract_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "schema.prisma"
    path.write_text("model M {\n  id String @id @map(\"x\")\n}\n")
    with pytest.raises(ValueError, match=r"schema\.prisma: line 2: unsupported attribute @map"):
        load_contract(path)


# --- the differ -----------------------------------------------------------------

def with_table(schema: Schema, name: str, **changes: object) -> Schema:
    return {**schema, name: dataclasses.replace(schema[name], **changes)}  # type: ignore[arg-type]


def test_identical_schemas_have_no_differences(contract: Schema) -> None:
    assert diff_schemas(contract, dict(contract)) == []


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


def test_index_differences(contract: Schema) -> None:
    indexes = (
        Index("Tenant_pkey", ("id",), True, True),
        Index("Tenant_shop_key", ("shop",), False, False),
        Index("tenant_extra", ("chargeId",), False, False),
    )
    assert diff_schemas(contract, with_table(contract, "Tenant", indexes=indexes)) == [
        'table "Tenant": missing index "Tenant_planId_idx" (INDEX (planId))',
        'table "Tenant": index "Tenant_shop_key": definition expected UNIQUE (shop), found INDEX (shop)',
        'table "Tenant": unexpected index "tenant_extra" (INDEX (chargeId))',
    ]


def test_foreign_key_differences(contract: Schema) -> None:
    fks = (
        ForeignKey("Variant_experimentId_fkey", ("experimentId",), "Experiment", ("id",),
                   "RESTRICT", "CASCADE"),
        ForeignKey("Variant_old_fkey", ("name",), "Plan", ("name",), "NO ACTION", "NO ACTION"),
    )
    assert diff_schemas(contract, with_table(contract, "Variant", foreign_keys=fks)) == [
        'table "Variant": foreign key "Variant_experimentId_fkey": definition expected (experimentId) '
        'REFERENCES "Experiment" (id) ON DELETE CASCADE ON UPDATE CASCADE, found (experimentId) '
        'REFERENCES "Experiment" (id) ON DELETE RESTRICT ON UPDATE CASCADE',
        'table "Variant": missing foreign key "Variant_promptVersionId_fkey" ((promptVersionId) '
        'REFERENCES "PromptVersion" (id) ON DELETE SET NULL ON UPDATE CASCADE)',
        'table "Variant": unexpected foreign key "Variant_old_fkey" ((name) REFERENCES "Plan" (name) '
        'ON DELETE NO ACTION ON UPDATE NO ACTION)',
    ]


def test_differences_are_sorted_by_table_then_kind(contract: Schema) -> None:
    actual = with_table(contract, "Tenant", foreign_keys=(), columns=contract["Tenant"].columns[:-1])
    actual = with_table(actual, "Alert", indexes=())
    lines = diff_schemas(contract, actual)
    assert [line.split(":")[0] for line in lines] == ['table "Alert"'] * 2 + ['table "Tenant"'] * 2
    assert "missing column" in lines[2] and "missing foreign key" in lines[3]
