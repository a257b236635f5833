-- The products' running totals in a table per lane, agg_product_totals a view over them
-- (crates/globalmart-batch/src/etl/totals.rs). Each of the first three tables is written by one
-- fact's chunks only, one chunk at a time, so a chunk adds its counts before it takes the
-- totals' lock. Only the converted viewers, which the views' and the sales' chunks both count,
-- are written under the lock. In one table (V4), every lane's counts were written under the
-- lock, and the sales' chunk waited there for the views' and the cart events' (docs/
-- ARCHITECTURE.md, "Running totals").
CREATE TABLE IF NOT EXISTS agg_product_views (
    product_id  text PRIMARY KEY,
    views       bigint NOT NULL,
    viewers     bigint NOT NULL    -- customers who viewed it
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS agg_product_cart_adds (
    product_id  text PRIMARY KEY,
    cart_adds   bigint NOT NULL
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS agg_product_sales (
    product_id  text PRIMARY KEY,
    orders      bigint NOT NULL,   -- orders containing it
    units       bigint NOT NULL,
    revenue     numeric(18, 2) NOT NULL
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS agg_product_buyers (
    product_id  text PRIMARY KEY,
    buyers      bigint NOT NULL    -- of its viewers, those who bought it
) WITH (fillfactor = 70);

-- The totals counted so far move over, once, while agg_product_totals is the table (docs/
-- DEVELOPING.md, "Schemas and migrations": a file runs again after a rollback).
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('agg_product_totals')) = 'r' THEN
        INSERT INTO agg_product_views (product_id, views, viewers)
        SELECT product_id, views, viewers FROM agg_product_totals
        WHERE views > 0 OR viewers > 0 ORDER BY 1
        ON CONFLICT DO NOTHING;
        INSERT INTO agg_product_cart_adds (product_id, cart_adds)
        SELECT product_id, cart_adds FROM agg_product_totals WHERE cart_adds > 0 ORDER BY 1
        ON CONFLICT DO NOTHING;
        INSERT INTO agg_product_sales (product_id, orders, units, revenue)
        SELECT product_id, orders, units, revenue FROM agg_product_totals
        WHERE orders > 0 OR units > 0 OR revenue <> 0 ORDER BY 1
        ON CONFLICT DO NOTHING;
        INSERT INTO agg_product_buyers (product_id, buyers)
        SELECT product_id, buyers FROM agg_product_totals WHERE buyers > 0 ORDER BY 1
        ON CONFLICT DO NOTHING;
        DROP TABLE agg_product_totals;
    END IF;
END
$$;

-- The columns and names the table had: the analytics read it as before. Joined on the keys
-- (a full join each: a product may be in any of them alone), not summed over a union, which
-- hashed a million rows into 250,000 groups (0.8 s where the table was read in 0.2 s).
CREATE OR REPLACE VIEW agg_product_totals AS
SELECT product_id, coalesce(v.views, 0) AS views, coalesce(v.viewers, 0) AS viewers,
    coalesce(c.cart_adds, 0) AS cart_adds, coalesce(s.orders, 0) AS orders,
    coalesce(s.units, 0) AS units, coalesce(s.revenue, 0)::numeric(18, 2) AS revenue,
    coalesce(b.buyers, 0) AS buyers
FROM agg_product_views v
    FULL JOIN agg_product_cart_adds c USING (product_id)
    FULL JOIN agg_product_sales s USING (product_id)
    FULL JOIN agg_product_buyers b USING (product_id);
