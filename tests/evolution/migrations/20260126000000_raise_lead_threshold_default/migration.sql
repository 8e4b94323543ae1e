-- AlterTable
ALTER TABLE "AlertSettings" ALTER COLUMN "leadThreshold" SET DEFAULT 3;
