-- The day partitions of one fact table (docs/ARCHITECTURE.md, "Two lanes"): the fact tables
-- load side by side, and creating a partition locks its parent table exclusively, so a chunk
-- makes only its own table's partitions, in a statement of its own; making all three tables'
-- (fact_partitions_ensure(date[]), sql/warehouse/V8__facts_by_day.sql) waited for the other
-- lane's transaction on its table while that one waited for this one's lock. Runs as the
-- owner: the batch role cannot create tables.
CREATE OR REPLACE FUNCTION fact_partitions_ensure(parent text, days date[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    day date;
    partition text;
BEGIN
    IF parent NOT IN ('fact_sales', 'fact_product_views', 'fact_cart_events') THEN
        RAISE EXCEPTION 'fact_partitions_ensure: % is not a fact table', parent;
    END IF;
    -- Two runs creating the same day wait for each other instead of failing.
    PERFORM pg_advisory_xact_lock(hashtext('globalmart.fact_partitions.' || parent));
    FOREACH day IN ARRAY days LOOP
        partition := parent || '_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(partition) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                partition, parent, day::timestamp AT TIME ZONE 'UTC',
                (day + 1)::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION fact_partitions_ensure(text, date[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fact_partitions_ensure(text, date[]) TO globalmart_batch_role;

-- The three tables' partitions at once (the conversion of V8, the benchmark's floor), now
-- through the function above: one definition of how a day partition is made.
CREATE OR REPLACE FUNCTION fact_partitions_ensure(days date[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    parent text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['fact_sales', 'fact_product_views', 'fact_cart_events'] LOOP
        PERFORM fact_partitions_ensure(parent, days);
    END LOOP;
END
$$;
