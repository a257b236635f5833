//! The product activity per minute (`trending_products`, and per category
//! `category_performance`), written behind the savers (docs/ARCHITECTURE.md, "Metrics counted
//! once"). A batch appends its per-(minute, product) tallies to `product_activity_pending` in
//! its own transaction: one row each, indexed only when it holds sales, where upserting them
//! into the two tables was half of a day's database time within the metrics' retention.
//! [`fold`] moves them there every second on a connection of its own (`housekeeping.rs`) and
//! before the stream exits: each round deletes the rows it adds in one transaction, so a crash
//! anywhere leaves each tally either pending or folded, never both. The figures read by alerts
//! (the stock's sales pace, the 10-minute demand) sum both tables under one snapshot, so they
//! do not depend on when the fold ran.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::{Client, Error, Transaction as DbTransaction};

use crate::write::catalogue;

/// A product's activity in one minute.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Activity {
    pub product_name: Option<String>,
    pub category: Option<String>,
    pub views: i64,
    pub cart_adds: i64,
    pub purchases: i64,
    pub units: i64,
    pub revenue: Decimal,
}

/// Appends a batch's activity per (minute, product) to the pending tallies.
pub async fn append(
    tx: &DbTransaction<'_>,
    products: &BTreeMap<(DateTime<Utc>, String), Activity>,
) -> Result<(), Error> {
    if products.is_empty() {
        return Ok(());
    }
    let a = ActivityColumns::from(products);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &a.window,
        &a.product,
        &a.name,
        &a.category,
        &a.views,
        &a.cart_adds,
        &a.purchases,
        &a.units,
        &a.revenue,
    ];
    tx.execute(APPEND, &params).await?;
    Ok(())
}

/// The most pending rows one round folds: about a second of work, for which a batch bringing
/// catalogue records waits on the catalogue lock.
const ROUND: i64 = 50_000;

/// Folds the pending tallies into trending_products and category_performance, a round (one
/// transaction) at a time until none is left; returns the tallies folded. Two instances never
/// fold at once: the second waits for the first, then finds what came since.
pub async fn fold(client: &mut Client) -> Result<u64, Error> {
    let mut folded = 0;
    loop {
        let tx = client.transaction().await?;
        tx.execute(HOLD_FOLD_LOCK, &[&FOLD_LOCK]).await?;
        // Shared, as a saver holds it: a batch moving 'unknown' counts to a late catalogue
        // record's category (under the lock exclusively) then sees every folded row, and this
        // round sees that record.
        catalogue::hold(&tx, false).await?;
        // A round's sorts and hashes (tens of thousands of rows, which the planner cannot
        // foresee from a table emptied every second) stay in memory instead of spilling.
        tx.batch_execute(ROUND_MEMORY).await?;
        let row = tx.query_one(FOLD, &[&ROUND]).await?;
        let taken: i64 = row.try_get(0)?;
        let windows: Vec<DateTime<Utc>> = row.try_get(1)?;
        let unknown: Vec<DateTime<Utc>> = (tx.query(UNKNOWN_WINDOWS, &[&windows]).await?)
            .iter()
            .map(|row| row.get(0))
            .collect();
        recount_categories(&tx, &unknown).await?;
        tx.commit().await?;
        folded += taken.max(0) as u64;
        if taken < ROUND {
            return Ok(folded);
        }
    }
}

/// Room for a round's sorts and hashes.
const ROUND_MEMORY: &str = "SET LOCAL work_mem = '64MB'";

/// Held by a fold until its transaction ends.
const FOLD_LOCK: i64 = 0x676d_666f;
const HOLD_FOLD_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

#[derive(Default)]
struct ActivityColumns<'a> {
    window: Vec<DateTime<Utc>>,
    product: Vec<&'a str>,
    name: Vec<Option<&'a str>>,
    category: Vec<Option<&'a str>>,
    views: Vec<i64>,
    cart_adds: Vec<i64>,
    purchases: Vec<i64>,
    units: Vec<i64>,
    revenue: Vec<Decimal>,
}

impl<'a> From<&'a BTreeMap<(DateTime<Utc>, String), Activity>> for ActivityColumns<'a> {
    fn from(products: &'a BTreeMap<(DateTime<Utc>, String), Activity>) -> Self {
        let mut c = ActivityColumns::default();
        for ((window, product), a) in products {
            c.window.push(*window);
            c.product.push(product);
            c.name.push(a.product_name.as_deref());
            c.category.push(a.category.as_deref());
            c.views.push(a.views);
            c.cart_adds.push(a.cart_adds);
            c.purchases.push(a.purchases);
            c.units.push(a.units);
            c.revenue.push(a.revenue);
        }
        c
    }
}

