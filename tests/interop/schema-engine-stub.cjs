#!/usr/bin/env node
"use strict";
// Stands in for the native schema-engine binary, which cannot be downloaded here. With the "js" engine,
// Prisma 6.19 still spawns it for one thing: `migrate resolve --rolled-back` first runs
// `schema-engine cli --datasource <url> can-connect-to-database`. This answers that with a real SELECT 1
// and refuses anything else, in the engine's log format (a first line, then JSON lines on stderr).
const path = require("node:path");
const pg = require(path.join(__dirname, "node_modules/pg"));

function fail(code, message) {
  process.stderr.write("schema-engine-stub\n" + JSON.stringify(
    { level: "ERROR", target: "schema_engine::logger", fields: { error_code: code, message } }) + "\n");
  process.exit(1);
}

const args = process.argv.slice(2);
const at = args.indexOf("--datasource");
if (args[0] !== "cli" || !args.includes("can-connect-to-database") || at < 0) {
  fail("P1000", `schema-engine-stub only answers can-connect-to-database; got: ${args[0] ?? "(nothing)"}`);
}
let raw = args[at + 1];
try { raw = JSON.parse(raw).url ?? raw; } catch { /* a plain URL */ }
const { pgConfigFromUrl } = require("./peer.cjs");
const client = new pg.Client(pgConfigFromUrl(raw).config);
client.connect().then(() => client.query("SELECT 1")).then(() => client.end()).then(
  () => process.exit(0),
  (e) => fail("P1001", `Can't reach database server: ${e && e.message ? e.message : e}`));
