//! The realtime metrics: the events a batch actually inserted, tallied into 1-minute event-time
//! windows and added to the metric tables in the same transaction as the rows. Only inserted
//! events count, so a replay or a second instance never counts anything twice; every metric is
//! a sum, so adding a batch's tally is the whole update (averages and scores are derived from
//! the sums in the same statement). Events from before the metrics' retention count nowhere:
//! housekeeping deletes those windows, so a backfill of older days skips them. The product
//! activity per minute is not tallied: it is read from the raw events (docs/ARCHITECTURE.md,
//! "Product activity read from the events").

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use globalmart_core::event::{CartAction, CartEvent, Transaction};
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
        }
    }

    /// Adds the tally to the metric tables.
    pub async fn save(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        self.save_sales(tx).await?;
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
