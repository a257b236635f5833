//! The analytics' running totals (`agg_*` tables, docs/ARCHITECTURE.md, "Running totals"): each
//! fact's chunk adds what it inserted, in its own transaction, so the analytics read totals
//! whose size follows the products, customers and periods instead of every fact since the
//! beginning. What a chunk inserted is the temporary table `inserted` (its event ids), written
//! by the merge (`facts.rs`); a fact skipped as loaded before adds nothing.
//!
//! Counts of distinct things stay exact however the ETL cuts its chunks and however late an
//! event comes: an order counts once per product and category because lines of its transaction
//! loaded by earlier chunks are looked up; a viewer, a converted viewer and a period's customer
//! count once because `agg_customer_products` and `agg_customer_category_days` remember what was
//! counted. `globalmart-batch analytics --recompute` computes the same figures from the facts.

use tokio_postgres::Transaction;

use crate::error::EtlError;

/// Serialises the totals' updates between runs that overlap (each table's watermark lock
/// serialises its own chunks, not one table's against another's): what makes a pair's
/// viewer or buyer new must not be judged by two transactions at once.
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('globalmart.agg_totals'));";

/// After `fact_sales`: per product orders, units, revenue and newly converted viewers; per
/// period and category orders, revenue, units and new customers.
pub const SALES: &str = "
    CREATE TEMP TABLE new_lines ON COMMIT DROP AS
    SELECT f.event_id, f.transaction_id, c.user_id, p.product_id,
        coalesce(p.category, '') AS category, f.quantity, f.total_amount,
        (f.transaction_timestamp AT TIME ZONE 'UTC')::date AS day
    FROM inserted i JOIN fact_sales f USING (event_id)
        JOIN dim_customers c USING (customer_id) JOIN dim_products p USING (product_id_pk);

    -- Lines of the same orders that earlier chunks loaded: those orders are counted already.
    CREATE TEMP TABLE earlier_lines ON COMMIT DROP AS
    SELECT f.transaction_id, p.product_id, coalesce(p.category, '') AS category
    FROM fact_sales f JOIN dim_products p USING (product_id_pk)
    WHERE f.transaction_id IN (SELECT transaction_id FROM new_lines)
        AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.event_id = f.event_id);

    INSERT INTO agg_product_totals AS t (product_id, orders, units, revenue)
    SELECT product_id,
        count(DISTINCT transaction_id) FILTER (WHERE NOT EXISTS (
            SELECT 1 FROM earlier_lines e
            WHERE e.transaction_id = n.transaction_id AND e.product_id = n.product_id)),
        sum(quantity), sum(total_amount)
    FROM new_lines n GROUP BY product_id ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET orders = t.orders + excluded.orders,
        units = t.units + excluded.units, revenue = t.revenue + excluded.revenue;

    -- A viewer who buys the product for the first time converts.
    WITH pairs AS (SELECT DISTINCT user_id, product_id FROM new_lines),
    converted AS (
        SELECT p.product_id, count(*) AS buyers
        FROM pairs p JOIN agg_customer_products m USING (user_id, product_id)
        WHERE m.viewed AND NOT m.bought GROUP BY p.product_id
    ), marked AS (
        INSERT INTO agg_customer_products AS m (user_id, product_id, bought)
        SELECT user_id, product_id, TRUE FROM pairs ORDER BY 1, 2
        ON CONFLICT (user_id, product_id) DO UPDATE SET bought = TRUE WHERE NOT m.bought
    )
    UPDATE agg_product_totals t SET buyers = t.buyers + c.buyers
    FROM converted c WHERE t.product_id = c.product_id;

    WITH lines AS (
        SELECT n.user_id, n.transaction_id, n.quantity, n.total_amount, n.day, c.category,
            k.kind, agg_period_start(k.kind, n.day) AS period_start,
            NOT EXISTS (SELECT 1 FROM earlier_lines e WHERE e.transaction_id = n.transaction_id
                AND (c.category = 'All' OR e.category = n.category)) AS new_order
        FROM new_lines n
        CROSS JOIN LATERAL (VALUES (n.category), ('All')) c(category)
        CROSS JOIN (VALUES ('daily'), ('weekly'), ('monthly'), ('quarterly')) k(kind)
    ), sums AS (
        SELECT kind, period_start, category,
            count(DISTINCT transaction_id) FILTER (WHERE new_order) AS orders,
            sum(total_amount) AS revenue, sum(quantity) AS units
        FROM lines GROUP BY 1, 2, 3
    ), members AS (
        SELECT DISTINCT user_id, category, kind, period_start FROM lines
    ), newcomers AS (
        -- Customers with no earlier day in the period, in that category.
        SELECT m.kind, m.period_start, m.category, count(*) AS customers
        FROM members m
        WHERE NOT EXISTS (
            SELECT 1 FROM agg_customer_category_days a
            WHERE a.user_id = m.user_id AND a.category = m.category
                AND a.day >= m.period_start AND a.day < agg_period_end(m.kind, m.period_start))
        GROUP BY 1, 2, 3
    )
    INSERT INTO agg_sales_periods AS t (period_type, period_start, category, orders, revenue,
        units, customers)
    SELECT s.kind, s.period_start, s.category, s.orders, s.revenue, s.units,
        coalesce(n.customers, 0)
    FROM sums s LEFT JOIN newcomers n USING (kind, period_start, category)
    ORDER BY 1, 2, 3
    ON CONFLICT (period_type, period_start, category) DO UPDATE SET
        orders = t.orders + excluded.orders, revenue = t.revenue + excluded.revenue,
        units = t.units + excluded.units, customers = t.customers + excluded.customers;

    INSERT INTO agg_customer_category_days (user_id, category, day)
    SELECT DISTINCT n.user_id, c.category, n.day
    FROM new_lines n CROSS JOIN LATERAL (VALUES (n.category), ('All')) c(category)
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;";

