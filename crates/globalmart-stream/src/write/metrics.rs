//! The realtime metrics: the events a batch actually inserted, tallied into 1-minute event-time
//! windows and added to the metric tables in the same transaction as the rows. Only inserted
//! events count, so a replay or a second instance never counts anything twice; every metric is
//! a sum, so adding a batch's tally is the whole update (averages and scores are derived from
//! the sums in the same statement). Events from before the metrics' retention count nowhere:
//! housekeeping deletes those windows, so a backfill of older days skips them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use globalmart_core::event::{CartAction, CartEvent, ProductViewEvent, Transaction, ViewAction};
use rust_decimal::Decimal;
use tokio_postgres::{Error, Transaction as DbTransaction};
use uuid::Uuid;

/// The start of the `minutes`-long window (aligned on the Unix epoch) holding `at`.
pub fn window(at: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(minutes)).unwrap_or(at)
}

/// The start of the 1-minute window holding `at`.
fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    window(at, 1)
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Sales {
    transactions: i64,
    revenue: Decimal,
    items: i64,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Activity {
    product_name: Option<String>,
    category: Option<String>,
    views: i64,
    cart_adds: i64,
    purchases: i64,
    units: i64,
    revenue: Decimal,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct CartCounts {
    adds: i64,
    removes: i64,
    updates: i64,
    checkouts: i64,
}

/// A batch's inserted events since a time, summed per window.
#[derive(Debug, Default)]
pub struct Tally {
    /// The first window counted.
    since: DateTime<Utc>,
    sales: BTreeMap<DateTime<Utc>, Sales>,
    by_country: BTreeMap<(DateTime<Utc>, &'static str), Sales>,
    products: BTreeMap<(DateTime<Utc>, String), Activity>,
    carts: BTreeMap<(DateTime<Utc>, &'static str), CartCounts>,
    /// Sessions with cart activity per window and country (counted once by the database).
    cart_sessions: BTreeMap<(DateTime<Utc>, &'static str, String), bool>,
}

impl Tally {
    /// An empty tally that will count the events of `since`'s window and later.
    pub fn since(since: DateTime<Utc>) -> Tally {
        Tally {
            since: minute(since),
            ..Tally::default()
        }
    }

    /// Whether an event at `at` falls in a counted window.
    fn counts(&self, at: DateTime<Utc>) -> bool {
        minute(at) >= self.since
    }

    /// Tallies transactions the batch inserted.
    pub fn transactions(&mut self, transactions: &[&Transaction]) {
        for t in transactions {
            if !self.counts(t.timestamp) {
                continue;
            }
            let window = minute(t.timestamp);
            let items: i64 = t.products.iter().map(|l| i64::from(l.quantity)).sum();
            for sales in [
                self.sales.entry(window).or_default(),
                self.by_country
                    .entry((window, t.country.as_str()))
                    .or_default(),
            ] {
                sales.transactions += 1;
                sales.revenue += t.total_amount;
                sales.items += items;
            }
            for line in &t.products {
                let product = self
                    .products
                    .entry((window, line.product_id.clone()))
                    .or_default();
                product.purchases += 1;
                product.units += i64::from(line.quantity);
                product.revenue += line.price * Decimal::from(line.quantity);
            }
        }
    }

    /// Tallies the product views `inserted` says were new (searches, filters and comparisons
    /// name no single product).
    pub fn views<'a>(
        &mut self,
        views: impl IntoIterator<Item = &'a ProductViewEvent>,
        inserted: impl Fn(&Uuid) -> bool,
    ) {
        for v in views {
            let counted = self.counts(v.timestamp) && inserted(&v.event_id);
            if let (ViewAction::View(p), true) = (&v.action, counted) {
                let product =
                    self.product(v.timestamp, &p.product_id, &p.product_name, &p.category);
                product.views += 1;
            }
        }
    }

    /// Tallies the cart events `inserted` says were new.
    pub fn carts<'a>(
        &mut self,
        carts: impl IntoIterator<Item = &'a CartEvent>,
        inserted: impl Fn(&Uuid) -> bool,
    ) {
        for e in carts {
            if !self.counts(e.timestamp) || !inserted(&e.event_id) {
                continue;
            }
            let window = minute(e.timestamp);
            let country = e.country.as_str();
            let counts = self.carts.entry((window, country)).or_default();
            let checkout = matches!(e.action, CartAction::Checkout(_));
            match &e.action {
                CartAction::AddToCart(_) => counts.adds += 1,
                CartAction::RemoveFromCart(_) => counts.removes += 1,
                CartAction::UpdateQuantity(_) => counts.updates += 1,
                CartAction::Checkout(_) => counts.checkouts += 1,
            }
            let session = self
                .cart_sessions
                .entry((window, country, e.session_id.clone()))
                .or_default();
            *session |= checkout;
            if let CartAction::AddToCart(i) = &e.action {
                let product =
                    self.product(e.timestamp, &i.product_id, &i.product_name, &i.category);
                product.cart_adds += 1;
            }
        }
    }

    fn product(
        &mut self,
        at: DateTime<Utc>,
        id: &str,
        name: &str,
        category: &str,
    ) -> &mut Activity {
        let product = self
            .products
            .entry((minute(at), id.to_owned()))
            .or_default();
        product.product_name.get_or_insert_with(|| name.to_owned());
        product.category.get_or_insert_with(|| category.to_owned());
        product
    }

    /// Adds the tally to the metric tables.
    pub async fn save(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        self.save_sales(tx).await?;
        self.save_products(tx).await?;
        self.save_carts(tx).await
    }

    async fn save_sales(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        let windows: Vec<DateTime<Utc>> = self.sales.keys().copied().collect();
        let (counts, revenue, items) = columns(self.sales.values());
        tx.execute(SALES_PER_MINUTE, &[&windows, &counts, &revenue, &items])
            .await?;
        let windows: Vec<DateTime<Utc>> = self.by_country.keys().map(|(w, _)| *w).collect();
        let countries: Vec<&str> = self.by_country.keys().map(|(_, c)| *c).collect();
        let (counts, revenue, _) = columns(self.by_country.values());
        tx.execute(SALES_BY_COUNTRY, &[&windows, &countries, &counts, &revenue])
            .await?;
        Ok(())
    }

    /// trending_products per product and category_performance per category, both adding the
    /// batch's counts; then the windows of this batch that hold counts under 'unknown' are
    /// recounted, as a product named by none of its first events may be named by a later one.
    async fn save_products(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        let a = ActivityColumns::from(&self.products);
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
        tx.execute(PRODUCT_ACTIVITY, &params).await?;
        let windows: Vec<DateTime<Utc>> = self
            .products
            .keys()
            .map(|(w, _)| *w)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let unknown: Vec<DateTime<Utc>> = (tx.query(UNKNOWN_WINDOWS, &[&windows]).await?)
            .iter()
            .map(|row| row.get(0))
            .collect();
        recount_categories(tx, &unknown).await
    }

    /// cart_metrics: event counts add up; a session counts once per window and country, which
    /// cart_session_windows remembers across batches.
    async fn save_carts(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        let windows: Vec<DateTime<Utc>> = self.carts.keys().map(|(w, _)| *w).collect();
        let countries: Vec<&str> = self.carts.keys().map(|(_, c)| *c).collect();
        let counts: Vec<[i64; 4]> = self
            .carts
            .values()
            .map(|c| [c.adds, c.removes, c.updates, c.checkouts])
            .collect();
        let column = |i: usize| counts.iter().map(|c| c[i]).collect::<Vec<i64>>();
        let (adds, removes, updates, checkouts) = (column(0), column(1), column(2), column(3));
        let s_windows: Vec<DateTime<Utc>> = self.cart_sessions.keys().map(|k| k.0).collect();
        let s_countries: Vec<&str> = self.cart_sessions.keys().map(|k| k.1).collect();
        let s_ids: Vec<&str> = self.cart_sessions.keys().map(|k| k.2.as_str()).collect();
        let s_checkout: Vec<bool> = self.cart_sessions.values().copied().collect();
        tx.execute(
            CART_METRICS,
            &[
                &windows,
                &countries,
                &adds,
                &removes,
                &updates,
                &checkouts,
                &s_windows,
                &s_countries,
                &s_ids,
                &s_checkout,
            ],
        )
        .await?;
        Ok(())
    }
}

/// (transactions, revenue, items) arrays of some sales.
fn columns<'a>(sales: impl Iterator<Item = &'a Sales>) -> (Vec<i64>, Vec<Decimal>, Vec<i64>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for s in sales {
        out.0.push(s.transactions);
        out.1.push(s.revenue);
        out.2.push(s.items);
    }
    out
}

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

/// Adds sales to their minute: the sums add up, the average follows from them.
const SALES_PER_MINUTE: &str =
    "INSERT INTO sales_per_minute AS m (window_start, window_end, transaction_count,
                 total_revenue, total_items, avg_order_value)
             SELECT w, w + interval '1 minute', n, r, i, round(r / n, 2)
             FROM unnest($1::timestamptz[], $2::int8[], $3::numeric[], $4::int8[]) AS x(w, n, r, i)
             ON CONFLICT (window_start) DO UPDATE SET
                 transaction_count = m.transaction_count + EXCLUDED.transaction_count,
                 total_revenue = m.total_revenue + EXCLUDED.total_revenue,
                 total_items = m.total_items + EXCLUDED.total_items,
                 avg_order_value = round((m.total_revenue + EXCLUDED.total_revenue)
                     / (m.transaction_count + EXCLUDED.transaction_count), 2),
                 updated_at = now()";

/// Adds sales to their minute and country.
const SALES_BY_COUNTRY: &str =
    "INSERT INTO sales_by_country AS m (window_start, window_end, country,
                 transaction_count, total_revenue, avg_order_value)
             SELECT w, w + interval '1 minute', c, n, r, round(r / n, 2)
             FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::numeric[]) AS x(w, c, n, r)
             ON CONFLICT (window_start, country) DO UPDATE SET
                 transaction_count = m.transaction_count + EXCLUDED.transaction_count,
                 total_revenue = m.total_revenue + EXCLUDED.total_revenue,
                 avg_order_value = round((m.total_revenue + EXCLUDED.total_revenue)
                     / (m.transaction_count + EXCLUDED.transaction_count), 2),
                 updated_at = now()";

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

