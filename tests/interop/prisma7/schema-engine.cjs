#!/usr/bin/env node
"use strict";
// Prisma 7's `schema-engine` binary, as its CLI runs it, for a machine that cannot download it.
//
// prisma@7 drives a native engine binary (named by PRISMA_SCHEMA_ENGINE_BINARY) in two ways:
//   schema-engine [--datamodels FILE]... [--datasource '{"url":...}']    JSON-RPC 2.0, one message a
//       line on stdin/stdout (the engine may ask the CLI to "print" text); log lines as JSON on stderr
//   schema-engine --datasource '{"url":...}' cli COMMAND   can-connect-to-database | create-database
// The binary comes from Prisma's own server; only the npm registry is reachable here. But the prisma
// package ships the very same engine built to WebAssembly (build/schema_engine_bg.wasm); its JS glue is
// published as @prisma/schema-engine-wasm. This file answers each RPC with that engine, which reaches
// PostgreSQL through @prisma/adapter-pg, made to behave like the native engine's connection:
//   - one connection for a whole command (the advisory lock, the ledger writes and the scripts share a
//     session, and it survives a failed statement: pg.Pool would drop it on the first error);
//   - the URL's `schema` as search_path, as the native connector sets it;
//   - pg_catalog column types ("char", name, regclass, ...) handed to the engine as text (the stock
//     adapter refuses them), "char" typed as a character, as the native engine reads it;
//   - a migration script sent whole, as one simple-query message (the stock adapter splits it on ";");
//   - shadow databases created on the URL's server and dropped after their connection is closed.
// What cannot be had this way: the native engine's own SQL splitting of Prisma 7.4+ (the WASM build
// sends a file whole) -- tests/interop/README.md.
//
// PRISMA7_ENGINE_TRACE=FILE appends every SQL text the engine sends, one JSON line each (for debugging).

const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");
const { pathToFileURL } = require("node:url");
const pg = require("pg");
const { PrismaPg } = require("@prisma/adapter-pg");
const { ColumnTypeEnum, bindMigrationAwareSqlAdapterFactory } = require("@prisma/driver-adapter-utils");
const { parse: parseArray } = require("postgres-array");

const TRACE = process.env.PRISMA7_ENGINE_TRACE;

function trace(kind, text) {
  if (TRACE) fs.appendFileSync(TRACE, JSON.stringify({ pid: process.pid, kind, text }) + "\n");
}

// --- how the CLI talks to the engine -------------------------------------------------------------------

function parseArgs(argv) {
  const args = { datamodels: [], datasource: null, cli: null };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case "--datamodels": args.datamodels.push(argv[++i]); break;
      case "--datasource": args.datasource = JSON.parse(argv[++i]); break;
      case "--enabled-preview-features": case "--extension-types": i++; break; // nothing for PostgreSQL here
      case "cli": args.cli = argv[++i]; return args;
      case "--version": args.cli = "--version"; return args;
      default: throw new Error(`unexpected argument ${argv[i]}`);
    }
  }
  return args;
}

// A log line as the native engine writes them; the CLI keeps fields.message, an ERROR one as the error.
function log(level, message, fields = {}) {
  process.stderr.write(JSON.stringify({ timestamp: new Date().toISOString(), level,
    target: "schema_engine::logger", fields: { message, ...fields } }) + "\n");
}

function send(message) {
  process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
}

let printId = 1;
function print(content) {
  send({ id: 2 ** 31 + printId++, method: "print", params: { content } }); // the CLI writes it to stdout
}

// --- the connection -------------------------------------------------------------------------------------

function quoteIdent(name) {
  return `"${name.replace(/"/g, '""')}"`;
}

// postgresql://user:password@host:port/db?schema=NAME as node-postgres fields (a connectionString would win
// over `database` for the shadow database). Prisma-only parameters are left out.
function connectionOf(url) {
  const u = new URL(url);
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") throw new Error(`not a PostgreSQL URL: ${u.protocol}`);
  const schema = u.searchParams.get("schema") || "public";
  return {
    schema,
    config: {
      host: u.searchParams.get("host") || u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
      port: u.port ? Number(u.port) : 5432,
      user: decodeURIComponent(u.username),
      password: u.password ? decodeURIComponent(u.password) : undefined,
      database: decodeURIComponent(u.pathname.slice(1)) || "postgres",
      options: `-c search_path=${quoteIdent(schema).replace(/([\\ ])/g, "\\$1")}`,
    },
  };
}

// A pg.Pool (the adapter insists on one) that is one client, kept for the whole command.
class OneSession extends pg.Pool {
  constructor(config) {
    super({ ...config, max: 1 });
    this.session = null;
    this.config = config;
  }

