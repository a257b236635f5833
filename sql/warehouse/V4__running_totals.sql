-- The analytics' running totals (docs/ARCHITECTURE.md, "Running totals"): kept up to date from
-- the facts each ETL chunk inserts, in that chunk's transaction
-- (crates/globalmart-batch/src/etl/totals.rs), so the analytics read them instead of every fact
-- since the beginning. `globalmart-batch analytics --recompute` still computes from the facts.
-- The customers' totals already live on dim_customers (total_transactions, total_spent,
-- last_transaction_date).

-- Per product: views, viewers, cart adds, orders, units, revenue, and the viewers who bought it.
CREATE TABLE IF NOT EXISTS agg_product_totals (
    product_id  text PRIMARY KEY,
    views       bigint NOT NULL DEFAULT 0,
    viewers     bigint NOT NULL DEFAULT 0,   -- customers who viewed it
    cart_adds   bigint NOT NULL DEFAULT 0,
    orders      bigint NOT NULL DEFAULT 0,   -- orders containing it
    units       bigint NOT NULL DEFAULT 0,
    revenue     numeric(18, 2) NOT NULL DEFAULT 0,
    buyers      bigint NOT NULL DEFAULT 0    -- of its viewers, those who bought it
);

-- Whether a customer viewed and bought a product: what makes a viewer or a converted viewer
-- new exactly once.
CREATE TABLE IF NOT EXISTS agg_customer_products (
    user_id     text NOT NULL,
    product_id  text NOT NULL,
    viewed      boolean NOT NULL DEFAULT FALSE,
    bought      boolean NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, product_id)
);

-- Sales per period (daily, weekly from Monday, monthly, quarterly) and category (as of the
-- sale, '' without one), and for 'All'.
CREATE TABLE IF NOT EXISTS agg_sales_periods (
    period_type  text NOT NULL CHECK (period_type IN ('daily', 'weekly', 'monthly', 'quarterly')),
    period_start date NOT NULL,
    category     text NOT NULL,
    orders       bigint NOT NULL,
    revenue      numeric(18, 2) NOT NULL,
    units        bigint NOT NULL,
    customers    bigint NOT NULL,
    PRIMARY KEY (period_type, period_start, category)
);

-- The days on which a customer bought in a category (and in 'All'): whether a sale makes them a
-- new customer of its week, month or quarter, late sales included.
CREATE TABLE IF NOT EXISTS agg_customer_categories (
    user_id   text NOT NULL,
    category  text NOT NULL,
    days      date[] NOT NULL,
    PRIMARY KEY (user_id, category)
);

-- The first day of the period of `kind` that `day` falls in (weeks start on Monday, as ISO).
CREATE OR REPLACE FUNCTION agg_period_start(kind text, day date) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE kind
        WHEN 'daily' THEN day
        WHEN 'weekly' THEN day - (extract(isodow FROM day)::int - 1)
        WHEN 'monthly' THEN date_trunc('month', day::timestamp)::date
        ELSE date_trunc('quarter', day::timestamp)::date END;

-- A warehouse loaded before this migration: the totals of the facts it holds.
INSERT INTO agg_customer_products (user_id, product_id, viewed, bought)
SELECT user_id, product_id, bool_or(viewed), bool_or(bought)
FROM (
    SELECT c.user_id, p.product_id, TRUE AS viewed, FALSE AS bought
    FROM fact_product_views f JOIN dim_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'view'
    UNION ALL
    SELECT c.user_id, p.product_id, FALSE, TRUE
    FROM fact_sales f JOIN dim_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
) pairs
GROUP BY user_id, product_id
ON CONFLICT DO NOTHING;

INSERT INTO agg_product_totals (product_id, views, viewers, cart_adds, orders, units, revenue,
    buyers)
SELECT k.product_id, coalesce(v.views, 0), coalesce(m.viewers, 0), coalesce(a.adds, 0),
    coalesce(s.orders, 0), coalesce(s.units, 0), coalesce(s.revenue, 0), coalesce(m.buyers, 0)
FROM (SELECT DISTINCT product_id FROM dim_products) k
LEFT JOIN (SELECT p.product_id, count(*) AS views
           FROM fact_product_views f JOIN dim_products p USING (product_id_pk)
           WHERE f.event_type = 'view' GROUP BY p.product_id) v USING (product_id)
LEFT JOIN (SELECT p.product_id, count(*) AS adds
           FROM fact_cart_events f JOIN dim_products p USING (product_id_pk)
           WHERE f.event_type = 'add_to_cart' GROUP BY p.product_id) a USING (product_id)
LEFT JOIN (SELECT p.product_id, count(DISTINCT f.transaction_id) AS orders,
               sum(f.quantity) AS units, sum(f.total_amount) AS revenue
           FROM fact_sales f JOIN dim_products p USING (product_id_pk)
           GROUP BY p.product_id) s USING (product_id)
LEFT JOIN (SELECT product_id, count(*) FILTER (WHERE viewed) AS viewers,
               count(*) FILTER (WHERE viewed AND bought) AS buyers
           FROM agg_customer_products GROUP BY product_id) m USING (product_id)
WHERE v.views IS NOT NULL OR a.adds IS NOT NULL OR s.orders IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO agg_sales_periods (period_type, period_start, category, orders, revenue, units,
    customers)
SELECT k.kind, agg_period_start(k.kind, l.day), c.category, count(DISTINCT l.transaction_id),
    sum(l.total_amount), sum(l.quantity), count(DISTINCT l.user_id)
FROM (SELECT f.transaction_id, cu.user_id, coalesce(p.category, '') AS category, f.quantity,
          f.total_amount, (f.transaction_timestamp AT TIME ZONE 'UTC')::date AS day
      FROM fact_sales f JOIN dim_customers cu USING (customer_id)
          JOIN dim_products p USING (product_id_pk)) l
CROSS JOIN LATERAL (VALUES (l.category), ('All')) c(category)
CROSS JOIN (VALUES ('daily'), ('weekly'), ('monthly'), ('quarterly')) k(kind)
GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;

INSERT INTO agg_customer_categories (user_id, category, days)
SELECT l.user_id, c.category, array_agg(DISTINCT l.day ORDER BY l.day)
FROM (SELECT cu.user_id, coalesce(p.category, '') AS category,
          (f.transaction_timestamp AT TIME ZONE 'UTC')::date AS day
      FROM fact_sales f JOIN dim_customers cu USING (customer_id)
          JOIN dim_products p USING (product_id_pk)) l
CROSS JOIN LATERAL (VALUES (l.category), ('All')) c(category)
GROUP BY 1, 2
ON CONFLICT DO NOTHING;