/// After `fact_product_views`: per product views, and viewers new to it (converted at once
/// when they had bought it before).
pub const VIEWS: &str = "
    CREATE TEMP TABLE new_views ON COMMIT DROP AS
    SELECT c.user_id, p.product_id
    FROM inserted i JOIN fact_product_views f USING (event_id)
        JOIN dim_customers c USING (customer_id) JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'view';

    INSERT INTO agg_product_totals AS t (product_id, views)
    SELECT product_id, count(*) FROM new_views GROUP BY product_id ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET views = t.views + excluded.views;

    WITH pairs AS (SELECT DISTINCT user_id, product_id FROM new_views),
    viewers AS (
        SELECT p.product_id, count(*) AS viewers, count(*) FILTER (WHERE m.bought) AS buyers
        FROM pairs p LEFT JOIN agg_customer_products m USING (user_id, product_id)
        WHERE m.viewed IS NOT TRUE GROUP BY p.product_id
    ), marked AS (
        INSERT INTO agg_customer_products AS m (user_id, product_id, viewed)
        SELECT user_id, product_id, TRUE FROM pairs ORDER BY 1, 2
        ON CONFLICT (user_id, product_id) DO UPDATE SET viewed = TRUE WHERE NOT m.viewed
    )
    UPDATE agg_product_totals t SET viewers = t.viewers + v.viewers, buyers = t.buyers + v.buyers
    FROM viewers v WHERE t.product_id = v.product_id;";

/// After `fact_cart_events`: per product cart adds.
pub const CART_EVENTS: &str = "
    INSERT INTO agg_product_totals AS t (product_id, cart_adds)
    SELECT p.product_id, count(*)
    FROM inserted i JOIN fact_cart_events f USING (event_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'add_to_cart'
    GROUP BY p.product_id ORDER BY p.product_id
    ON CONFLICT (product_id) DO UPDATE SET cart_adds = t.cart_adds + excluded.cart_adds;";

/// Adds what the chunk inserted (the temporary table `inserted`) to the totals, by `sql` (one
/// of this module's statements), under the lock.
pub async fn add(tx: &Transaction<'_>, sql: &str) -> Result<(), EtlError> {
    tx.batch_execute(LOCK).await?;
    tx.batch_execute(sql).await?;
    Ok(())
}
