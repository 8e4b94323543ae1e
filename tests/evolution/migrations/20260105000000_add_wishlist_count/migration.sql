-- AlterTable
ALTER TABLE "Tenant" ADD COLUMN     "wishlistCount" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "ProductProfile" ADD COLUMN     "compareAtPrice" DOUBLE PRECISION;
