-- Sales per hour and per category per hour (the replaced platform's brief asked for hourly,
-- category and region sales), rolled up from the 1-minute windows at read time: always
-- consistent with them, nothing more to maintain. Hours are UTC hours.
CREATE OR REPLACE VIEW sales_per_hour AS
SELECT date_trunc('hour', window_start, 'UTC') AS window_start,
       date_trunc('hour', window_start, 'UTC') + interval '1 hour' AS window_end,
       sum(transaction_count)::bigint AS transaction_count,
       sum(total_revenue) AS total_revenue,
       sum(total_items)::bigint AS total_items,
       round(sum(total_revenue) / nullif(sum(transaction_count), 0), 2) AS avg_order_value
FROM sales_per_minute
GROUP BY 1;

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

GRANT SELECT ON sales_per_hour, sales_by_category TO globalmart_reader;
