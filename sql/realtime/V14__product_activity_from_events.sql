-- The product activity per minute (trending_products, and per category category_performance)
-- read from the raw events when queried, instead of tallied into tables
-- (docs/ARCHITECTURE.md, "Product activity read from the events"). With 250,000 products a
-- product rarely comes back within a minute, so trending_products held a row for about every
-- view, cart add and sale line: a second copy of the raw rows, written through a pending table
-- and a fold that cost more per row than the raw row's own COPY, on the second core
-- (docs/PERFORMANCE.md). As views they hold exactly the events saved, always: nothing to fold,
-- nothing to move when a late catalogue record brings a product's category (a product counts
-- under its catalogue's category, else the one its events of that minute named, else 'unknown').
-- They cover the days the raw tables keep (STREAM_RAW_RETENTION), not STREAM_METRICS_RETENTION.
-- The activity of days whose raw events retention has dropped goes with the old tables.
--
-- A minute's start and end are written out below as each raw table's block-range index has them
-- (an index serves a condition on the same expression only): the start is date_bin's, the end
-- the start plus a minute in UTC, where timestamptz + interval is not immutable and cannot be
-- indexed. A dashboard's time range, on either column, reaches through the views to these
-- indexes; rows are saved in about event-time order, so such an index keeps a summary per range
-- of blocks rather than an entry per row.

DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('trending_products')) = 'r' THEN
        DROP TABLE trending_products;
    END IF;
    -- With sales_by_category, which reads it: created again below.
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('category_performance')) = 'r' THEN
        DROP TABLE category_performance CASCADE;
    END IF;
END
$$;
DROP TABLE IF EXISTS product_activity_pending;

CREATE INDEX IF NOT EXISTS idx_product_view_events_minute ON product_view_events USING brin (
    (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00')),
    ((date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
        + interval '1 minute') AT TIME ZONE 'UTC')
) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS idx_cart_events_minute ON cart_events USING brin (
    (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00')),
    ((date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
        + interval '1 minute') AT TIME ZONE 'UTC')
) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS idx_transactions_minute ON transactions USING brin (
    (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00')),
    ((date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
        + interval '1 minute') AT TIME ZONE 'UTC')
) WITH (autosummarize = on);

-- Per minute and product: its views, cart adds and sale lines (units and revenue), each event
-- once, as saved. trend_score weighs a purchase 5, a cart add 3, a view 1; updated_at is when
-- the minute's last event was saved.
CREATE OR REPLACE VIEW trending_products AS
SELECT a.window_start, a.window_end, a.product_id,
       coalesce(p.name, a.product_name) AS product_name,
       coalesce(p.category, a.category) AS category,
       a.view_count, a.cart_add_count, a.purchase_count, a.units_sold, a.revenue,
       (a.view_count + 3 * a.cart_add_count + 5 * a.purchase_count)::numeric(14, 2) AS trend_score,
       a.updated_at,
       a.updated_at AS created_at
FROM (
    SELECT window_start, window_end, product_id,
           min(product_name) AS product_name, min(category) AS category,
           sum(views)::bigint AS view_count, sum(cart_adds)::bigint AS cart_add_count,
           sum(lines)::bigint AS purchase_count, sum(units)::bigint AS units_sold,
           sum(revenue)::numeric(16, 2) AS revenue, max(created_at) AS updated_at
    FROM (
        SELECT date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AS window_start,
               (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
                   + interval '1 minute') AT TIME ZONE 'UTC' AS window_end,
               product_id, product_name, category,
               1::bigint AS views, 0::bigint AS cart_adds, 0::bigint AS lines,
               0::bigint AS units, 0::numeric AS revenue, created_at
        FROM product_view_events WHERE event_type = 'view'
        UNION ALL
        SELECT date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00'),
               (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
                   + interval '1 minute') AT TIME ZONE 'UTC',
               product_id, product_name, category,
               0::bigint, 1::bigint, 0::bigint, 0::bigint, 0::numeric, created_at
        FROM cart_events WHERE event_type = 'add_to_cart'
        UNION ALL
        SELECT date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00'),
               (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
                   + interval '1 minute') AT TIME ZONE 'UTC',
               product_id, NULL::text, NULL::text,
               0::bigint, 0::bigint, 1::bigint, quantity::bigint, (price * quantity)::numeric,
               created_at
        FROM transactions
    ) e
    GROUP BY window_start, window_end, product_id
) a
LEFT JOIN products p ON p.product_id = a.product_id;

-- The same per minute and category. The replaced platform's was per category and country: a
-- query grouping by category gets the same figures (docs/COMPATIBILITY.md).
CREATE OR REPLACE VIEW category_performance AS
SELECT window_start, window_end, coalesce(category, 'unknown') AS category,
       sum(view_count)::bigint AS view_count, sum(cart_add_count)::bigint AS cart_add_count,
       sum(purchase_count)::bigint AS purchase_count, sum(units_sold)::bigint AS units_sold,
       sum(revenue)::numeric(16, 2) AS revenue, max(updated_at) AS updated_at,
       sum(view_count)::bigint AS total_views, max(updated_at) AS created_at
FROM trending_products
GROUP BY window_start, window_end, 3;

-- As V4 had it, over the view.
CREATE OR REPLACE VIEW sales_by_category AS
SELECT date_trunc('hour', window_start, 'UTC') AS window_start,
       date_trunc('hour', window_start, 'UTC') + interval '1 hour' AS window_end,
       category,
       sum(purchase_count)::bigint AS order_lines,
       sum(units_sold)::bigint AS units_sold,
       sum(revenue) AS revenue
FROM category_performance
GROUP BY 1, 3
HAVING sum(purchase_count) > 0;

GRANT SELECT ON trending_products, category_performance, sales_by_category TO globalmart_reader;
