-- The dashboards' role (globalmart_reader, Grafana's) runs its sessions without JIT compilation,
-- as every connection of the binaries does (crates/globalmart-core/src/db.rs, SESSION): over a
-- month of day partitions a dashboard's query passes jit_above_cost, and compiling its plan
-- costs more than running it. After 30 days of the course's scenario the realtime dashboard's
-- top-products panel (trending_products, the last hour) ran 1.7 s, of which JIT would have
-- added 11.3 s of compiling (docs/ARCHITECTURE.md, "A twentieth run"). The role is the
-- cluster's: a new session of it takes the setting.
-- Migrations of several databases of one cluster run at once (the test suite's): the role is
-- altered only while it lacks the setting, and a concurrent ALTER of the same role ("tuple
-- concurrently updated", an internal error) means another one has just set it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'globalmart_reader')
        AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                        WHERE setrole = 'globalmart_reader'::regrole AND setdatabase = 0
                          AND 'jit=off' = ANY (setconfig)) THEN
        BEGIN
            ALTER ROLE globalmart_reader SET jit = off;
        EXCEPTION WHEN internal_error THEN
            NULL;
        END;
    END IF;
END
$$;
