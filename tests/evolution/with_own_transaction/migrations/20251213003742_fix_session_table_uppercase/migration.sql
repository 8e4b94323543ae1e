-- Undo 20251204205052_map_session_table_to_lowercase: Shopify's PrismaSessionStorage needs the table "Session".
-- Idempotent and schema-agnostic: it looks only at current_schema() (the first schema on search_path).
--   only "session"           -> rename it to "Session", and its session_pkey / session_shop_idx to Prisma's names
--   only "Session" / neither -> nothing
--   both, "session" empty    -> nothing ("session" is left as it is)
--   both, "session" has rows -> error: nothing is changed, the transaction rolls back

-- RenameTable
DO $$
DECLARE
    v_schema name := current_schema();
    v_nsp    oid;
    v_lower  oid;
    v_upper  oid;
    v_rows   bigint;
BEGIN
    SELECT n.oid INTO v_nsp FROM pg_namespace n WHERE n.nspname = v_schema;
    SELECT c.oid INTO v_lower FROM pg_class c
     WHERE c.relnamespace = v_nsp AND c.relname = 'session' AND c.relkind IN ('r', 'p');
    SELECT c.oid INTO v_upper FROM pg_class c
     WHERE c.relnamespace = v_nsp AND c.relname = 'Session' AND c.relkind IN ('r', 'p');

    IF v_lower IS NULL THEN
        RETURN;  -- already fixed, never broken, or no table at all
    END IF;

    IF v_upper IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %I.%I', v_schema, 'session') INTO v_rows;
        IF v_rows > 0 THEN
            RAISE EXCEPTION 'both tables %.% and %.% exist and "session" holds % rows; refusing to guess, merge needed',
                quote_ident(v_schema), quote_ident('session'), quote_ident(v_schema), quote_ident('Session'), v_rows
                USING ERRCODE = 'duplicate_table',
                      HINT = 'Move the rows of "session" into "Session" (or drop the emptied "session"), then deploy again.';
        END IF;
        RETURN;  -- "session" is empty: leave both tables alone
    END IF;

    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', v_schema, 'session', 'Session');

    -- A table rename keeps the old constraint and index names: give them Prisma's names when those are free
    -- (constraint-backing indexes are relations of the schema, so a free name means no relation of that name).
    IF EXISTS (SELECT 1 FROM pg_constraint con
                WHERE con.conrelid = v_lower AND con.contype = 'p' AND con.conname = 'session_pkey')
       AND NOT EXISTS (SELECT 1 FROM pg_constraint con
                        WHERE con.conrelid = v_lower AND con.conname = 'Session_pkey')
       AND NOT EXISTS (SELECT 1 FROM pg_class c
                        WHERE c.relnamespace = v_nsp AND c.relname = 'Session_pkey') THEN
        EXECUTE format('ALTER TABLE %I.%I RENAME CONSTRAINT %I TO %I', v_schema, 'Session', 'session_pkey', 'Session_pkey');
    END IF;

    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                WHERE i.indrelid = v_lower AND ic.relname = 'session_shop_idx')
       AND NOT EXISTS (SELECT 1 FROM pg_class c
                        WHERE c.relnamespace = v_nsp AND c.relname = 'Session_shop_idx') THEN
        EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', v_schema, 'session_shop_idx', 'Session_shop_idx');
    END IF;
END
$$;
