-- AlterEnum
ALTER TYPE "Role" ADD VALUE 'NONE';

-- AlterTable
ALTER TABLE "organizations" ADD COLUMN     "metadata" JSONB;

-- AlterTable
ALTER TABLE "projects" ADD COLUMN     "metadata" JSONB,
ADD COLUMN     "retention_days" INTEGER;

-- AlterTable
ALTER TABLE "api_keys" ADD COLUMN     "scope" "ApiKeyScope" NOT NULL DEFAULT 'PROJECT';

-- AlterTable
ALTER TABLE "trace_sessions" ADD COLUMN     "environment" TEXT NOT NULL DEFAULT 'default';

-- AlterTable
ALTER TABLE "prompts" ADD COLUMN     "commit_message" TEXT;

-- CreateTable
CREATE TABLE "prices" (
    "id" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "model_id" TEXT NOT NULL,
    "usage_type" TEXT NOT NULL,
    "price" DECIMAL(65,30) NOT NULL,

    CONSTRAINT "prices_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "prices_model_id_usage_type_key" ON "prices"("model_id", "usage_type");

-- CreateIndex
CREATE INDEX "models_project_model_start_unit_idx" ON "models"("project_id", "model_name", "start_date" DESC, "unit");

-- CreateIndex
CREATE INDEX "job_executions_job_output_score_id_idx" ON "job_executions" USING HASH ("job_output_score_id");

-- AddForeignKey
ALTER TABLE "prices" ADD CONSTRAINT "prices_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;

