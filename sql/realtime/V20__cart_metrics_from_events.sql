-- The cart metrics per minute and country read from the raw cart events and the abandoned carts
-- when queried, instead of tallied into a table (docs/ARCHITECTURE.md, "Product activity read
-- from the events", which V14 did for the product activity). Counting a session once per minute
-- took a row of cart_session_windows per session and minute, written with each batch of cart
-- events within the metrics' retention: the dearest statement of a cart event's save after its
-- own COPY, and one that the two halves of a lane behind its partitions waited for each other on
-- (the same minutes' rows; docs/ARCHITECTURE.md, "A thirty-third run"). As a view it holds exactly
-- the events saved and the carts the sweep recorded: nothing to tally, nothing to update when a
-- cart is found abandoned (it counts in the minute and country of its last activity). It covers
-- the days the raw tables keep (STREAM_RAW_RETENTION), not STREAM_METRICS_RETENTION.
--
-- A minute's start and end are written as the cart events' block-range index has them (V14), so
-- a dashboard's time range on either column reaches through the view to that index; the
-- abandoned carts of each minute are found by their last activity's index.
--
-- The windows the table held are not lost: their events and abandoned carts are still there.

DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('cart_metrics')) = 'r' THEN
        DROP TABLE cart_metrics;
    END IF;
END
$$;
DROP TABLE IF EXISTS cart_session_windows;

-- The replaced platform's names (V8: adds, removes, updates, checkouts, total_cart_events,
-- created_at) are columns of the view.
CREATE OR REPLACE VIEW cart_metrics AS
SELECT w.window_start, w.window_end, w.country,
       w.add_to_cart_count, w.remove_from_cart_count, w.update_quantity_count, w.checkout_count,
       w.active_sessions, w.checkout_sessions,
       a.abandoned_sessions,
       least(100, round(100.0 * a.abandoned_sessions / greatest(w.active_sessions, 1), 2))
           ::numeric(5, 2) AS abandonment_rate_pct,
       w.updated_at,
       w.add_to_cart_count AS adds, w.remove_from_cart_count AS removes,
       w.update_quantity_count AS updates, w.checkout_count AS checkouts,
       w.add_to_cart_count + w.remove_from_cart_count + w.update_quantity_count
           + w.checkout_count AS total_cart_events,
       w.updated_at AS created_at
FROM (
    SELECT date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AS window_start,
           (date_bin('1 minute', "timestamp", '1970-01-01 00:00:00+00') AT TIME ZONE 'UTC'
               + interval '1 minute') AT TIME ZONE 'UTC' AS window_end,
           country,
           count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_cart_count,
           count(*) FILTER (WHERE event_type = 'remove_from_cart') AS remove_from_cart_count,
           count(*) FILTER (WHERE event_type = 'update_quantity') AS update_quantity_count,
           count(*) FILTER (WHERE event_type = 'checkout') AS checkout_count,
           -- Sessions with cart activity in the minute and country, each once.
           count(DISTINCT session_id) AS active_sessions,
           count(DISTINCT session_id) FILTER (WHERE event_type = 'checkout') AS checkout_sessions,
           -- When the minute's last event was saved.
           max(created_at) AS updated_at
    FROM cart_events
    GROUP BY 1, 2, 3
) w
CROSS JOIN LATERAL (
    SELECT count(*) AS abandoned_sessions FROM abandoned_carts c
    WHERE c.last_activity_at >= w.window_start AND c.last_activity_at < w.window_end
      AND c.country = w.country
) a;

GRANT SELECT ON cart_metrics TO globalmart_reader;
