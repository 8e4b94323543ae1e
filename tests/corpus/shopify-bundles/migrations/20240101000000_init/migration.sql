-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "BundleKind" AS ENUM ('FIXED', 'MIX_AND_MATCH');

-- CreateEnum
CREATE TYPE "DiscountType" AS ENUM ('PERCENTAGE', 'FIXED_AMOUNT', 'FIXED_PRICE');

-- CreateTable
CREATE TABLE "Session" (
    "id" TEXT NOT NULL,
    "shop" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "isOnline" BOOLEAN NOT NULL DEFAULT false,
    "scope" TEXT,
    "expires" TIMESTAMP(3),
    "accessToken" TEXT NOT NULL,
    "userId" BIGINT,
    "firstName" TEXT,
    "lastName" TEXT,
    "email" TEXT,
    "accountOwner" BOOLEAN NOT NULL DEFAULT false,
    "locale" TEXT,
    "collaborator" BOOLEAN DEFAULT false,
    "emailVerified" BOOLEAN DEFAULT false,

    CONSTRAINT "Session_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "shops" (
    "shop_domain" VARCHAR(255) NOT NULL,
    "shopify_id" BIGINT NOT NULL,
    "encrypted_token" BYTEA,
    "token_iv" BYTEA,
    "installed_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "legacy_plan" TEXT,

    CONSTRAINT "shops_pkey" PRIMARY KEY ("shop_domain")
);

-- CreateTable
CREATE TABLE "bundles" (
    "id" SERIAL NOT NULL,
    "shop_domain" VARCHAR(255) NOT NULL,
    "product_gid" TEXT NOT NULL,
    "title" VARCHAR(255) NOT NULL,
    "kind" "BundleKind" NOT NULL DEFAULT 'FIXED',
    "discount_type" "DiscountType" NOT NULL DEFAULT 'PERCENTAGE',
    "discount_value" DECIMAL(10,2) NOT NULL DEFAULT 0,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "bundles_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "bundle_components" (
    "bundle_id" INTEGER NOT NULL,
    "variant_gid" TEXT NOT NULL,
    "quantity" SMALLINT NOT NULL DEFAULT 1,
    "position" INTEGER NOT NULL DEFAULT 0,
    "unit_price" DECIMAL(10,2),

    CONSTRAINT "bundle_components_pkey" PRIMARY KEY ("bundle_id","variant_gid")
);

-- CreateTable
CREATE TABLE "sync_cursors" (
    "shop_domain" VARCHAR(255) NOT NULL,
    "resource" TEXT NOT NULL,
    "cursor" TEXT,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "sync_cursors_pkey" PRIMARY KEY ("shop_domain","resource")
);

-- CreateIndex
CREATE UNIQUE INDEX "shops_shopify_id_key" ON "shops"("shopify_id");

-- CreateIndex
CREATE INDEX "bundles_shop_active_idx" ON "bundles"("shop_domain", "active");

-- CreateIndex
CREATE UNIQUE INDEX "bundles_shop_domain_product_gid_key" ON "bundles"("shop_domain", "product_gid");

-- CreateIndex
CREATE INDEX "bundle_components_variant_gid_idx" ON "bundle_components"("variant_gid");

-- AddForeignKey
ALTER TABLE "bundles" ADD CONSTRAINT "bundles_shop_domain_fkey" FOREIGN KEY ("shop_domain") REFERENCES "shops"("shop_domain") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "bundle_components" ADD CONSTRAINT "bundle_components_bundle_id_fkey" FOREIGN KEY ("bundle_id") REFERENCES "bundles"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "sync_cursors" ADD CONSTRAINT "sync_cursors_shop_domain_fkey" FOREIGN KEY ("shop_domain") REFERENCES "shops"("shop_domain") ON DELETE CASCADE ON UPDATE CASCADE;

