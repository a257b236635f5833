-- Product activity written behind (docs/ARCHITECTURE.md, "Metrics counted once"): a saved batch
-- appends its per-(minute, product) tallies here, in its own transaction, and housekeeping
-- folds them into trending_products and category_performance every second, in one transaction
-- that deletes what it folds. Upserting them in the batch's transaction was half of a day's
-- database time within the metrics' retention (docs/PERFORMANCE.md): three indexes a row on
-- the saver's path, where an append to this table costs a thirtieth of that.
--
-- No key: rows are only appended, read whole by the fold, and deleted. Logged, so a crash keeps
-- them for the next fold: nothing counted is lost, and as the fold deletes what it adds in one
-- transaction, nothing is counted twice.
CREATE TABLE IF NOT EXISTS product_activity_pending (
    window_start   timestamptz NOT NULL,
    product_id     text NOT NULL,
    product_name   text,
    category       text,
    view_count     bigint NOT NULL,
    cart_add_count bigint NOT NULL,
    purchase_count bigint NOT NULL,
    units_sold     bigint NOT NULL,
    revenue        numeric(16, 2) NOT NULL
);

-- The stock's sales pace and the 10-minute demand (write/stock.rs, write/patterns.rs) add a
-- batch's products' sales still pending to those of trending_products: found by product and
-- minute among the few rows that hold sales, not by reading the table.
CREATE INDEX IF NOT EXISTS idx_product_activity_pending_sales
    ON product_activity_pending (product_id, window_start) WHERE units_sold > 0;

-- Churned whole every few seconds: vacuumed after every 10,000 rows deleted, not a fifth of the
-- table, so its pages are reused instead of growing through a backfill.
ALTER TABLE product_activity_pending SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000);
