// Shopify's real PrismaSessionStorage on the database of DATABASE_URL, through the generated Prisma Client
// (engineType "client": the query compiler and the pg driver adapter, no native engine).
//
//   node session-storage.mjs probe          what the app sees at start-up: is the storage ready, and if not,
//                                           which error does it raise (the production failure was
//                                           MissingSessionTableError)
//   node session-storage.mjs check [ID...]  store, load, find by shop and delete sessions; each ID given must
//                                           be an existing session that loads (the app's users stay logged in)
//
// Prints one JSON object on stdout. Exit 0 when the command ran to its end (a probe that finds the storage
// not ready still exits 0: the verdict is in the JSON), 1 when a check failed.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { PrismaClient } = require("@prisma/client");
const { PrismaPg } = require("@prisma/adapter-pg");
const { Session } = require("@shopify/shopify-api");
const {
  PrismaSessionStorage, MissingSessionTableError, MissingSessionStorageError,
} = require("@shopify/shopify-app-session-storage-prisma");
const { pgConfigFromUrl } = require("./peer.cjs");

// The library reports why its table check failed only through console.log ("Error obtaining session
// table: ..."): keep that off stdout, which is ours, and keep its last line for the verdict.
const logged = [];
console.log = (...args) => {
  const text = args.map(String).join(" ");
  logged.push(text.split("\n").filter(Boolean).pop());
  console.error(text);
};

function describe(error) {
  if (!error) return null;
  return {
    name: error instanceof MissingSessionTableError ? "MissingSessionTableError"
      : error instanceof MissingSessionStorageError ? "MissingSessionStorageError" : error.name,
    message: String(error.message).split("\n").filter(Boolean).pop(),
    code: error.code ?? null,
    cause: describe(error.cause),
  };
}

function storage(prisma) {
  // One attempt, 10 ms apart: the defaults (2 x 5 s) only make a missing table slow to report.
  const s = new PrismaSessionStorage(prisma, { connectionRetries: 1, connectionRetryIntervalMs: 10 });
  // The constructor's readiness promise has no handler of its own: without this one, a missing table
  // kills the process with an unhandled rejection before isReady() can answer.
  const readyError = s.ready.then(() => null, (error) => error);
  return { s, readyError };
}

function session(id, shop, online) {
  const params = {
    id, shop, state: `state-${id}`, isOnline: online, scope: "read_products,write_products",
    expires: new Date(Date.now() + 86_400_000), accessToken: `shpat_${id}`,
  };
  if (online) {
    params.onlineAccessInfo = {
      expires_in: 86_400, associated_user_scope: "read_products",
      associated_user: {
        id: 902541635, first_name: "Ada", last_name: "Lovelace", email: "ada@example.com",
        email_verified: true, account_owner: true, locale: "en", collaborator: false,
      },
    };
  } else {
    params.refreshToken = `shprt_${id}`;
    params.refreshTokenExpires = new Date(Date.now() + 30 * 86_400_000);
  }
  return new Session(params);
}

function expect(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

async function probe(prisma) {
  const { s, readyError } = storage(prisma);
  const ready = await s.isReady();
  let loadError = null;
  try {
    await s.loadSession("offline_probe.myshopify.com");
  } catch (error) {
    loadError = error;
  }
  return { ready, readyError: describe(await readyError), loadError: describe(loadError), logged };
}

async function check(prisma, existingIds) {
  const { s, readyError } = storage(prisma);
  const ready = await s.isReady();
  expect(ready, `storage not ready: ${JSON.stringify(describe(await readyError))}`);

  const shop = `interop-${Date.now()}.myshopify.com`;
  const offline = session(`offline_${shop}`, shop, false);
  const online = session(`${shop}_902541635`, shop, true);
  expect(await s.storeSession(offline), "storeSession (offline) returned false");
  expect(await s.storeSession(online), "storeSession (online) returned false");
  offline.scope = "read_products";
  expect(await s.storeSession(offline), "storeSession (update) returned false"); // the upsert path

  const loaded = await s.loadSession(offline.id);
  expect(loaded, "loadSession found nothing");
  expect(loaded.equals(offline), `loaded session differs: ${JSON.stringify(loaded.toObject())}`);
  expect(loaded.scope === "read_products", "update not stored");
  const loadedOnline = await s.loadSession(online.id);
  expect(loadedOnline && loadedOnline.onlineAccessInfo?.associated_user?.email === "ada@example.com",
    "online session's user not stored");

  const found = await s.findSessionsByShop(shop);
  expect(found.length === 2, `findSessionsByShop found ${found.length}, not 2`);

  expect(await s.deleteSession(online.id), "deleteSession returned false");
  expect(await s.loadSession(online.id) === undefined, "deleted session still loads");
  expect(await s.deleteSessions([offline.id]), "deleteSessions returned false");
  expect((await s.findSessionsByShop(shop)).length === 0, "sessions left after deleteSessions");

  const kept = [];
  for (const id of existingIds) {
    const old = await s.loadSession(id);
    expect(old && old.id === id, `existing session ${id} does not load`);
    expect((await s.findSessionsByShop(old.shop)).some((x) => x.id === id),
      `existing session ${id} not found by its shop`);
    kept.push(id);
  }
  return { ready, stored: 2, loaded: 2, found: found.length, deleted: 2, existingLoaded: kept.length };
}

async function main() {
  const [command, ...ids] = process.argv.slice(2);
  if (command !== "probe" && command !== "check") {
    console.error("usage: node session-storage.mjs probe | check [ID...]");
    return 2;
  }
  const { config, schema } = pgConfigFromUrl(process.env.DATABASE_URL);
  const prisma = new PrismaClient({ adapter: new PrismaPg(config, { schema }) });
  try {
    const result = command === "probe" ? await probe(prisma) : await check(prisma, ids);
    process.stdout.write(JSON.stringify({ ok: true, ...result }) + "\n");
    return 0;
  } catch (error) {
    process.stdout.write(JSON.stringify({ ok: false, error: describe(error) }) + "\n");
    return 1;
  } finally {
    await prisma.$disconnect();
  }
}

process.exitCode = await main();
