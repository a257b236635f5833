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
//!
//! Each lane's product counts have a table of their own (`agg_product_views`, `_cart_adds`,
//! `_sales`; `agg_product_totals` is the view over them and `agg_product_buyers`), written
//! before the lock: only the converted viewers, which two lanes count, are written under it.

use tokio_postgres::Transaction;
use tracing::debug;

use super::load::watermark;
use crate::error::EtlError;

/// Serialises the writes to rows that chunks of different fact tables share: the products'
/// converted viewers (counted by the views' and the sales' chunks: see [`Pairs`]), the buyers'
/// current rows, and the preparations' inferred members and calendar days (`facts.rs`). Held to
/// the end of its transaction, and taken before any shared row is touched (a chunk holds only
/// rows of its own fact's when it waits for it), so two chunks never wait for each other's rows
/// in a cycle (docs/ARCHITECTURE.md, "Lanes"). Every chunk that writes a shared row or a
/// customer's totals commits holding it, so the RFM's reads under it see no such commit
/// (`analytics/rfm.rs`).
pub const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('globalmart.agg_totals'));";

/// The sales' chunk's lines, with their customer, product and category: `new_lines`.
const SALES_CHUNK: &str = "
    CREATE TEMP TABLE new_lines ON COMMIT DROP AS
    SELECT f.transaction_id, c.user_id, p.product_id,
        coalesce(p.category, '') AS category, f.quantity, f.total_amount,
        f.transaction_timestamp AS at, (f.transaction_timestamp AT TIME ZONE 'UTC')::date AS day
    FROM inserted f JOIN chunk_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk);";

/// After the pairs bought are marked, what only the sales' chunks write (outside the lock): per
/// period and category orders, revenue, units and new customers; per customer orders, spend and
/// last order in agg_customer_totals, marked with the chunk's generation (numbered while the
/// chunk holds the sales' watermark row, so in commit order among the sales' chunks: the RFM's
/// rerun rescores the customers marked since, `analytics/quintiles.rs`); per product orders,
/// units and revenue. It leaves `buyers` for [`SALES_SHARED`].
const SALES_OWN: &str = "
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

    -- Per product: orders (each once, lines of the same order loaded before counted already),
    -- units and revenue.
    INSERT INTO agg_product_sales AS t (product_id, orders, units, revenue)
    SELECT product_id,
        count(DISTINCT transaction_id) FILTER (WHERE NOT EXISTS (
            SELECT 1 FROM earlier_lines e
            WHERE e.transaction_id = n.transaction_id AND e.product_id = n.product_id)),
        sum(quantity), sum(total_amount)
    FROM new_lines n GROUP BY product_id ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET orders = t.orders + excluded.orders,
        units = t.units + excluded.units, revenue = t.revenue + excluded.revenue;
";

/// Under the lock, after the converted viewers: the buyers' purchase totals on their current
/// version (a new version recounts them from the facts: `dim_customers.rs`; a preparation may
/// complete the same inferred row).
const SALES_SHARED: &str = "
    UPDATE dim_customers d SET total_transactions = d.total_transactions + a.orders,
        total_spent = d.total_spent + a.spent,
        avg_order_value = coalesce(round((d.total_spent + a.spent)
            / nullif(d.total_transactions + a.orders, 0), 2), 0),
        first_transaction_date = least(d.first_transaction_date, a.first),
        last_transaction_date = greatest(d.last_transaction_date, a.last), updated_at = now()
    FROM buyers a WHERE d.user_id = a.user_id AND d.is_current;
";

/// The views' chunk's views: `new_views`.
const VIEWS_CHUNK: &str = "
    CREATE TEMP TABLE new_views ON COMMIT DROP AS
    SELECT c.user_id, p.product_id
    FROM inserted f JOIN chunk_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'view';";

/// After the pairs viewed are marked, outside the lock: per product views, and viewers new to
/// it.
const VIEWS_OWN: &str = "
    WITH viewers AS (
        SELECT product_id, count(*) AS viewers FROM new_pairs GROUP BY product_id
    )
    INSERT INTO agg_product_views AS t (product_id, views, viewers)
    SELECT product_id, v.views, coalesce(w.viewers, 0)
    FROM (SELECT product_id, count(*) AS views FROM new_views GROUP BY product_id) v
        LEFT JOIN viewers w USING (product_id)
    ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET views = t.views + excluded.views,
        viewers = t.viewers + excluded.viewers;";

/// Outside the lock (no other lane writes cart adds): per product cart adds.
const CART_EVENTS_OWN: &str = "
    INSERT INTO agg_product_cart_adds AS t (product_id, cart_adds)
    SELECT p.product_id, count(*)
    FROM inserted f JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'add_to_cart'
    GROUP BY p.product_id ORDER BY p.product_id
    ON CONFLICT (product_id) DO UPDATE SET cart_adds = t.cart_adds + excluded.cart_adds;";

