-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "PremiumTier" ADD VALUE 'BUSINESS_MONTHLY';
ALTER TYPE "PremiumTier" ADD VALUE 'BUSINESS_ANNUALLY';

-- AlterEnum
ALTER TYPE "ColdEmailSetting" ADD VALUE 'ARCHIVE_AND_READ_AND_LABEL';

-- AlterEnum
ALTER TYPE "ActionType" ADD VALUE 'MARK_READ';

-- AlterTable
ALTER TABLE "User" ADD COLUMN     "surveyAnswers" JSONB;

-- AlterTable
ALTER TABLE "Premium" ADD COLUMN     "stripeCustomerId" TEXT,
ADD COLUMN     "stripeSubscriptionStatus" TEXT;

-- AlterTable
ALTER TABLE "EmailAccount" ADD COLUMN     "writingStyle" TEXT;

-- AlterTable
ALTER TABLE "Rule" ADD COLUMN     "systemType" TEXT,
ADD COLUMN     "typesUsed" "RuleType"[] DEFAULT ARRAY['AI']::"RuleType"[];

-- AlterTable
ALTER TABLE "Action" ADD COLUMN     "delayInMinutes" INTEGER;

-- AlterTable
ALTER TABLE "Newsletter" ADD COLUMN     "categoryId" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "Premium_stripeCustomerId_key" ON "Premium"("stripeCustomerId");

-- CreateIndex
CREATE UNIQUE INDEX "rule_account_system_key" ON "Rule"("emailAccountId", "systemType");

-- CreateIndex
CREATE INDEX "ColdEmail_emailAccountId_createdAt_idx" ON "ColdEmail"("emailAccountId", "createdAt");

