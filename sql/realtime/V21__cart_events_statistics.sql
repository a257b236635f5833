-- Statistics of the cart events as a whole, for the abandoned-cart sweep's plan
-- (crates/globalmart-stream/src/housekeeping.rs, SWEEP). Autovacuum analyses each day partition,
-- never a partitioned table, so the parent had none: the planner took the sessions of a sweep's
-- window for 200 (its default) and looked each one's events up by index, where a day's window
-- holds about 100,000 of them and one hash join serves (docs/ARCHITECTURE.md, "A thirty-fifth
-- run"). The number of sessions is kept as a share of the rows, which stays true as days come
-- and go, so a refresh a day is enough.
--
-- Analyses cart_events (the parent and, as ANALYZE does on a partitioned table, each partition)
-- when it has no statistics of its sessions as a whole (never analysed, or analysed empty) or
-- was last analysed more than `stale` ago; returns whether it did. Runs as the owner: the
-- stream's role cannot analyse tables. Waits at most `wait` for a partition's lock
-- (autovacuum's, or raw retention's drop) and then fails; the next round tries again.
CREATE OR REPLACE FUNCTION cart_statistics_refresh(stale interval, wait interval) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_stats
               WHERE schemaname = 'public' AND tablename = 'cart_events'
                 AND attname = 'session_id' AND inherited)
        AND coalesce((SELECT last_analyze > now() - stale FROM pg_stat_user_tables
                      WHERE relid = 'cart_events'::regclass), FALSE) THEN
        RETURN FALSE;
    END IF;
    PERFORM set_config('lock_timeout', (extract(epoch FROM wait) * 1000)::bigint::text, TRUE);
    ANALYZE cart_events;
    RETURN TRUE;
END
$$;
REVOKE ALL ON FUNCTION cart_statistics_refresh(interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cart_statistics_refresh(interval, interval) TO globalmart_stream_role;
