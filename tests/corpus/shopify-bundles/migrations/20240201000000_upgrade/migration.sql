-- AlterEnum
ALTER TYPE "BundleKind" ADD VALUE 'VOLUME';

-- DropForeignKey
ALTER TABLE "bundle_components" DROP CONSTRAINT "bundle_components_bundle_id_fkey";

-- DropForeignKey
ALTER TABLE "sync_cursors" DROP CONSTRAINT "sync_cursors_shop_domain_fkey";

-- AlterTable
ALTER TABLE "shops" DROP COLUMN "legacy_plan",
ADD COLUMN     "billing_plan_id" INTEGER;

-- DropTable
DROP TABLE "sync_cursors";

-- CreateTable
CREATE TABLE "billing_plans" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "monthly_price" DECIMAL(8,2) NOT NULL,
    "usage_cap" DECIMAL(12,2),
    "trial_days" SMALLINT NOT NULL DEFAULT 14,

    CONSTRAINT "billing_plans_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "volume_tiers" (
    "bundle_id" INTEGER NOT NULL,
    "min_quantity" INTEGER NOT NULL,
    "percent_off" DECIMAL(5,2) NOT NULL,

    CONSTRAINT "volume_tiers_pk" PRIMARY KEY ("bundle_id","min_quantity")
);

-- CreateIndex
CREATE UNIQUE INDEX "billing_plans_name_key" ON "billing_plans"("name");

-- CreateIndex
CREATE INDEX "Session_shop_idx" ON "Session"("shop");

-- AddForeignKey
ALTER TABLE "shops" ADD CONSTRAINT "shops_billing_plan_id_fkey" FOREIGN KEY ("billing_plan_id") REFERENCES "billing_plans"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "bundle_components" ADD CONSTRAINT "bundle_components_bundle_id_fkey" FOREIGN KEY ("bundle_id") REFERENCES "bundles"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "volume_tiers" ADD CONSTRAINT "volume_tiers_bundle_id_fkey" FOREIGN KEY ("bundle_id") REFERENCES "bundles"("id") ON DELETE CASCADE ON UPDATE CASCADE;

