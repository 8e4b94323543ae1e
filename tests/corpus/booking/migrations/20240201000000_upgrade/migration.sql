-- AlterEnum
ALTER TYPE "PeriodType" ADD VALUE 'rolling_window';

-- AlterEnum
ALTER TYPE "BookingStatus" ADD VALUE 'awaiting_host';

-- AlterTable
ALTER TABLE "users" ADD COLUMN     "lastLoginIp" INET,
ADD COLUMN     "locked" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "EventType" ADD COLUMN     "durationOptions" INTEGER[] DEFAULT ARRAY[15, 30, 60]::INTEGER[];

-- AlterTable
ALTER TABLE "Booking" ADD COLUMN     "amount" MONEY,
ADD COLUMN     "rescheduledFromId" INTEGER;

-- CreateIndex
CREATE UNIQUE INDEX "Booking_rescheduledFromId_key" ON "Booking"("rescheduledFromId");

-- CreateIndex
CREATE INDEX "Booking_userId_status_startTime_idx" ON "Booking"("userId", "status", "startTime");

-- AddForeignKey
ALTER TABLE "Booking" ADD CONSTRAINT "Booking_rescheduledFromId_fkey" FOREIGN KEY ("rescheduledFromId") REFERENCES "Booking"("id") ON DELETE SET NULL ON UPDATE CASCADE;

