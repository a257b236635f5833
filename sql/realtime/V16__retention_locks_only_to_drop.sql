-- Raw retention takes the ingest lock only when a day partition is older than `keep_from`:
-- every round took it (exclusively), and the stream's saves queued behind it while it waited
-- for the save in flight, a round every 10 minutes by default and every 10 s in the latency
-- benchmark (docs/ARCHITECTURE.md, "A twenty-fourth run"). The function of
-- V11__raw_partitions.sql drops the days; the one of the same name and arguments looks first.
-- Idempotent, as every migration here: run again, the renamed function is there already.
DO $$
BEGIN
    IF to_regprocedure('raw_retention_drop(date, interval, bigint)') IS NULL THEN
        ALTER FUNCTION raw_retention_apply(date, interval, bigint) RENAME TO raw_retention_drop;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION raw_retention_drop(date, interval, bigint) FROM globalmart_stream_role;

-- As raw_retention_drop, and 0 without a day partition before `keep_from`. The partitions'
-- names are compared as text: the planner may test the name of every relation before the join
-- keeps the partitions, and to_date fails on the others.
CREATE OR REPLACE FUNCTION raw_retention_apply(keep_from date, wait interval, ingest_lock bigint)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = ANY (ARRAY['transactions'::regclass, 'product_view_events'::regclass,
                                       'cart_events'::regclass])
          AND right(c.relname, 8) < to_char(keep_from, 'YYYYMMDD')) THEN
        RETURN 0;
    END IF;
    RETURN raw_retention_drop(keep_from, wait, ingest_lock);
END
$$;
REVOKE ALL ON FUNCTION raw_retention_apply(date, interval, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION raw_retention_apply(date, interval, bigint) TO globalmart_stream_role;