/// Adds product activity to its minute in trending_products (trend_score weighs a purchase 5,
/// a cart add 3, a view 1), and to its minute and category in category_performance. A product's
/// category is the catalogue's, else the one its events named, else 'unknown': the cost follows
/// the batch, not the products already in its windows (a backfill's batch spans many windows).
const PRODUCT_ACTIVITY: &str = concat!(
    "WITH x AS (
                 SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                     $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::numeric[])
                     AS x(w, p, n, c, v, a, b, u, r)
             ), c AS (
                 -- The catalogue rows of the batch's products, looked up once by key: joined
                 -- whole, the 250,000 products of the course's catalogue were hashed twice per
                 -- batch, spilling to disk (a quarter of the statement, docs/PERFORMANCE.md).
                 SELECT product_id, name, category FROM products
                 WHERE product_id IN (SELECT p FROM x)
             ), t AS (
                 INSERT INTO trending_products AS m (window_start, window_end, product_id,
                     product_name, category, view_count, cart_add_count, purchase_count,
                     units_sold, revenue, trend_score)
                 SELECT x.w, x.w + interval '1 minute', x.p, coalesce(x.n, c.name),
                     coalesce(x.c, c.category), x.v, x.a, x.b, x.u, x.r, x.v + 3 * x.a + 5 * x.b
                 FROM x LEFT JOIN c ON c.product_id = x.p
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
                 RETURNING window_start AS w, product_id AS p, category
             )
             INSERT INTO category_performance AS m (window_start, window_end, category,
                 view_count, cart_add_count, purchase_count, units_sold, revenue)
             SELECT x.w, x.w + interval '1 minute', coalesce(c.category, t.category, 'unknown'),
                 sum(x.v), sum(x.a), sum(x.b), sum(x.u), sum(x.r)
             FROM x JOIN t USING (w, p) LEFT JOIN c ON c.product_id = x.p
             GROUP BY 1, 2, 3
             ORDER BY 1, 3",
    add_to_category!()
);

