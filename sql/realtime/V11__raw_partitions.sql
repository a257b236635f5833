-- Raw events partitioned by day of event time (docs/ARCHITECTURE.md, "Raw retention"): the
-- stream keeps STREAM_RAW_RETENTION of them (default 7 days) and drops older days whole, once the
-- warehouse has loaded them, instead of deleting rows. A key now includes the event time (a
-- partitioned table's unique keys must hold its partition key); an event keeps its time, so a
-- replayed event still meets its own row.

-- The first day the raw tables keep: events before it were removed by retention, and one
-- arriving now goes to dead_letter_events instead of coming back.
CREATE TABLE IF NOT EXISTS raw_retention (
    only_row   boolean PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    horizon    date NOT NULL DEFAULT '1970-01-01',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO raw_retention DEFAULT VALUES ON CONFLICT DO NOTHING;

-- How far the warehouse has loaded each realtime table (its ETL watermark), written by the
-- batch after each chunk it committed: retention never drops a row beyond it.
CREATE TABLE IF NOT EXISTS warehouse_loaded (
    source_table    text PRIMARY KEY,
    last_ingest_seq bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
GRANT INSERT, UPDATE ON warehouse_loaded TO globalmart_batch_role;

-- Creates the day partitions of the three raw tables for `days` (those not before the horizon);
-- returns the horizon. Runs as the owner: the runtime roles cannot create tables.
CREATE OR REPLACE FUNCTION raw_partitions_ensure(days date[]) RETURNS date
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    kept date;
    day date;
    parent text;
    partition text;
BEGIN
    -- Two instances creating the same day wait for each other instead of failing.
    PERFORM pg_advisory_xact_lock(hashtext('globalmart.raw_partitions'));
    -- No row (a table emptied by a restore): nothing removed.
    kept := coalesce((SELECT horizon FROM raw_retention), DATE '1970-01-01');
    FOREACH day IN ARRAY days LOOP
        CONTINUE WHEN day < kept;
        FOREACH parent IN ARRAY ARRAY['transactions', 'product_view_events', 'cart_events'] LOOP
            partition := parent || '_' || to_char(day, 'YYYYMMDD');
            IF to_regclass(partition) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    partition, parent, day::timestamp AT TIME ZONE 'UTC',
                    (day + 1)::timestamp AT TIME ZONE 'UTC');
            END IF;
        END LOOP;
    END LOOP;
    RETURN kept;
END
$$;
REVOKE ALL ON FUNCTION raw_partitions_ensure(date[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION raw_partitions_ensure(date[]) TO globalmart_stream_role;

-- Drops the days before `keep_from` that the warehouse has loaded entirely (every raw table)
-- and that every partition of the event topics has read past (stream_offsets.event_time of the
-- last day), oldest first, stopping at the first day that is not; moves the horizon past them.
-- Holds `ingest_lock` (crates/globalmart-core/src/db.rs, INGEST_LOCK) so no save is in flight
-- meanwhile, and gives up after `wait` rather than stall the stream. Returns the days dropped.
CREATE OR REPLACE FUNCTION raw_retention_apply(keep_from date, wait interval, ingest_lock bigint)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    read_to date;
    day date;
    parent text;
    partition text;
    newest bigint;
    loaded bigint;
    dropped integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', (extract(epoch FROM wait) * 1000)::bigint || 'ms', true);
    PERFORM pg_advisory_xact_lock(ingest_lock);
    -- Days every event partition read in the last day has passed: nothing more comes for them
    -- but very late events.
    SELECT min(event_time)::date INTO read_to FROM stream_offsets
    WHERE event_time IS NOT NULL AND updated_at > now() - interval '1 day'
        AND (topic LIKE '%transactions-topic' OR topic LIKE '%product-views-topic'
             OR topic LIKE '%cart-events-topic');
    FOR day IN
        SELECT DISTINCT to_date(right(c.relname, 8), 'YYYYMMDD') AS d
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = ANY (ARRAY['transactions'::regclass, 'product_view_events'::regclass,
                                       'cart_events'::regclass])
        ORDER BY 1
    LOOP
        EXIT WHEN day >= keep_from OR day >= coalesce(read_to, keep_from);
        FOREACH parent IN ARRAY ARRAY['transactions', 'product_view_events', 'cart_events'] LOOP
            partition := parent || '_' || to_char(day, 'YYYYMMDD');
            CONTINUE WHEN to_regclass(partition) IS NULL;
            EXECUTE format('SELECT max(ingest_seq) FROM %I', partition) INTO newest;
            SELECT last_ingest_seq INTO loaded FROM warehouse_loaded WHERE source_table = parent;
            IF newest > coalesce(loaded, 0) THEN
                -- Not loaded yet: this day and every later one stay.
                RETURN dropped;
            END IF;
        END LOOP;
        FOREACH parent IN ARRAY ARRAY['transactions', 'product_view_events', 'cart_events'] LOOP
            EXECUTE format('DROP TABLE IF EXISTS %I', parent || '_' || to_char(day, 'YYYYMMDD'));
        END LOOP;
        INSERT INTO raw_retention AS r (horizon) VALUES (day + 1)
        ON CONFLICT (only_row) DO UPDATE SET horizon = greatest(r.horizon, excluded.horizon),
            updated_at = now();
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;
REVOKE ALL ON FUNCTION raw_retention_apply(date, interval, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION raw_retention_apply(date, interval, bigint) TO globalmart_stream_role;

-- The three tables again, partitioned, with their rows, their ingest_seq values (the ETL's
-- watermarks point at them) and the views over them.
DO $$
DECLARE
    parent text;
    first_day date;
    last_day date;
    views text[][] := ARRAY[]::text[][];
    v record;
    keys text;
BEGIN
    -- Converted already (this file applied again): nothing to do.
    IF (SELECT relkind FROM pg_class WHERE oid = 'transactions'::regclass) = 'p' THEN
        RETURN;
    END IF;
    -- Views over the raw tables, recreated on the new tables from their own definitions.
    FOR v IN
        SELECT DISTINCT c.relname, pg_get_viewdef(c.oid) AS definition
        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            JOIN pg_class c ON c.oid = r.ev_class
        WHERE d.refobjid = ANY (ARRAY['transactions'::regclass, 'product_view_events'::regclass,
                                      'cart_events'::regclass])
            AND c.relkind = 'v'
    LOOP
        views := views || ARRAY[[v.relname::text, v.definition]];
        EXECUTE format('DROP VIEW %I', v.relname);
    END LOOP;

    FOREACH parent IN ARRAY ARRAY['transactions', 'product_view_events', 'cart_events'] LOOP
        keys := CASE parent WHEN 'transactions' THEN 'line_item_id' ELSE 'event_id' END;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', parent, parent || '_unpartitioned');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING IDENTITY
                            INCLUDING CONSTRAINTS, PRIMARY KEY (%s, "timestamp"))
                        PARTITION BY RANGE ("timestamp")',
            parent, parent || '_unpartitioned', keys);
    END LOOP;
    -- The days of every row, then the rows.
    SELECT min(d), max(d) INTO first_day, last_day FROM (
        SELECT min("timestamp" AT TIME ZONE 'UTC')::date AS d FROM transactions_unpartitioned
        UNION ALL SELECT max("timestamp" AT TIME ZONE 'UTC')::date FROM transactions_unpartitioned
        UNION ALL SELECT min("timestamp" AT TIME ZONE 'UTC')::date FROM product_view_events_unpartitioned
        UNION ALL SELECT max("timestamp" AT TIME ZONE 'UTC')::date FROM product_view_events_unpartitioned
        UNION ALL SELECT min("timestamp" AT TIME ZONE 'UTC')::date FROM cart_events_unpartitioned
        UNION ALL SELECT max("timestamp" AT TIME ZONE 'UTC')::date FROM cart_events_unpartitioned) days;
    IF first_day IS NOT NULL THEN
        PERFORM raw_partitions_ensure(ARRAY(
            SELECT generate_series(first_day, last_day, interval '1 day')::date));
    END IF;
    FOREACH parent IN ARRAY ARRAY['transactions', 'product_view_events', 'cart_events'] LOOP
        EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM %I',
            parent, parent || '_unpartitioned');
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, ''ingest_seq''),
                            greatest((SELECT max(ingest_seq) FROM %I), 1))',
            parent, parent);
        EXECUTE format('DROP TABLE %I', parent || '_unpartitioned');
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(views, 1), 0) LOOP
        EXECUTE format('CREATE VIEW %I AS %s', views[i][1], views[i][2]);
        EXECUTE format('GRANT SELECT ON %I TO globalmart_reader', views[i][1]);
    END LOOP;
    ALTER TABLE transactions ADD UNIQUE (transaction_id, line_number, "timestamp");
END
$$;

CREATE INDEX IF NOT EXISTS idx_transactions_ingest_seq ON transactions (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_transactions_timestamp ON transactions ("timestamp");
CREATE INDEX IF NOT EXISTS idx_transactions_user ON transactions (user_id);
CREATE INDEX IF NOT EXISTS idx_transactions_product_timestamp ON transactions (product_id, "timestamp");
CREATE INDEX IF NOT EXISTS idx_product_view_events_ingest_seq ON product_view_events (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_product_view_events_timestamp ON product_view_events ("timestamp");
CREATE INDEX IF NOT EXISTS idx_product_view_events_product ON product_view_events (product_id);
CREATE INDEX IF NOT EXISTS idx_cart_events_ingest_seq ON cart_events (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_cart_events_timestamp ON cart_events ("timestamp");
CREATE INDEX IF NOT EXISTS idx_cart_events_session ON cart_events (session_id);
GRANT SELECT ON transactions, product_view_events, cart_events TO globalmart_reader;