/// A batch's tallies, appended.
const APPEND: &str = "INSERT INTO product_activity_pending (window_start, product_id,
                 product_name, category, view_count, cart_add_count, purchase_count, units_sold,
                 revenue)
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::numeric[])";

/// The ON CONFLICT clause of the statements that add counts to category_performance (alias
/// `m`): each count adds up.
macro_rules! add_to_category {
    () => {
        "
             ON CONFLICT (window_start, category) DO UPDATE SET
                 view_count = m.view_count + EXCLUDED.view_count,
                 cart_add_count = m.cart_add_count + EXCLUDED.cart_add_count,
                 purchase_count = m.purchase_count + EXCLUDED.purchase_count,
                 units_sold = m.units_sold + EXCLUDED.units_sold,
                 revenue = m.revenue + EXCLUDED.revenue,
                 updated_at = now()"
    };
}

/// Takes up to $1 pending tallies and adds them, summed per (minute, product), to their minute
/// in trending_products (trend_score weighs a purchase 5, a cart add 3, a view 1), and to their
/// minute and category in category_performance; returns the tallies taken and the minutes
/// touched. A product's category is the catalogue's, else the one its trending row has (from an
/// earlier event), else the one these events named, else 'unknown'. The cost follows the
/// tallies, not the products already in their windows. Every lookup is by key into a table, and
/// no two of the statement's own parts are joined: the planner cannot size rows a DELETE returns
/// (it guesses ten), and a join of two such parts planned on that guess as a nested loop took
/// minutes for 50,000 tallies.
const FOLD: &str = concat!(
    "WITH taken AS (
                 DELETE FROM product_activity_pending
                 WHERE ctid = ANY (ARRAY(SELECT ctid FROM product_activity_pending LIMIT $1))
                 RETURNING *
             ), x AS (
                 SELECT g.*, p.name AS catalogue_name, p.category AS catalogue_category
                 FROM (
                     SELECT window_start AS w, product_id AS p, min(product_name) AS n,
                         min(category) AS c, sum(view_count) AS v, sum(cart_add_count) AS a,
                         sum(purchase_count) AS b, sum(units_sold) AS u, sum(revenue) AS r
                     FROM taken GROUP BY 1, 2
                 ) g
                 LEFT JOIN LATERAL (
                     SELECT name, category FROM products WHERE product_id = g.p
                 ) p ON true
             ), t AS (
                 INSERT INTO trending_products AS m (window_start, window_end, product_id,
                     product_name, category, view_count, cart_add_count, purchase_count,
                     units_sold, revenue, trend_score)
                 SELECT w, w + interval '1 minute', p, coalesce(n, catalogue_name),
                     coalesce(c, catalogue_category), v, a, b, u, r, v + 3 * a + 5 * b
                 FROM x
                 ORDER BY w, p
                 ON CONFLICT (window_start, product_id) DO UPDATE SET
                     product_name = coalesce(m.product_name, EXCLUDED.product_name),
                     category = coalesce(m.category, EXCLUDED.category),
                     view_count = m.view_count + EXCLUDED.view_count,
                     cart_add_count = m.cart_add_count + EXCLUDED.cart_add_count,
                     purchase_count = m.purchase_count + EXCLUDED.purchase_count,
                     units_sold = m.units_sold + EXCLUDED.units_sold,
                     revenue = m.revenue + EXCLUDED.revenue,
                     trend_score = m.trend_score + EXCLUDED.trend_score,
                     updated_at = now()
             ), k AS (
                 -- The trending row read here is the one before `t` (a statement sees its own
                 -- changes only after it): its category, else these events', is the category
                 -- `t` leaves on it.
                 INSERT INTO category_performance AS m (window_start, window_end, category,
                     view_count, cart_add_count, purchase_count, units_sold, revenue)
                 SELECT w, w + interval '1 minute',
                     coalesce(catalogue_category,
                         (SELECT category FROM trending_products tp
                          WHERE tp.window_start = x.w AND tp.product_id = x.p),
                         c, 'unknown'),
                     sum(v), sum(a), sum(b), sum(u), sum(r)
                 FROM x
                 GROUP BY 1, 2, 3
                 ORDER BY 1, 3",
    add_to_category!(),
    "
                 RETURNING window_start
             )
             SELECT (SELECT count(*) FROM taken),
                 coalesce((SELECT array_agg(DISTINCT window_start) FROM k), '{}')"
);

