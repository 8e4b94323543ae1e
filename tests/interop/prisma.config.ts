// The real Prisma CLI 6.19, offline: its WASM schema engine ("js" engine) through the pg driver adapter,
// with the shims of peer.cjs. Nothing is downloaded: no native engine binary is needed.
//
// Environment:
//   DATABASE_URL     (required) the app's URL, postgresql://user:password@host:port/db[?schema=NAME]
//   PEER_MIGRATIONS  migrations folder for deploy/status (default: the repository's prisma/migrations)
//   PEER_CONTRACT    the contract (default: the repository's prisma/schema.prisma)
//
// The CLI loads the contract through a copy (build/schema.prisma) whose generator says
// engineType = "client": without it Prisma 6.19 tries to download its native query engine. The copy is
// written here on every load, so it can never drift from the contract.
import fs from "node:fs";
import path from "node:path";
import { defineConfig } from "prisma/config";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { NativeLikePg } = require("./peer.cjs");

const here = __dirname;
const repo = path.resolve(here, "../..");
const contract = path.resolve(process.env.PEER_CONTRACT ?? path.join(repo, "prisma/schema.prisma"));
const migrations = path.resolve(process.env.PEER_MIGRATIONS ?? path.join(repo, "prisma/migrations"));

function peerSchema(): string {
  const text = fs.readFileSync(contract, "utf8");
  const generator = /(generator\s+\w+\s*\{[^}]*?provider\s*=\s*"prisma-client-js"[^\n]*\n)/;
  if (!generator.test(text)) throw new Error(`${contract}: no prisma-client-js generator block`);
  const out = text.replace(generator, '$1  engineType = "client"\n');
  const file = path.join(here, "build/schema.prisma");
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== out) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, out);
  }
  return file;
}

// The contract reads both from the environment; Migrate uses DIRECT_URL, as in the app.
process.env.DIRECT_URL ??= process.env.DATABASE_URL;

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: peerSchema(),
  migrations: { path: migrations },
  async adapter() {
    return new NativeLikePg(process.env.DIRECT_URL ?? process.env.DATABASE_URL);
  },
});
