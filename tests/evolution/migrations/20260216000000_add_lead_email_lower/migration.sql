-- Hand-edited from Prisma's `ADD COLUMN "emailLower" TEXT NOT NULL`, which fails on a table with rows:
-- add the column nullable, backfill it, then make it required.

-- AlterTable
ALTER TABLE "Lead" ADD COLUMN     "emailLower" TEXT;

-- Backfill
UPDATE "Lead" SET "emailLower" = lower(btrim("email"));

-- AlterTable
ALTER TABLE "Lead" ALTER COLUMN "emailLower" SET NOT NULL;
