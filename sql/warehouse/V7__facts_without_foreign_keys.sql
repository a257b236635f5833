-- The facts' dimension keys are the ETL's to keep: every event gets the versions valid at its
-- time, inferred members included, or its chunk fails (crates/globalmart-batch/src/etl/facts.rs),
-- and `globalmart-batch check` counts orphan keys. As foreign keys they cost each fact row four
-- lookups and a FOR KEY SHARE lock on its dimension rows, which dirties dim_customers' pages:
-- with 10 million customers and 7 days of the course's scenario, inserting 90,000 views took
-- 6.3 s with them and 2.4 s without, 21,500 sale lines 1.8 s and 0.7 s (docs/ARCHITECTURE.md,
-- "Point-in-time SCD2"). The key columns keep their indexes.
ALTER TABLE fact_sales
    DROP CONSTRAINT IF EXISTS fact_sales_customer_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_sales_product_id_pk_fkey,
    DROP CONSTRAINT IF EXISTS fact_sales_geography_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_sales_date_id_fkey;
ALTER TABLE fact_product_views
    DROP CONSTRAINT IF EXISTS fact_product_views_customer_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_product_views_product_id_pk_fkey,
    DROP CONSTRAINT IF EXISTS fact_product_views_geography_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_product_views_date_id_fkey;
ALTER TABLE fact_cart_events
    DROP CONSTRAINT IF EXISTS fact_cart_events_customer_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_cart_events_product_id_pk_fkey,
    DROP CONSTRAINT IF EXISTS fact_cart_events_geography_id_fkey,
    DROP CONSTRAINT IF EXISTS fact_cart_events_date_id_fkey;