/// Those of `windows` ($1) holding counts under 'unknown'.
const UNKNOWN_WINDOWS: &str = "SELECT window_start FROM category_performance
             WHERE category = 'unknown' AND window_start = ANY($1)";

/// Moves the counts of `products` ($1) out of 'unknown' now that their catalogue records are
/// saved: a trending_products row without a category was counted under 'unknown' (no event named
/// one and the catalogue did not know the product), so its counts go to the catalogue's category.
/// The cost follows those products' rows, not the windows they are in. Called under the
/// exclusive catalogue lock (catalogue.rs), so no sale of them commits meanwhile.
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
/// catalogue.
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

/// Adds cart event counts; a session counts once per window and country
/// (cart_session_windows remembers it across batches).
const CART_METRICS: &str = "WITH counts AS (
                 SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::int8[],
                     $5::int8[], $6::int8[]) AS x(w, c, a, r, u, k)
             ), seen AS (
                 INSERT INTO cart_session_windows AS s (window_start, country, session_id, checked_out)
                 SELECT * FROM unnest($7::timestamptz[], $8::text[], $9::text[], $10::bool[])
                 ON CONFLICT (window_start, country, session_id) DO UPDATE
                     SET checked_out = true
                     WHERE EXCLUDED.checked_out AND NOT s.checked_out
                 RETURNING window_start AS w, country AS c, (xmax = 0) AS new_session,
                     checked_out AS k
             ), sessions AS (
                 SELECT w, c, count(*) FILTER (WHERE new_session) AS n,
                     count(*) FILTER (WHERE k) AS k
                 FROM seen GROUP BY w, c
             )
             INSERT INTO cart_metrics AS m (window_start, window_end, country, add_to_cart_count,
                 remove_from_cart_count, update_quantity_count, checkout_count, active_sessions,
                 checkout_sessions)
             SELECT counts.w, counts.w + interval '1 minute', counts.c, a, r, u, counts.k,
                 coalesce(sessions.n, 0), coalesce(sessions.k, 0)
             FROM counts LEFT JOIN sessions ON sessions.w = counts.w AND sessions.c = counts.c
             ON CONFLICT (window_start, country) DO UPDATE SET
                 add_to_cart_count = m.add_to_cart_count + EXCLUDED.add_to_cart_count,
                 remove_from_cart_count = m.remove_from_cart_count + EXCLUDED.remove_from_cart_count,
                 update_quantity_count = m.update_quantity_count + EXCLUDED.update_quantity_count,
                 checkout_count = m.checkout_count + EXCLUDED.checkout_count,
                 active_sessions = m.active_sessions + EXCLUDED.active_sessions,
                 checkout_sessions = m.checkout_sessions + EXCLUDED.checkout_sessions,
                 abandonment_rate_pct = least(100, round(100.0 * m.abandoned_sessions
                     / greatest(m.active_sessions + EXCLUDED.active_sessions, 1), 2)),
                 updated_at = now()";
