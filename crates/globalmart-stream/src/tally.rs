//! The realtime metrics: the events a batch actually inserted, tallied into 1-minute event-time
//! windows and added to the metric tables in the same transaction as the rows. Only inserted
//! events count, so a replay or a second instance never counts anything twice; every metric is
//! a sum, so adding a batch's tally is the whole update (averages and scores are derived from
//! the sums in the same statement).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use globalmart_core::event::{CartAction, CartEvent, ProductViewEvent, Transaction, ViewAction};
use rust_decimal::Decimal;
use tokio_postgres::{Error, Transaction as DbTransaction};
use uuid::Uuid;

/// Anomaly and stock thresholds (SPEC section 4); the stream's configuration sets them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A transaction total at or above this is a high-value anomaly.
    pub high_value: Decimal,
    /// A line quantity at or above this is a high-quantity anomaly.
    pub high_quantity: i32,
    /// Stock falling below this raises a low-stock alert.
    pub low_stock: i32,
    /// Two orders of at least this by one user within a minute are suspicious.
    pub suspicious_amount: Decimal,
    /// At least this many units of one product within 10 minutes is high demand.
    pub high_demand_units: i64,
    /// Stock that the last hour's sales would empty within this many hours needs a restock.
    pub restock_horizon_hours: i32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            high_value: Decimal::from(3000),
            high_quantity: 50,
            low_stock: 10,
            suspicious_amount: Decimal::from(1000),
            high_demand_units: 20,
            restock_horizon_hours: 24,
        }
    }
}

impl Thresholds {
    /// critical >= 10000, high >= 6500, else medium (for totals at or above `high_value`).
    pub fn value_severity(total: Decimal) -> &'static str {
        if total >= Decimal::from(10_000) {
            "critical"
        } else if total >= Decimal::from(6_500) {
            "high"
        } else {
            "medium"
        }
    }

    /// critical >= 100, high >= 75, else medium (for quantities at or above `high_quantity`).
    pub fn quantity_severity(quantity: i32) -> &'static str {
        match quantity {
            q if q >= 100 => "critical",
            q if q >= 75 => "high",
            _ => "medium",
        }
    }
}

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

/// One anomalous line or transaction.
#[derive(Debug, Clone, PartialEq)]
struct Anomaly {
    key: Uuid,
    transaction_id: Uuid,
    user_id: String,
    product_id: Option<String>,
    amount: Decimal,
    quantity: i32,
    severity: &'static str,
    country: &'static str,
    payment_method: &'static str,
    at: DateTime<Utc>,
}

