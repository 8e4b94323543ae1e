-- CreateEnum
CREATE TYPE "registry_status" AS ENUM ('DRAFT', 'ACTIVE', 'CLOSED');

-- CreateTable
CREATE TABLE "gift_registry" (
    "id" SERIAL NOT NULL,
    "public_id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "title" VARCHAR(64) NOT NULL,
    "status" "registry_status" NOT NULL DEFAULT 'DRAFT',
    "budget" DECIMAL(10,2) NOT NULL,
    "cover_image" BYTEA,
    "event_date" TIMESTAMPTZ(6),
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "gift_registry_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "gift_registry_public_id_key" ON "gift_registry"("public_id");

-- CreateIndex
CREATE INDEX "gift_registry_tenant_status_idx" ON "gift_registry"("tenant_id", "status");

-- CreateIndex
CREATE UNIQUE INDEX "gift_registry_tenant_id_title_key" ON "gift_registry"("tenant_id", "title");

-- AddForeignKey
ALTER TABLE "gift_registry" ADD CONSTRAINT "gift_registry_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;
