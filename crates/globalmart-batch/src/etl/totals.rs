//! The analytics' running totals (`agg_*` tables, docs/ARCHITECTURE.md, "Running totals"): each
//! fact's chunk adds what it inserted, in its own transaction, so the analytics read totals
//! whose size follows the products, customers and periods instead of every fact since the
//! beginning. What a chunk inserted is the temporary table `inserted` (its rows), written by
//! the merge (`facts.rs`); a fact skipped as loaded before adds nothing. Their users come from
//! `chunk_customers`, the customer versions of the chunk's users (`facts.rs`).
//!
//! Counts of distinct things stay exact however the ETL cuts its chunks and however late an
//! event comes: an order counts once per product and category because lines of its transaction
//! loaded by earlier chunks are looked up; a viewer, a converted viewer and a period's customer
//! count once because `agg_customer_products_viewed`, `agg_customer_products_bought` and
//! `agg_customer_category_days` remember what was counted. `globalmart-batch analytics
//! --recompute` computes the same figures from the facts.

use tokio_postgres::Transaction;

use crate::error::EtlError;

/// Serialises the writes to rows that chunks of different fact tables share: the products'
/// totals (and whether a pair one lane's chunk completes converts, judged from the other
/// lane's pairs: see [`SALES_SHARED`]), the buyers' current rows, and the preparations'
/// inferred members and calendar days (`facts.rs`). Held to the end of its transaction, and
/// taken before any shared row is touched (a chunk holds only rows of its own fact's when it
/// waits for it), so two chunks never wait for each other's rows in a cycle
/// (docs/ARCHITECTURE.md, "Lanes"). Every chunk commits holding it, so the RFM's reads under it
/// see no chunk commit (`analytics/rfm.rs`).
pub const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('globalmart.agg_totals'));";

