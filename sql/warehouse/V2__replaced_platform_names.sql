-- The names the replaced platform's dashboards read, where ours differ (docs/COMPATIBILITY.md
-- has the whole mapping): same meaning, other name, as generated columns.
ALTER TABLE sales_trends
    ADD COLUMN IF NOT EXISTS total_sales bigint GENERATED ALWAYS AS (total_orders) STORED,
    ADD COLUMN IF NOT EXISTS total_quantity bigint GENERATED ALWAYS AS (total_units) STORED;
