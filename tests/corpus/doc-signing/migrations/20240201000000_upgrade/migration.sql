-- AlterEnum
ALTER TYPE "DocumentStatus" ADD VALUE 'REJECTED';

-- AlterEnum
ALTER TYPE "SigningStatus" ADD VALUE 'REJECTED';

-- AlterEnum
ALTER TYPE "RecipientRole" ADD VALUE 'ASSISTANT';

-- AlterTable
ALTER TABLE "User" ADD COLUMN     "disabled" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "twoFactorBackupCodes" TEXT;

-- AlterTable
ALTER TABLE "Account" ADD COLUMN     "created_at" INTEGER;

-- AlterTable
ALTER TABLE "Session" ADD COLUMN     "ipAddress" TEXT,
ADD COLUMN     "userAgent" TEXT;

-- AlterTable
ALTER TABLE "Document" ADD COLUMN     "source" "DocumentSource" NOT NULL DEFAULT 'DOCUMENT';

-- AlterTable
ALTER TABLE "DocumentData" ADD COLUMN     "thumbnail" BYTEA;

-- AlterTable
ALTER TABLE "DocumentMeta" ADD COLUMN     "typedSignatureEnabled" BOOLEAN NOT NULL DEFAULT true;

-- AlterTable
ALTER TABLE "Recipient" ADD COLUMN     "rejectionReason" TEXT,
ADD COLUMN     "signingOrder" INTEGER;

-- AlterTable
ALTER TABLE "Team" ADD COLUMN     "avatarImageId" TEXT;

-- CreateTable
CREATE TABLE "Passkey" (
    "id" TEXT NOT NULL,
    "userId" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "credentialId" BYTEA NOT NULL,
    "credentialPublicKey" BYTEA NOT NULL,
    "counter" BIGINT NOT NULL,
    "credentialDeviceType" TEXT NOT NULL,
    "credentialBackedUp" BOOLEAN NOT NULL,
    "transports" TEXT[],

    CONSTRAINT "Passkey_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Document_teamId_idx" ON "Document"("teamId");

-- AddForeignKey
ALTER TABLE "Passkey" ADD CONSTRAINT "Passkey_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

