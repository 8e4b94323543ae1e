"use strict";
// The pg driver adapter set up the way the tests need it, shared by prisma.config.ts (the Prisma CLI)
// and session-storage.mjs (Prisma Client under Shopify's PrismaSessionStorage).
//
// Prisma 6.19's native engines cannot be downloaded here (only the npm registry is reachable), so the
// CLI runs its WASM schema engine, which talks to PostgreSQL through @prisma/adapter-pg. Three shims make
// that adapter behave like the native engine on PostgreSQL (tests/interop/README.md says why each):
//   1. pg_catalog column types (name, "char", regclass, pg_node_tree, ...) are handed to the engine as
//      text / text[]: the stock adapter refuses them, and the schema describer reads them.
//   2. a migration script goes to the server whole, as ONE simple-query message (the native engine's
//      simple_query): one implicit transaction, and $$ bodies or ';' in strings survive. The stock adapter
//      splits the script on ';' and runs the pieces one by one.
//   3. the shadow database (migrate diff --from-migrations) is a fresh database on the same server, in
//      the URL's schema, dropped after its pool is closed. The stock one reconnects to the main database.

const pg = require("pg");
const { PrismaPg } = require("@prisma/adapter-pg");
const { parse: parseArray } = require("postgres-array");

// --- the URL, in Prisma's form --------------------------------------------------------------------------

function quoteIdent(name) {
  return `"${name.replace(/"/g, '""')}"`;
}

// postgresql://user:password@host:port/db?schema=NAME -> node-postgres fields, as discrete values (a
// connectionString would win over `database` in the shadow pool). Prisma-only parameters are dropped;
// `schema` becomes the search_path, set to exactly that schema as Prisma does.
function pgConfigFromUrl(url) {
  if (!url) throw new Error("DATABASE_URL must be set");
  const u = new URL(url);
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") {
    throw new Error(`not a PostgreSQL URL: ${u.protocol}`);
  }
  const schema = u.searchParams.get("schema") || "public";
  const config = {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, "")) || undefined,
    options: `-c search_path=${quoteIdent(schema).replace(/([\\ ])/g, "\\$1")}`,
    // One connection, like the native schema engine: the advisory lock, the ledger writes and the
    // migration scripts all run in the same session.
    max: 1,
    // Idle connections must not keep the CLI alive (the native engine exits when done). The pool's
    // idle timeout (10 s) is left alone: it would otherwise drop the session holding the lock.
    allowExitOnIdle: true,
  };
  return { config, schema };
}

// --- shim 1: pg_catalog types as text -------------------------------------------------------------------

const TEXT = 25;
const TEXT_ARRAY = 1009;
// "char", name, int2vector, regproc, tid, xid, cid, oidvector, pg_node_tree, pg_ndistinct,
// pg_dependencies, pg_mcv_list, aclitem, regprocedure, regoper, regoperator, regclass, regtype, void,
// regconfig, regdictionary, regnamespace, regrole, regcollation, xid8
const CATALOG_SCALARS = new Set([18, 19, 22, 24, 27, 28, 29, 30, 194, 3361, 3402, 5017, 1033, 2202, 2203,
  2204, 2205, 2206, 2278, 3734, 3769, 4089, 4096, 4191, 5069]);
// their arrays
const CATALOG_ARRAYS = new Set([1002, 1003, 1006, 1008, 1010, 1011, 1012, 1013, 1034, 2207, 2208, 2209,
  2210, 2211, 3735, 3770, 4090, 4097, 4192, 271]);

function catalogTypesAsText(result) {
  if (!result || !Array.isArray(result.fields)) return result;
  result.fields.forEach((field, i) => {
    if (CATALOG_SCALARS.has(field.dataTypeID)) {
      field.dataTypeID = TEXT;
      for (const row of result.rows) {
        if (row[i] !== null && typeof row[i] !== "string") row[i] = String(row[i]);
      }
    } else if (CATALOG_ARRAYS.has(field.dataTypeID)) {
      field.dataTypeID = TEXT_ARRAY;
      for (const row of result.rows) {
        if (typeof row[i] === "string") row[i] = parseArray(row[i], (s) => s);
      }
    }
  });
  return result;
}

// --- shims 1 and 2 on one connected adapter -------------------------------------------------------------

function withShims(adapter) {
  const performIO = adapter.performIO.bind(adapter);
  // "char" catalog columns (pg_constraint.contype...) reach the engine as text, then typed Character, as
  // the native engine reads them: the describer takes a Rust char there and panics on a string.
  let charColumns = [];
  adapter.performIO = async (query) => {
    const result = await performIO(query);
    charColumns = (result?.fields ?? []).flatMap((f, i) => (f.dataTypeID === 18 ? [i] : []));
    return catalogTypesAsText(result);
  };
  const queryRaw = adapter.queryRaw.bind(adapter);
  adapter.queryRaw = async (query) => {
    const res = await queryRaw(query);
    for (const i of charColumns) res.columnTypes[i] = 6; // ColumnTypeEnum.Character
    return res;
  };
  adapter.executeScript = async (script) => {
    try {
      await adapter.client.query(script); // no parameters: the simple-query protocol, whole script at once
    } catch (error) {
      adapter.onError(error);
    }
  };
  return adapter;
}

// --- the factory the CLI uses, with shim 3 --------------------------------------------------------------

class NativeLikePg extends PrismaPg {
  constructor(url) {
    const { config, schema } = pgConfigFromUrl(url);
    super(config, { schema });
    this.pgConfig = config;
    this.schemaName = schema;
  }

  async connect() {
    return withShims(await super.connect());
  }

  async connectToShadowDb() {
    const name = `prisma_migrate_shadow_db_${globalThis.crypto.randomUUID()}`;
    const admin = { ...this.pgConfig, options: undefined };
    await runOnce(admin, `CREATE DATABASE ${quoteIdent(name)}`);
    const shadowConfig = { ...this.pgConfig, database: name };
    if (this.schemaName !== "public") {
      // the native engine creates the URL's schema when it connects
      await runOnce({ ...shadowConfig, options: undefined },
        `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schemaName)}`);
    }
    const adapter = withShims(await new PrismaPg(shadowConfig, { schema: this.schemaName }).connect());
    const dispose = adapter.dispose.bind(adapter);
    adapter.dispose = async () => {
      await dispose(); // the shadow pool first: DROP DATABASE refuses while anyone is connected
      await runOnce(admin, `DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
    };
    return adapter;
  }
}

async function runOnce(config, sql) {
  const client = new pg.Client(config);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

module.exports = { NativeLikePg, pgConfigFromUrl };