/// A batch's inserted events, summed per window.
#[derive(Debug, Default)]
pub struct Tally {
    sales: BTreeMap<DateTime<Utc>, Sales>,
    by_country: BTreeMap<(DateTime<Utc>, &'static str), Sales>,
    products: BTreeMap<(DateTime<Utc>, String), Activity>,
    carts: BTreeMap<(DateTime<Utc>, &'static str), CartCounts>,
    /// Sessions with cart activity per window and country (counted once by the database).
    cart_sessions: BTreeMap<(DateTime<Utc>, &'static str, String), bool>,
    high_value: Vec<Anomaly>,
    high_quantity: Vec<Anomaly>,
}

impl Tally {
    /// Tallies transactions the batch inserted.
    pub fn transactions(&mut self, transactions: &[&Transaction], thresholds: &Thresholds) {
        for t in transactions {
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
            for (i, line) in t.products.iter().enumerate() {
                let product = self
                    .products
                    .entry((window, line.product_id.clone()))
                    .or_default();
                product.purchases += 1;
                product.units += i64::from(line.quantity);
                product.revenue += line.price * Decimal::from(line.quantity);
                if line.quantity >= thresholds.high_quantity {
                    self.high_quantity.push(Anomaly {
                        key: t.line_item_id(i),
                        product_id: Some(line.product_id.clone()),
                        quantity: line.quantity,
                        severity: Thresholds::quantity_severity(line.quantity),
                        ..anomaly(t)
                    });
                }
            }
            if t.total_amount >= thresholds.high_value {
                self.high_value.push(Anomaly {
                    key: t.transaction_id,
                    severity: Thresholds::value_severity(t.total_amount),
                    ..anomaly(t)
                });
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
            if let (ViewAction::View(p), true) = (&v.action, inserted(&v.event_id)) {
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
            if !inserted(&e.event_id) {
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
        self.save_carts(tx).await?;
        self.save_anomalies(tx).await
    }

    async fn save_sales(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        let windows: Vec<DateTime<Utc>> = self.sales.keys().copied().collect();
        let (counts, revenue, items) = columns(self.sales.values());
        // The sums add up; the average follows from them.
        tx.execute(
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
                 updated_at = now()",
            &[&windows, &counts, &revenue, &items],
        )
        .await?;
        let windows: Vec<DateTime<Utc>> = self.by_country.keys().map(|(w, _)| *w).collect();
        let countries: Vec<&str> = self.by_country.keys().map(|(_, c)| *c).collect();
        let (counts, revenue, _) = columns(self.by_country.values());
        tx.execute(
            "INSERT INTO sales_by_country AS m (window_start, window_end, country,
                 transaction_count, total_revenue, avg_order_value)
             SELECT w, w + interval '1 minute', c, n, r, round(r / n, 2)
             FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::numeric[]) AS x(w, c, n, r)
             ON CONFLICT (window_start, country) DO UPDATE SET
                 transaction_count = m.transaction_count + EXCLUDED.transaction_count,
                 total_revenue = m.total_revenue + EXCLUDED.total_revenue,
                 avg_order_value = round((m.total_revenue + EXCLUDED.total_revenue)
                     / (m.transaction_count + EXCLUDED.transaction_count), 2),
                 updated_at = now()",
            &[&windows, &countries, &counts, &revenue],
        )
        .await?;
        Ok(())
    }

    /// trending_products per product, then category_performance per category.
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
        // trend_score weighs a purchase 5, a cart add 3, a view 1.
        tx.execute(
            "INSERT INTO trending_products AS m (window_start, window_end, product_id,
                 product_name, category, view_count, cart_add_count, purchase_count, units_sold,
                 revenue, trend_score)
             SELECT x.w, x.w + interval '1 minute', x.p, coalesce(x.n, c.name),
                 coalesce(x.c, c.category), x.v, x.a, x.b, x.u, x.r, x.v + 3 * x.a + 5 * x.b
             FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::int8[],
                 $6::int8[], $7::int8[], $8::int8[], $9::numeric[]) AS x(w, p, n, c, v, a, b, u, r)
             LEFT JOIN products c ON c.product_id = x.p
             ON CONFLICT (window_start, product_id) DO UPDATE SET
                 product_name = coalesce(m.product_name, EXCLUDED.product_name),
                 category = coalesce(m.category, EXCLUDED.category),
                 view_count = m.view_count + EXCLUDED.view_count,
                 cart_add_count = m.cart_add_count + EXCLUDED.cart_add_count,
                 purchase_count = m.purchase_count + EXCLUDED.purchase_count,
                 units_sold = m.units_sold + EXCLUDED.units_sold,
                 revenue = m.revenue + EXCLUDED.revenue,
                 trend_score = m.trend_score + EXCLUDED.trend_score,
                 updated_at = now()",
            &params,
        )
        .await?;
        // Recounted from trending_products for the windows this batch touched (not added
        // up), with each product's category from the catalogue: a purchase names no category,
        // and the catalogue may arrive after the first sales.
        let windows: Vec<DateTime<Utc>> = self
            .products
            .keys()
            .map(|(w, _)| *w)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tx.execute(
            "DELETE FROM category_performance WHERE window_start = ANY($1)",
            &[&windows],
        )
        .await?;
        tx.execute(
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
                 updated_at = now()",
            &[&windows],
        )
        .await?;
        Ok(())
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
            "WITH counts AS (
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
                 updated_at = now()",
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

    /// Keyed by transaction or line item: recorded once however often they are seen; the
    /// critical ones become alerts, keyed the same way.
    async fn save_anomalies(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        let v = AnomalyColumns::from(&self.high_value[..]);
        tx.execute(
            "WITH recorded AS (
                 INSERT INTO high_value_anomalies (transaction_id, user_id, total_amount,
                     severity, country, payment_method, transaction_timestamp)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::text[],
                     $5::text[], $6::text[], $7::timestamptz[])
                 ON CONFLICT DO NOTHING
                 RETURNING *
             )
             INSERT INTO alerts (alert_key, alert_type, severity, entity_id, message, details,
                 event_timestamp)
             SELECT 'high_value:' || transaction_id, 'high_value_transaction', severity, user_id,
                 format('Transaction %s by %s for %s (%s)', transaction_id, user_id,
                     total_amount, country),
                 jsonb_build_object('transaction_id', transaction_id, 'user_id', user_id,
                     'total_amount', total_amount, 'country', country,
                     'payment_method', payment_method),
                 transaction_timestamp
             FROM recorded WHERE severity = 'critical'
             ON CONFLICT (alert_key) DO NOTHING",
            &[
                &v.key,
                &v.user_id,
                &v.amount,
                &v.severity,
                &v.country,
                &v.payment_method,
                &v.at,
            ],
        )
        .await?;
        let q = AnomalyColumns::from(&self.high_quantity[..]);
        tx.execute(
            "WITH recorded AS (
                 INSERT INTO high_quantity_anomalies (line_item_id, transaction_id, user_id,
                     product_id, quantity, severity, transaction_timestamp)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[],
                     $5::int4[], $6::text[], $7::timestamptz[])
                 ON CONFLICT DO NOTHING
                 RETURNING *
             )
             INSERT INTO alerts (alert_key, alert_type, severity, entity_id, message, details,
                 event_timestamp)
             SELECT 'high_quantity:' || line_item_id, 'high_quantity_order', severity, user_id,
                 format('%s units of %s in transaction %s by %s', quantity, product_id,
                     transaction_id, user_id),
                 jsonb_build_object('transaction_id', transaction_id, 'line_item_id',
                     line_item_id, 'user_id', user_id, 'product_id', product_id,
                     'quantity', quantity),
                 transaction_timestamp
             FROM recorded WHERE severity = 'critical'
             ON CONFLICT (alert_key) DO NOTHING",
            &[
                &q.key,
                &q.transaction_id,
                &q.user_id,
                &q.product_id,
                &q.quantity,
                &q.severity,
                &q.at,
            ],
        )
        .await?;
        Ok(())
    }
}