/// The customer-product pairs a lane's chunks mark (the views' or the sales'): a pair the other
/// lane marks too is a converted viewer, counted once by whichever of the two chunks commits
/// second. Both lanes commit holding the lock, so the later one finds the earlier one's pair
/// and the earlier one could not find the later one's.
///
/// The lookups run before the lock, next to the other lane's watermark as the same snapshot
/// saw it. Every chunk of the other lane advances that watermark as it commits: unchanged
/// under the lock, no chunk of it committed since, and the lookups stand; changed, they are
/// made again. So the lock covers a short upsert, where it covered one index probe per new
/// pair (after a month of the course's scenario, 60 thousand of them a views' chunk).
#[derive(Debug)]
struct Pairs {
    /// The temporary table of the chunk's rows with `user_id` and `product_id`.
    chunk: &'static str,
    /// The lane's pairs: only its chunks write them, one at a time, so no chunk waits here for
    /// another's rows.
    table: &'static str,
    /// The other lane's pairs.
    other: &'static str,
    /// The realtime table the other lane loads, whose watermark moves as its chunks commit.
    other_source: &'static str,
}

impl Pairs {
    /// Marks the chunk's pairs: `new_pairs` holds those new to the lane (and `converted`, made
    /// empty, the lookups' counts).
    fn mark(&self) -> String {
        format!(
            "CREATE TEMP TABLE new_pairs (user_id text, product_id text) ON COMMIT DROP;
            WITH marked AS (
                INSERT INTO {table} (user_id, product_id)
                SELECT DISTINCT user_id, product_id FROM {chunk} ORDER BY 1, 2
                ON CONFLICT DO NOTHING RETURNING user_id, product_id
            )
            INSERT INTO new_pairs SELECT user_id, product_id FROM marked;
            CREATE TEMP TABLE converted (product_id text, buyers bigint) ON COMMIT DROP;",
            table = self.table,
            chunk = self.chunk,
        )
    }

    /// Per product, the new pairs the other lane has marked, into `converted` (one index probe
    /// each: a scalar subquery, which the planner never turns into a scan of every pair); the
    /// statement returns the other lane's watermark, read in the same snapshot.
    fn lookup(&self) -> String {
        format!(
            "WITH found AS (
                INSERT INTO converted (product_id, buyers)
                SELECT product_id, count(*) FROM new_pairs n
                WHERE (SELECT TRUE FROM {other} o
                       WHERE o.user_id = n.user_id AND o.product_id = n.product_id)
                GROUP BY product_id
            )
            SELECT coalesce((SELECT last_ingest_seq FROM etl_watermarks
                             WHERE source_table = $1), 0)",
            other = self.other,
        )
    }

    /// The converted viewers found, counted as each product's buyers. Under the lock.
    const COUNT: &'static str = "
        INSERT INTO agg_product_buyers AS t (product_id, buyers)
        SELECT product_id, buyers FROM converted ORDER BY product_id
        ON CONFLICT (product_id) DO UPDATE SET buyers = t.buyers + excluded.buyers;";

    /// Looks the new pairs up before the lock; returns the other lane's watermark they saw.
    async fn look_up(&self, tx: &Transaction<'_>) -> Result<i64, EtlError> {
        let row = tx.query_one(&self.lookup(), &[&self.other_source]).await?;
        Ok(row.get(0))
    }

    /// Under the lock: the lookups made again if the other lane committed since they saw its
    /// watermark `seen`, then the converted viewers counted.
    async fn count(&self, tx: &Transaction<'_>, seen: i64) -> Result<(), EtlError> {
        if watermark(tx, self.other_source).await? != seen {
            debug!(
                pairs = self.table,
                "the other lane committed since the lookups: made again under the lock"
            );
            tx.batch_execute("DELETE FROM converted").await?;
            self.look_up(tx).await?;
        }
        tx.batch_execute(Self::COUNT).await?;
        Ok(())
    }
}

/// What a fact's chunk adds to the totals: first what only that fact's chunks write (one
/// chunk of a fact at a time: each holds its watermark row), then, under the lock, what the
/// facts share. The lock is held from there to the commit only, so the lanes' chunks wait for
/// each other's shared statements and not for their own (docs/ARCHITECTURE.md, "Lanes").
#[derive(Debug)]
pub struct Totals {
    /// The chunk's rows as the rest reads them.
    chunk: &'static str,
    /// The pairs the lane marks, if it counts converted viewers.
    pairs: Option<Pairs>,
    /// Outside the lock, after the pairs are marked.
    own: &'static str,
    /// Under the lock, after the converted viewers (empty: the chunk never takes the lock if
    /// it has no pairs either).
    shared: &'static str,
}

