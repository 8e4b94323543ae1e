-- AlterEnum
ALTER TYPE "WebhookSource" ADD VALUE 'activepieces';

-- AlterEnum
BEGIN;
CREATE TYPE "SurveyType_new" AS ENUM ('link', 'app');
ALTER TABLE "Survey" ALTER COLUMN "type" DROP DEFAULT;
ALTER TABLE "Survey" ALTER COLUMN "type" TYPE "SurveyType_new" USING ("type"::text::"SurveyType_new");
ALTER TYPE "SurveyType" RENAME TO "SurveyType_old";
ALTER TYPE "SurveyType_new" RENAME TO "SurveyType";
DROP TYPE "SurveyType_old";
ALTER TABLE "Survey" ALTER COLUMN "type" SET DEFAULT 'app';
COMMIT;

-- AlterTable
ALTER TABLE "Webhook" ADD COLUMN     "secret" TEXT;

-- AlterTable
ALTER TABLE "Response" ADD COLUMN     "displayId" TEXT;

-- AlterTable
ALTER TABLE "Survey" ADD COLUMN     "metadata" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "recaptcha" JSONB DEFAULT '{"enabled": false, "threshold":0.1}',
ADD COLUMN     "showLanguageSwitch" BOOLEAN,
ALTER COLUMN "type" SET DEFAULT 'app';

-- CreateIndex
CREATE UNIQUE INDEX "Response_displayId_key" ON "Response"("displayId");

-- CreateIndex
CREATE INDEX "Survey_createdBy_idx" ON "Survey"("createdBy");