/// After `fact_sales`, what only the sales' chunks write (outside the lock): the pairs bought;
/// per period and category orders, revenue, units and new customers; per customer orders, spend
/// and last order in agg_customer_totals, marked with the chunk's generation (numbered while the
/// chunk holds the sales' watermark row, so in commit order among the sales' chunks: the RFM's
/// rerun rescores the customers marked since, `analytics/quintiles.rs`). It leaves `new_lines`,
/// `new_pairs_bought`, `earlier_lines` and `buyers` for [`SALES_SHARED`].
const SALES_OWN: &str = "
    CREATE TEMP TABLE new_lines ON COMMIT DROP AS
    SELECT f.transaction_id, c.user_id, p.product_id,
        coalesce(p.category, '') AS category, f.quantity, f.total_amount,
        f.transaction_timestamp AS at, (f.transaction_timestamp AT TIME ZONE 'UTC')::date AS day
    FROM inserted f JOIN chunk_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk);

    -- The pairs bought for the first time: marking them returns them. Only the sales' chunks
    -- write these pairs, one at a time, so no chunk waits here for another's rows; whether the
    -- buyer had viewed the product is judged under the lock (SALES_SHARED).
    CREATE TEMP TABLE new_pairs_bought (user_id text, product_id text) ON COMMIT DROP;
    WITH marked AS (
        INSERT INTO agg_customer_products_bought (user_id, product_id)
        SELECT DISTINCT user_id, product_id FROM new_lines ORDER BY 1, 2
        ON CONFLICT DO NOTHING RETURNING user_id, product_id
    )
    INSERT INTO new_pairs_bought SELECT user_id, product_id FROM marked;

    -- Lines of the same orders that earlier chunks loaded: those orders are counted already.
    -- An order's lines share its time (one transactions message), so they are looked up in
    -- the day partitions of the new lines only.
    CREATE TEMP TABLE earlier_lines ON COMMIT DROP AS
    SELECT f.transaction_id, p.product_id, coalesce(p.category, '') AS category
    FROM fact_sales f JOIN dim_products p USING (product_id_pk)
    WHERE f.transaction_id IN (SELECT transaction_id FROM new_lines)
        AND f.transaction_timestamp
            >= (SELECT min(day) FROM new_lines)::timestamp AT TIME ZONE 'UTC'
        AND f.transaction_timestamp
            < (SELECT max(day) + 1 FROM new_lines)::timestamp AT TIME ZONE 'UTC'
        AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.event_id = f.event_id);

    -- The orders lines loaded by earlier chunks counted already, per category and under 'All'.
    CREATE TEMP TABLE counted_orders ON COMMIT DROP AS
    SELECT transaction_id, category FROM earlier_lines
    UNION SELECT transaction_id, 'All' FROM earlier_lines;

    -- Each order's lines per day and category, and under 'All': its sums, and whether it is
    -- new there (a hash join with the counted ones, not a lookup per order).
    CREATE TEMP TABLE new_orders ON COMMIT DROP AS
    SELECT n.user_id, n.transaction_id, n.day, c.category, min(n.at) AS at,
        sum(n.quantity) AS units, sum(n.total_amount) AS revenue,
        e.transaction_id IS NULL AS new_order
    FROM new_lines n CROSS JOIN LATERAL (VALUES (n.category), ('All')) c(category)
        LEFT JOIN counted_orders e
            ON e.transaction_id = n.transaction_id AND e.category = c.category
    GROUP BY n.user_id, n.transaction_id, n.day, c.category, e.transaction_id;

    -- The periods of the chunk's days, worked out once per day rather than once per order.
    CREATE TEMP TABLE chunk_days ON COMMIT DROP AS
    SELECT day, week, agg_period_end('weekly', week) AS week_end,
        month, agg_period_end('monthly', month) AS month_end,
        quarter, agg_period_end('quarterly', quarter) AS quarter_end
    FROM (SELECT day, agg_period_start('weekly', day) AS week,
              agg_period_start('monthly', day) AS month,
              agg_period_start('quarterly', day) AS quarter
          FROM (SELECT DISTINCT day FROM new_lines) d) p;

    -- Each buyer's new days per category, with whether they bought in that category earlier in
    -- the day's week, month or quarter: one read of their days over the span of all four.
    CREATE TEMP TABLE buyer_days ON COMMIT DROP AS
    SELECT m.user_id, m.category, m.day, h.*
    FROM (SELECT DISTINCT user_id, category, day FROM new_orders) m JOIN chunk_days p USING (day)
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.day = m.day) > 0 AS in_daily,
            count(*) FILTER (WHERE a.day >= p.week AND a.day < p.week_end) > 0 AS in_weekly,
            count(*) FILTER (WHERE a.day >= p.month AND a.day < p.month_end) > 0 AS in_monthly,
            count(*) FILTER (WHERE a.day >= p.quarter AND a.day < p.quarter_end) > 0
                AS in_quarterly
        FROM agg_customer_category_days a
        WHERE a.user_id = m.user_id AND a.category = m.category
            AND a.day >= least(p.week, p.quarter)
            AND a.day < greatest(p.week_end, p.quarter_end)) h;

    -- Distinct orders and customers are counted by grouping on them first, which hashes,
    -- where count(DISTINCT) sorts every group.
    WITH periods AS (
        SELECT c.day, k.kind, k.period_start
        FROM chunk_days c CROSS JOIN LATERAL (VALUES ('daily', c.day), ('weekly', c.week),
            ('monthly', c.month), ('quarterly', c.quarter)) k(kind, period_start)
    ), period_orders AS (
        -- Each order once per period and category (an order re-sent with another time has
        -- rows on two days).
        SELECT p.kind, p.period_start, o.category, o.transaction_id,
            bool_or(o.new_order) AS new_order, sum(o.revenue) AS revenue, sum(o.units) AS units
        FROM new_orders o JOIN periods p USING (day) GROUP BY 1, 2, 3, 4
    ), sums AS (
        SELECT kind, period_start, category, count(*) FILTER (WHERE new_order) AS orders,
            sum(revenue) AS revenue, sum(units) AS units
        FROM period_orders GROUP BY 1, 2, 3
    ), newcomers AS (
        -- Customers with no earlier day in the period, in that category.
        SELECT kind, period_start, category, count(*) AS customers
        FROM (SELECT DISTINCT p.kind, p.period_start, b.category, b.user_id
              FROM buyer_days b JOIN periods p USING (day)
              WHERE NOT CASE p.kind WHEN 'daily' THEN b.in_daily WHEN 'weekly' THEN b.in_weekly
                  WHEN 'monthly' THEN b.in_monthly ELSE b.in_quarterly END) n
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

    -- Days already recorded (in_daily) need no insert.
    INSERT INTO agg_customer_category_days (user_id, category, day)
    SELECT user_id, category, day FROM buyer_days WHERE NOT in_daily ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;

    -- The customers' purchase totals, in agg_customer_totals, which holds only customers who
    -- bought (their current version's are updated under the lock: SALES_SHARED).
    CREATE TEMP TABLE buyers ON COMMIT DROP AS
    SELECT user_id, count(DISTINCT transaction_id) FILTER (WHERE new_order)::int AS orders,
        sum(revenue) AS spent, min(at) AS first, max(at) AS last
    FROM new_orders WHERE category = 'All' GROUP BY user_id;

    INSERT INTO agg_customer_totals AS t (user_id, orders, spent, last_order, generation)
    SELECT user_id, orders, spent, last, g.n
    FROM buyers, (SELECT nextval('agg_customer_totals_generation') AS n) g ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET orders = t.orders + excluded.orders,
        spent = t.spent + excluded.spent,
        last_order = greatest(t.last_order, excluded.last_order),
        generation = excluded.generation;
";

/// After [`SALES_OWN`], under the lock: per product orders, units, revenue and newly
/// converted viewers (rows the views' chunks write too), and the buyers' purchase totals on
/// their current version (a new version recounts them from the facts: `dim_customers.rs`;
/// a preparation may complete the same inferred row).
const SALES_SHARED: &str = "
    -- A viewer who buys the product for the first time converts. The views' chunks commit
    -- holding the lock: the pairs viewed are those of every views' chunk committed before this
    -- one took it, and a views' chunk committing after it finds this chunk's pairs bought
    -- (VIEWS_SHARED), so a conversion counts once. One index probe per new pair (a scalar
    -- subquery, which the planner never turns into a scan of every pair). Each product's row
    -- is written once, its sales and its converted viewers together: the other lanes' chunks
    -- wait for what is done under the lock.
    WITH sold AS (
        SELECT product_id,
            count(DISTINCT transaction_id) FILTER (WHERE NOT EXISTS (
                SELECT 1 FROM earlier_lines e
                WHERE e.transaction_id = n.transaction_id AND e.product_id = n.product_id))
                AS orders,
            sum(quantity) AS units, sum(total_amount) AS revenue
        FROM new_lines n GROUP BY product_id
    ), converted AS (
        SELECT product_id, count(*) AS buyers FROM new_pairs_bought n
        WHERE (SELECT TRUE FROM agg_customer_products_viewed v
               WHERE v.user_id = n.user_id AND v.product_id = n.product_id)
        GROUP BY product_id
    )
    INSERT INTO agg_product_totals AS t (product_id, orders, units, revenue, buyers)
    SELECT product_id, s.orders, s.units, s.revenue, coalesce(c.buyers, 0)
    FROM sold s LEFT JOIN converted c USING (product_id) ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET orders = t.orders + excluded.orders,
        units = t.units + excluded.units, revenue = t.revenue + excluded.revenue,
        buyers = t.buyers + excluded.buyers;

    UPDATE dim_customers d SET total_transactions = d.total_transactions + a.orders,
        total_spent = d.total_spent + a.spent,
        avg_order_value = coalesce(round((d.total_spent + a.spent)
            / nullif(d.total_transactions + a.orders, 0), 2), 0),
        first_transaction_date = least(d.first_transaction_date, a.first),
        last_transaction_date = greatest(d.last_transaction_date, a.last), updated_at = now()
    FROM buyers a WHERE d.user_id = a.user_id AND d.is_current;
";

/// After `fact_product_views`, outside the lock: the viewers and products of the chunk's views,
/// and the viewers new to their product, marked (only the views' chunks write those pairs, one
/// at a time, so no chunk waits here for another's rows).
const VIEWS_OWN: &str = "
    CREATE TEMP TABLE new_views ON COMMIT DROP AS
    SELECT c.user_id, p.product_id
    FROM inserted f JOIN chunk_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'view';

    CREATE TEMP TABLE new_pairs_viewed (user_id text, product_id text) ON COMMIT DROP;
    WITH marked AS (
        INSERT INTO agg_customer_products_viewed (user_id, product_id)
        SELECT DISTINCT user_id, product_id FROM new_views ORDER BY 1, 2
        ON CONFLICT DO NOTHING RETURNING user_id, product_id
    )
    INSERT INTO new_pairs_viewed SELECT user_id, product_id FROM marked;";

/// After [`VIEWS_OWN`], under the lock: per product views, and viewers new to it (converted at
/// once when they had bought it before).
const VIEWS_SHARED: &str = "
    -- A new viewer who had bought the product converts at once: the pairs bought are those of
    -- every sales' chunk committed before this one took the lock (SALES_SHARED judges the
    -- others). One index probe per new viewer, as there, and each product's row written once.
    WITH viewed AS (
        SELECT product_id, count(*) AS views FROM new_views GROUP BY product_id
    ), viewers AS (
        SELECT product_id, count(*) AS viewers,
            count(*) FILTER (WHERE (SELECT TRUE FROM agg_customer_products_bought b
                                    WHERE b.user_id = n.user_id
                                        AND b.product_id = n.product_id)) AS buyers
        FROM new_pairs_viewed n GROUP BY product_id
    )
    INSERT INTO agg_product_totals AS t (product_id, views, viewers, buyers)
    SELECT product_id, v.views, coalesce(w.viewers, 0), coalesce(w.buyers, 0)
    FROM viewed v LEFT JOIN viewers w USING (product_id) ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET views = t.views + excluded.views,
        viewers = t.viewers + excluded.viewers, buyers = t.buyers + excluded.buyers;";

/// After `fact_cart_events`, under the lock: per product cart adds.
const CART_EVENTS_SHARED: &str = "
    INSERT INTO agg_product_totals AS t (product_id, cart_adds)
    SELECT p.product_id, count(*)
    FROM inserted f JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'add_to_cart'
    GROUP BY p.product_id ORDER BY p.product_id
    ON CONFLICT (product_id) DO UPDATE SET cart_adds = t.cart_adds + excluded.cart_adds;";

/// What a fact's chunk adds to the totals: first the rows only that fact's chunks write (one
/// chunk of a fact at a time: each holds its watermark row), then, under the lock, the rows
/// the facts share. The lock is held from there to the commit only, so the lanes' chunks wait
/// for each other's shared statements and not for their own (docs/ARCHITECTURE.md, "Lanes").
#[derive(Debug)]
pub struct Totals {
    own: &'static str,
    shared: &'static str,
}

/// The totals of `fact_sales`.
pub const SALES: Totals = Totals {
    own: SALES_OWN,
    shared: SALES_SHARED,
};

/// The totals of `fact_product_views`.
pub const VIEWS: Totals = Totals {
    own: VIEWS_OWN,
    shared: VIEWS_SHARED,
};

/// The totals of `fact_cart_events`: all of them shared.
pub const CART_EVENTS: Totals = Totals {
    own: "",
    shared: CART_EVENTS_SHARED,
};

/// Adds what the chunk inserted (the temporary table `inserted`) to the totals.
pub async fn add(tx: &Transaction<'_>, totals: &Totals) -> Result<(), EtlError> {
    if !totals.own.is_empty() {
        tx.batch_execute(totals.own).await?;
    }
    tx.batch_execute(LOCK).await?;
    tx.batch_execute(totals.shared).await?;
    Ok(())
}
