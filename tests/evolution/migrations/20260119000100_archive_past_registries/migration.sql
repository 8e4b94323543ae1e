-- Data migration (hand-written): registries whose event is more than a year past are archived.
-- It uses the value that 20260119000000_add_registry_status_archived added. PostgreSQL refuses a new enum
-- value in the transaction that added it (55P04 "unsafe use of new value"), so it is its own migration.
UPDATE "gift_registry" SET "status" = 'ARCHIVED' WHERE "status" = 'CLOSED' AND "event_date" < CURRENT_TIMESTAMP - INTERVAL '1 year';