/// The totals of `fact_sales`.
pub const SALES: Totals = Totals {
    chunk: SALES_CHUNK,
    pairs: Some(Pairs {
        chunk: "new_lines",
        table: "agg_customer_products_bought",
        other: "agg_customer_products_viewed",
        other_source: "product_view_events",
    }),
    own: SALES_OWN,
    shared: SALES_SHARED,
};

/// The totals of `fact_product_views`.
pub const VIEWS: Totals = Totals {
    chunk: VIEWS_CHUNK,
    pairs: Some(Pairs {
        chunk: "new_views",
        table: "agg_customer_products_viewed",
        other: "agg_customer_products_bought",
        other_source: "transactions",
    }),
    own: VIEWS_OWN,
    shared: "",
};

/// The totals of `fact_cart_events`: none shared, so its chunks never take the lock.
pub const CART_EVENTS: Totals = Totals {
    chunk: "",
    pairs: None,
    own: CART_EVENTS_OWN,
    shared: "",
};

/// Adds what the chunk inserted (the temporary table `inserted`) to the totals: the chunk's
/// rows, its pairs marked, its own statements, its pairs looked up (the last thing before the
/// lock, so that the other lane seldom commits in between), then under the lock the converted
/// viewers and its shared statements.
pub async fn add(tx: &Transaction<'_>, totals: &Totals) -> Result<(), EtlError> {
    if !totals.chunk.is_empty() {
        tx.batch_execute(totals.chunk).await?;
    }
    if let Some(pairs) = &totals.pairs {
        tx.batch_execute(&pairs.mark()).await?;
    }
    tx.batch_execute(totals.own).await?;
    let looked_up = match &totals.pairs {
        Some(pairs) => Some((pairs, pairs.look_up(tx).await?)),
        None => None,
    };
    if looked_up.is_none() && totals.shared.is_empty() {
        return Ok(());
    }
    tx.batch_execute(LOCK).await?;
    if let Some((pairs, seen)) = looked_up {
        pairs.count(tx, seen).await?;
    }
    if !totals.shared.is_empty() {
        tx.batch_execute(totals.shared).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use globalmart_testkit::TestStack;

    use super::*;

    /// A views' chunk whose pair is bought by a sales' chunk committing after the views' lookup
    /// and before the views' chunk takes the lock: the lookup missed the pair and the sales'
    /// chunk could not see the views' (not yet committed), so only the lookup made again under
    /// the lock counts the converted viewer.
    #[tokio::test]
    async fn a_pair_bought_between_the_lookup_and_the_lock_converts_once() {
        let stack = TestStack::new().await.expect("a test stack");
        let mut views = stack.warehouse_client().await.expect("a connection");
        let sales = stack.warehouse_client().await.expect("a connection");
        views
            .batch_execute(
                "INSERT INTO dim_products (product_id, effective_start_date)
                 VALUES ('P1', '2026-01-01');",
            )
            .await
            .expect("a product");
        let pid: i32 = (views.query_one("SELECT pg_backend_pid()", &[]).await)
            .expect("the views' connection's pid")
            .get(0);
        // The sales' lane holds the lock, as a chunk does from its shared statements to its
        // commit.
        sales
            .batch_execute("SELECT pg_advisory_lock(hashtext('globalmart.agg_totals'))")
            .await
            .expect("the lock");

        let tx = views.transaction().await.expect("a transaction");
        tx.batch_execute(
            "CREATE TEMP TABLE inserted ON COMMIT DROP AS
             SELECT 1::bigint AS customer_id, product_id_pk, 'view'::text AS event_type
             FROM dim_products;
             CREATE TEMP TABLE chunk_customers ON COMMIT DROP AS
             SELECT 1::bigint AS customer_id, 'U1'::text AS user_id;",
        )
        .await
        .expect("the chunk's rows");
        let sale = async {
            // Once the views' chunk waits for the lock (its lookup done), the sale commits.
            let waiting = "SELECT count(*) FROM pg_locks
                WHERE pid = $1 AND locktype = 'advisory' AND NOT granted";
            loop {
                let n: i64 = (sales.query_one(waiting, &[&pid]).await)
                    .expect("the locks")
                    .get(0);
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sales
                .batch_execute(
                    "BEGIN;
                     INSERT INTO agg_customer_products_bought VALUES ('U1', 'P1');
                     INSERT INTO etl_watermarks (source_table, last_ingest_seq)
                     VALUES ('transactions', 1);
                     COMMIT;
                     SELECT pg_advisory_unlock(hashtext('globalmart.agg_totals'));",
                )
                .await
                .expect("the sale");
        };
        let (added, ()) = tokio::join!(add(&tx, &VIEWS), sale);
        added.expect("the views' totals");
        tx.commit().await.expect("the views' commit");

        let row = views
            .query_one(
                "SELECT views, viewers, buyers FROM agg_product_totals WHERE product_id = 'P1'",
                &[],
            )
            .await
            .expect("the product's totals");
        let totals: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(totals, (1, 1, 1), "views, viewers, converted viewers");
    }
}
