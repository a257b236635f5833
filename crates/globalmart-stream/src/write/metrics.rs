//! The realtime sales metrics: the orders a batch actually inserted, tallied into 1-minute
//! event-time windows and added to `sales_per_minute` and `sales_by_country` in the same
//! transaction as the rows. Only inserted orders count, so a replay or a second instance never
//! counts anything twice; every metric is a sum, so adding a batch's tally is the whole update
//! (averages are derived from the sums in the same statement). Orders from before the metrics'
//! retention count nowhere: housekeeping deletes those windows, so a backfill of older days
//! skips them. The product activity and the cart metrics per minute are not tallied: they are
//! read from the raw events (docs/ARCHITECTURE.md, "Product activity read from the events").

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use globalmart_core::event::Transaction;
use rust_decimal::Decimal;
use tokio_postgres::{Error, Transaction as DbTransaction};

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

/// A batch's inserted orders since a time, summed per window.
#[derive(Debug, Default)]
pub struct Tally {
    /// The first window counted.
    since: DateTime<Utc>,
    sales: BTreeMap<DateTime<Utc>, Sales>,
    by_country: BTreeMap<(DateTime<Utc>, &'static str), Sales>,
}

impl Tally {
    /// An empty tally that will count the orders of `since`'s window and later.
    pub fn since(since: DateTime<Utc>) -> Tally {
        Tally {
            since: minute(since),
            ..Tally::default()
        }
    }

    /// Whether an order at `at` falls in a counted window.
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

    /// Adds the tally to the metric tables; nothing to send without an order counted (a batch
    /// of other events, or of days before the retention).
    pub async fn save(&self, tx: &DbTransaction<'_>) -> Result<(), Error> {
        if self.sales.is_empty() {
            return Ok(());
        }
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
