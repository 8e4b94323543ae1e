-- CreateIndex (hand-edited: CONCURRENTLY, so that writes to "Event" are not blocked while it builds).
-- It must stay the only statement of this file: CREATE INDEX CONCURRENTLY cannot run in a transaction
-- block, and a file of several statements is one implicit transaction.
CREATE INDEX CONCURRENTLY "Event_sessionId_idx" ON "Event"("sessionId");
