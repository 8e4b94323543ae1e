-- Fails on purpose: "AuditLogLegacy" never existed (42P01 undefined_table).

-- CreateTable
CREATE TABLE "AuditLogArchive" (
    "id" INTEGER NOT NULL,
    "shop" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "AuditLogArchive_pkey" PRIMARY KEY ("id")
);

-- Backfill
INSERT INTO "AuditLogArchive" ("id", "shop", "action", "createdAt")
SELECT "id", "shop", "action", "createdAt" FROM "AuditLogLegacy";
