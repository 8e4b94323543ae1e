// The Prisma 7 CLI's config: the URL comes from here (datasource.url), never from the schema or a .env.
//
// Environment:
//   DATABASE_URL     (required) postgresql://user:password@host:port/db[?schema=NAME]
//   PEER_MIGRATIONS  migrations folder (default: the repository's prisma/migrations)
//   PEER_CONTRACT    the schema (default: the repository's prisma/schema.prisma)
//
// The contract is a Prisma 6 schema: its datasource names `url` and `directUrl`, which Prisma 7 refuses
// (P1012). The CLI reads a copy without them, build/schema-<digest>.prisma, named by its content, so runs
// with different contracts side by side never read each other's.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { defineConfig, env } from "prisma/config";

const repo = path.resolve(__dirname, "../../..");
const contract = path.resolve(process.env.PEER_CONTRACT ?? path.join(repo, "prisma/schema.prisma"));
const migrations = path.resolve(process.env.PEER_MIGRATIONS ?? path.join(repo, "prisma/migrations"));

function withoutUrls(file: string): string {
  const text = fs.readFileSync(file, "utf8").replace(/(datasource\s+\w+\s*\{)([^}]*)\}/g,
    (_, head: string, body: string) => head + body.replace(/^[ \t]*(url|directUrl|shadowDatabaseUrl)\s*=.*\n/gm, "") + "}");
  const copy = path.join(__dirname, "build", `schema-${crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)}.prisma`);
  if (!fs.existsSync(copy)) {
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    const partial = `${copy}.${process.pid}`;
    fs.writeFileSync(partial, text);
    fs.renameSync(partial, copy);
  }
  return copy;
}

export default defineConfig({
  schema: withoutUrls(contract),
  migrations: { path: migrations },
  datasource: { url: env("DATABASE_URL") },
});
