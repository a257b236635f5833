-- The names the replaced platform's dashboards and queries read, where ours differ
-- (docs/COMPATIBILITY.md has the whole mapping). Same meaning, other name: a generated column
-- (PostgreSQL 15 stores it; a few bytes per window row). Shaped differently: a view.

-- Its Spark jobs stamped each window row with created_at when they wrote it; ours keep
-- updated_at, the time the window was last written.
ALTER TABLE sales_per_minute
    ADD COLUMN IF NOT EXISTS total_transactions bigint GENERATED ALWAYS AS (transaction_count) STORED,
    ADD COLUMN IF NOT EXISTS created_at timestamptz GENERATED ALWAYS AS (updated_at) STORED;

ALTER TABLE sales_by_country
    ADD COLUMN IF NOT EXISTS total_transactions bigint GENERATED ALWAYS AS (transaction_count) STORED,
    ADD COLUMN IF NOT EXISTS created_at timestamptz GENERATED ALWAYS AS (updated_at) STORED;

ALTER TABLE cart_metrics
    ADD COLUMN IF NOT EXISTS adds bigint GENERATED ALWAYS AS (add_to_cart_count) STORED,
    ADD COLUMN IF NOT EXISTS removes bigint GENERATED ALWAYS AS (remove_from_cart_count) STORED,
    ADD COLUMN IF NOT EXISTS updates bigint GENERATED ALWAYS AS (update_quantity_count) STORED,
    ADD COLUMN IF NOT EXISTS checkouts bigint GENERATED ALWAYS AS (checkout_count) STORED,
    ADD COLUMN IF NOT EXISTS total_cart_events bigint GENERATED ALWAYS AS
        (add_to_cart_count + remove_from_cart_count + update_quantity_count + checkout_count) STORED,
    ADD COLUMN IF NOT EXISTS created_at timestamptz GENERATED ALWAYS AS (updated_at) STORED;

ALTER TABLE category_performance
    ADD COLUMN IF NOT EXISTS total_views bigint GENERATED ALWAYS AS (view_count) STORED,
    ADD COLUMN IF NOT EXISTS created_at timestamptz GENERATED ALWAYS AS (updated_at) STORED;

ALTER TABLE trending_products
    ADD COLUMN IF NOT EXISTS created_at timestamptz GENERATED ALWAYS AS (updated_at) STORED;

-- Its abandoned carts were session windows; ours are sessions, ended at their last activity.
ALTER TABLE abandoned_carts
    ADD COLUMN IF NOT EXISTS window_end timestamptz GENERATED ALWAYS AS (last_activity_at) STORED,
    ADD COLUMN IF NOT EXISTS abandoned_cart_value numeric(14, 2) GENERATED ALWAYS AS (cart_value) STORED;

-- The threshold is the stream's configuration, not the row's: the reason says the band.
ALTER TABLE high_value_anomalies
    ADD COLUMN IF NOT EXISTS "timestamp" timestamptz GENERATED ALWAYS AS (transaction_timestamp) STORED,
    ADD COLUMN IF NOT EXISTS anomaly_type text GENERATED ALWAYS AS ('high_value') STORED,
    ADD COLUMN IF NOT EXISTS anomaly_reason text GENERATED ALWAYS AS
        ('Transaction amount $' || total_amount::text || ' at or above the high-value threshold, '
         || severity) STORED;

ALTER TABLE high_quantity_anomalies
    ADD COLUMN IF NOT EXISTS "timestamp" timestamptz GENERATED ALWAYS AS (transaction_timestamp) STORED,
    ADD COLUMN IF NOT EXISTS anomaly_type text GENERATED ALWAYS AS ('high_quantity') STORED,
    ADD COLUMN IF NOT EXISTS anomaly_reason text GENERATED ALWAYS AS
        ('Product quantity ' || quantity::text || ' at or above the high-quantity threshold, '
         || severity) STORED;

-- Anomalies per minute of event time and country. A high-quantity anomaly's country is its
-- order's (outer join: the order row may be gone after retention).
CREATE OR REPLACE VIEW anomaly_stats AS
WITH anomalies AS (
    SELECT transaction_timestamp AS at, country, 'high_value' AS anomaly_type, severity,
           detected_at
    FROM high_value_anomalies
    UNION ALL
    SELECT q.transaction_timestamp, coalesce(t.country, 'unknown'), 'high_quantity', q.severity,
           q.detected_at
    FROM high_quantity_anomalies q
    LEFT JOIN transactions t ON t.line_item_id = q.line_item_id
)
SELECT date_trunc('minute', at) AS window_start,
       date_trunc('minute', at) + interval '1 minute' AS window_end,
       country,
       count(*) AS total_anomalies,
       count(*) FILTER (WHERE anomaly_type = 'high_value') AS high_value_count,
       count(*) FILTER (WHERE anomaly_type = 'high_quantity') AS high_quantity_count,
       count(*) FILTER (WHERE severity = 'critical') AS critical_count,
       count(*) FILTER (WHERE severity = 'high') AS high_severity_count,
       count(*) FILTER (WHERE severity = 'medium') AS medium_severity_count,
       max(detected_at) AS created_at
FROM anomalies
GROUP BY 1, 2, 3;

-- Units, products and revenue sold per minute of event time and country, computed from the
-- order lines when read (a dashboard's time range filters the lines first). Its
-- fast_moving_products counted order lines of 10 units or more.
CREATE OR REPLACE VIEW inventory_metrics AS
SELECT date_trunc('minute', "timestamp") AS window_start,
       date_trunc('minute', "timestamp") + interval '1 minute' AS window_end,
       country,
       sum(quantity) AS total_units_sold,
       count(DISTINCT product_id) AS unique_products_sold,
       sum(quantity * price) AS total_revenue,
       count(*) FILTER (WHERE quantity >= 10) AS fast_moving_products,
       max(created_at) AS created_at
FROM transactions
GROUP BY 1, 2, 3;

GRANT SELECT ON anomaly_stats, inventory_metrics TO globalmart_reader;