/// An anomaly's fields from its transaction.
fn anomaly(t: &Transaction) -> Anomaly {
    Anomaly {
        key: t.transaction_id,
        transaction_id: t.transaction_id,
        user_id: t.user_id.clone(),
        product_id: None,
        amount: t.total_amount,
        quantity: 0,
        severity: "medium",
        country: t.country.as_str(),
        payment_method: t.payment_method.as_str(),
        at: t.timestamp,
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

#[derive(Default)]
struct AnomalyColumns<'a> {
    key: Vec<Uuid>,
    transaction_id: Vec<Uuid>,
    user_id: Vec<&'a str>,
    product_id: Vec<Option<&'a str>>,
    amount: Vec<Decimal>,
    quantity: Vec<i32>,
    severity: Vec<&'static str>,
    country: Vec<&'static str>,
    payment_method: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
}

impl<'a> From<&'a [Anomaly]> for AnomalyColumns<'a> {
    fn from(anomalies: &'a [Anomaly]) -> Self {
        let mut c = AnomalyColumns::default();
        for a in anomalies {
            c.key.push(a.key);
            c.transaction_id.push(a.transaction_id);
            c.user_id.push(&a.user_id);
            c.product_id.push(a.product_id.as_deref());
            c.amount.push(a.amount);
            c.quantity.push(a.quantity);
            c.severity.push(a.severity);
            c.country.push(a.country);
            c.payment_method.push(a.payment_method);
            c.at.push(a.at);
        }
        c
    }
}

/// Keys of rows an insert added, when not all of them (see `sink::Inserted`).
pub type Keys = Option<HashSet<Uuid>>;

/// Whether `key` was inserted: every key when `keys` is None.
pub fn was_inserted(keys: &Keys) -> impl Fn(&Uuid) -> bool + '_ {
    move |key| keys.as_ref().is_none_or(|k| k.contains(key))
}