  client() {
    if (this.session === null) {
      const client = new pg.Client(this.config);
      client.on("error", (e) => log("WARN", `connection lost: ${e.message}`));
      this.session = client.connect().then(() => client);
    }
    return this.session;
  }

  async query(...args) {
    const client = await this.client();
    trace("query", typeof args[0] === "string" ? args[0] : args[0].text);
    return client.query(...args);
  }

  async connect() {
    const client = await this.client();
    return Object.assign(Object.create(client), { release() {} }); // a transaction on the same session
  }

  async end() {
    const session = this.session;
    this.session = null;
    const client = session && (await session.catch(() => null));
    if (client) await client.end().catch(() => {});
  }
}

// "char", name, int2vector, regproc, tid, xid, cid, oidvector, pg_node_tree, pg_ndistinct, pg_dependencies,
// pg_mcv_list, aclitem, regprocedure, regoper, regoperator, regclass, regtype, regconfig, regdictionary,
// regnamespace, regrole, regcollation, xid8; then their arrays.
const CATALOG = new Set([18, 19, 22, 24, 27, 28, 29, 30, 194, 3361, 3402, 5017, 1033, 2202, 2203, 2204, 2205,
  2206, 3734, 3769, 4089, 4096, 4191, 5069]);
const CATALOG_ARRAYS = new Set([1002, 1003, 1006, 1008, 1010, 1011, 1012, 1013, 1034, 2207, 2208, 2209, 2210,
  2211, 3735, 3770, 4090, 4097, 4192, 271]);
const TEXT = 25;
const TEXT_ARRAY = 1009;
const CHAR = 18;

// The adapter's own methods, wrapped once per class: the schema describer reads catalog columns.
function nativeLike(adapter) {
  const queryable = Object.getPrototypeOf(Object.getPrototypeOf(adapter));
  if (!Object.hasOwn(queryable, "nativeLike")) {
    const performIO = queryable.performIO;
    queryable.performIO = async function (query) {
      const result = await performIO.call(this, query);
      const chars = [];
      result?.fields?.forEach((field, i) => {
        if (field.dataTypeID === CHAR) chars.push(i);
        if (CATALOG.has(field.dataTypeID)) {
          field.dataTypeID = TEXT;
        } else if (CATALOG_ARRAYS.has(field.dataTypeID)) {
          field.dataTypeID = TEXT_ARRAY;
          for (const row of result.rows) if (typeof row[i] === "string") row[i] = parseArray(row[i], (s) => s);
        }
      });
      this.charColumns = chars;
      return result;
    };
    const queryRaw = queryable.queryRaw;
    queryable.queryRaw = async function (query) {
      const result = await queryRaw.call(this, query);
      for (const i of this.charColumns ?? []) result.columnTypes[i] = ColumnTypeEnum.Character;
      return result;
    };
    queryable.nativeLike = true;
  }
  // The whole script in one simple-query message: PostgreSQL runs it as one implicit transaction.
  adapter.executeScript = async function (script) {
    try {
      await this.client.query(script);
    } catch (error) {
      this.onError(error);
    }
  };
  return adapter;
}

class NativeLikePg extends PrismaPg {
  constructor(url) {
    const { config, schema } = connectionOf(url);
    super(new OneSession(config), { schema });
    this.pgConfig = config;
    this.schemaName = schema;
  }

  async connect() {
    return nativeLike(await super.connect());
  }

  async connectToShadowDb() {
    const name = `prisma_migrate_shadow_db_${globalThis.crypto.randomUUID()}`;
    const admin = { ...this.pgConfig, options: undefined };
    await once(admin, `CREATE DATABASE ${quoteIdent(name)}`);
    const shadowConfig = { ...this.pgConfig, database: name };
    if (this.schemaName !== "public") {
      await once({ ...shadowConfig, options: undefined }, `CREATE SCHEMA ${quoteIdent(this.schemaName)}`);
    }
    const shadow = new OneSession(shadowConfig);
    const adapter = nativeLike(await new PrismaPg(shadow, { schema: this.schemaName }).connect());
    adapter.dispose = async () => {
      await shadow.end(); // first: DROP DATABASE refuses while a session is connected
      await once(admin, `DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
    };
    return adapter;
  }
}

async function once(config, text) {
  const client = new pg.Client(config);
  await client.connect();
  try {
    trace("once", text);
    return await client.query(text);
  } finally {
    await client.end();
  }
}

// --- `cli COMMAND` ---------------------------------------------------------------------------------------

// The native engine's answers: P1003 for a database that is not there (the CLI then asks to create it),
// P1001 for a server it cannot reach. create-database connects to `postgres`, then `template1`.
async function cli(command, url) {
  process.stderr.write("schema-engine (wasm stand-in)\n"); // the CLI skips the first line of a cli call
  const { config } = connectionOf(url);
  const where = `${config.host}:${config.port}`;
  try {
    if (command === "can-connect-to-database") {
      await once(config, "SELECT 1");
    } else if (command === "create-database") {
      let lastError = null;
      for (const maintenance of ["postgres", "template1"]) {
        try {
          await once({ ...config, database: maintenance, options: undefined },
            `CREATE DATABASE ${quoteIdent(config.database)}`);
          lastError = null;
          break;
        } catch (error) {
          if (error.code === "42P04") { lastError = null; break; } // created meanwhile: there it is
          lastError = error;
          if (error.code !== "3D000") break; // only a missing maintenance database sends us to the next
        }
      }
      if (lastError) throw lastError;
      process.stdout.write(JSON.stringify(config.database) + "\n");
    } else {
      log("ERROR", `unsupported cli command: ${command}`, { error_code: "P1000" });
      return 1;
    }
    return 0;
  } catch (error) {
    if (error.code === "3D000") {
      log("ERROR", `Database \`${config.database}\` does not exist on the database server at \`${where}\`.`,
        { error_code: "P1003" });
    } else if (error.code && /^[0-9A-Z]{5}$/.test(error.code)) {
      log("ERROR", error.message, { error_code: "P1000" });
    } else {
      log("ERROR", `Can't reach database server at \`${where}\``, { error_code: "P1001" });
    }
    return 1;
  }
}