/// Those of `windows` ($1) holding counts under 'unknown'.
const UNKNOWN_WINDOWS: &str = "SELECT window_start FROM category_performance
             WHERE category = 'unknown' AND window_start = ANY($1)";

/// Moves the counts of `products` ($1) out of 'unknown' now that their catalogue records are
/// saved: a trending_products row without a category was counted under 'unknown' (no event named
/// one and the catalogue did not know the product), so its counts go to the catalogue's category.
/// The cost follows those products' rows, not the windows they are in. Called under the
/// exclusive catalogue lock (catalogue.rs), so no fold adds to them meanwhile; their tallies
/// still pending find the catalogue's category when folded.
const MOVE_LATE_CATEGORIES: &str = concat!(
    "WITH moved AS (
                 UPDATE trending_products t SET category = p.category,
                     product_name = coalesce(t.product_name, p.name), updated_at = now()
                 FROM products p
                 WHERE t.product_id = ANY($1) AND t.category IS NULL AND p.product_id = t.product_id
                 RETURNING t.window_start, t.window_end, p.category, t.view_count,
                     t.cart_add_count, t.purchase_count, t.units_sold, t.revenue
             ), deltas AS (
                 SELECT * FROM moved
                 UNION ALL
                 SELECT window_start, window_end, 'unknown', -view_count, -cart_add_count,
                     -purchase_count, -units_sold, -revenue
                 FROM moved
             )
             INSERT INTO category_performance AS m (window_start, window_end, category,
                 view_count, cart_add_count, purchase_count, units_sold, revenue)
             SELECT window_start, window_end, category, sum(view_count), sum(cart_add_count),
                 sum(purchase_count), sum(units_sold), sum(revenue)
             FROM deltas GROUP BY 1, 2, 3 ORDER BY 1, 3",
    add_to_category!(),
    "
             RETURNING window_start, category = 'unknown' AND view_count = 0
                 AND cart_add_count = 0 AND purchase_count = 0"
);

/// The 'unknown' rows of `windows` ($1) that counts moved out of entirely.
const DROP_EMPTY_UNKNOWN: &str = "DELETE FROM category_performance
             WHERE category = 'unknown' AND window_start = ANY($1) AND view_count = 0
                 AND cart_add_count = 0 AND purchase_count = 0";

/// Moves the sales and activity of `products`, counted under 'unknown' before their catalogue
/// records arrived (this batch saved those), to their category.
pub async fn move_late_categories(tx: &DbTransaction<'_>, products: &[&str]) -> Result<(), Error> {
    if products.is_empty() {
        return Ok(());
    }
    let emptied: Vec<DateTime<Utc>> = (tx.query(MOVE_LATE_CATEGORIES, &[&products]).await?)
        .iter()
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0))
        .collect();
    if !emptied.is_empty() {
        tx.execute(DROP_EMPTY_UNKNOWN, &[&emptied]).await?;
    }
    Ok(())
}

/// Recounts category windows from trending_products, each product's category from the
/// catalogue: a product named by none of its first events may be named by a later one.
async fn recount_categories(
    tx: &DbTransaction<'_>,
    windows: &[DateTime<Utc>],
) -> Result<(), Error> {
    if !windows.is_empty() {
        tx.execute(CLEAR_CATEGORIES, &[&windows]).await?;
        tx.execute(CATEGORY_PERFORMANCE, &[&windows]).await?;
    }
    Ok(())
}

/// Clears the category windows about to be recounted.
const CLEAR_CATEGORIES: &str = "DELETE FROM category_performance WHERE window_start = ANY($1)";

/// Recounts category windows from trending_products, each product's category from the
/// catalogue.
const CATEGORY_PERFORMANCE: &str =
    "INSERT INTO category_performance AS m (window_start, window_end, category,
                 view_count, cart_add_count, purchase_count, units_sold, revenue)
             SELECT t.window_start, t.window_end, coalesce(p.category, t.category, 'unknown'),
                 sum(t.view_count), sum(t.cart_add_count), sum(t.purchase_count),
                 sum(t.units_sold), sum(t.revenue)
             FROM trending_products t LEFT JOIN products p USING (product_id)
             WHERE t.window_start = ANY($1)
             GROUP BY 1, 2, 3
             ON CONFLICT (window_start, category) DO UPDATE SET
                 view_count = EXCLUDED.view_count,
                 cart_add_count = EXCLUDED.cart_add_count,
                 purchase_count = EXCLUDED.purchase_count,
                 units_sold = EXCLUDED.units_sold,
                 revenue = EXCLUDED.revenue,
                 updated_at = now()";