// --- the engine ------------------------------------------------------------------------------------------

// The engine the prisma package ships, bound to the published glue of the same engine line. A glue that
// lacks an import the .wasm needs fails here, at instantiation (LinkError), never halfway through a command.
async function loadEngine() {
  const wasm = path.join(path.dirname(require.resolve("prisma/package.json")), "build", "schema_engine_bg.wasm");
  const glue = await import(pathToFileURL(require.resolve("@prisma/schema-engine-wasm/schema_engine_bg")).href);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasm)),
    { "./schema_engine_bg.js": glue });
  glue.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start();
  return glue.SchemaEngine;
}

function forwardLog(line) {
  trace("log", String(line));
  try {
    process.stderr.write(JSON.stringify(JSON.parse(line)) + "\n");
  } catch {
    log("INFO", String(line));
  }
}

async function startEngine(args) {
  const url = args.datasource?.url;
  if (!url) throw Object.assign(new Error("no datasource URL (prisma.config.ts: datasource.url)"), { code: "P1012" });
  const SchemaEngine = await loadEngine();
  const datamodels = args.datamodels.map((file) => [file, fs.readFileSync(file, "utf8")]);
  const factory = bindMigrationAwareSqlAdapterFactory(new NativeLikePg(url));
  return SchemaEngine.new({ datamodels: datamodels.length ? datamodels : undefined }, forwardLog, factory);
}

const RENAMED = { getDatabaseVersion: "version" }; // RPC method -> the WASM class's name for it

async function answer(engine, request) {
  const { id, method, params } = request;
  try {
    const name = RENAMED[method] ?? method;
    const e = await engine;
    if (typeof e[name] !== "function") throw new Error(`method not available in the WASM engine: ${method}`);
    let result = await e[name](params ?? {});
    if (method === "diff" && typeof result?.stdout === "string") {
      // the native engine prints the diff itself and returns no text
      if (result.stdout) print(result.stdout.replace(/\n$/, ""));
      result = { ...result, stdout: null };
    }
    send({ id, result: result ?? null });
  } catch (error) {
    const panic = error instanceof WebAssembly.RuntimeError;
    const data = { is_panic: panic, message: String(error?.message ?? error), backtrace: null };
    if (error?.code) data.error_code = error.code;
    if (error?.meta) data.meta = error.meta;
    trace("error", JSON.stringify({ method, ...data }));
    log("ERROR", data.message, error?.code ? { error_code: error.code } : {});
    send({ id, error: { code: 4466, message: "An error happened. Check the data field for details.", data } });
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.cli === "--version") {
    // the commit of the engine the prisma package ships (its .wasm embeds the same hash)
    process.stdout.write(`schema-engine-cli ${require("@prisma/engines-version").enginesVersion}\n`);
    return;
  }
  if (args.cli) {
    process.exitCode = await cli(args.cli, args.datasource?.url);
    return;
  }
  let engine = null; // started by the first request: the CLI may spawn us and only stop us
  let queue = Promise.resolve();
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  input.on("line", (line) => {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message.method === undefined) return; // the CLI acknowledging one of our print requests
    engine ??= startEngine(args);
    engine.catch(() => {}); // reported per request
    queue = queue.then(() => answer(engine, message));
  });
  input.on("close", () => {
    queue.then(async () => {
      const e = engine && (await engine.catch(() => null));
      e?.free?.();
      process.exit(0);
    });
  });
}

main().catch((error) => {
  log("ERROR", String(error?.stack ?? error));
  process.exit(1);
});
