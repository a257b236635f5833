//! Patterns across orders, recounted from the saved transactions for the users a batch
//! touched, in the same transaction: `suspicious_patterns` (two or more orders of at least the
//! suspicious amount by one user within one 1-minute window). A recount, not an increment:
//! replays and other instances converge on the same rows. (The 10-minute high demand of a
//! product is recounted with its stock, from the same per-minute sales: `stock.rs`.)

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use globalmart_core::event::Transaction;
use rust_decimal::Decimal;
use tokio_postgres::{Error, Transaction as DbTransaction};

use crate::write::metrics::window;

/// Recounts the suspicious patterns of the (user, minute) pairs `transactions` (those saved by
/// this batch) touched with orders of at least `amount`.
pub async fn suspicious(
    tx: &DbTransaction<'_>,
    transactions: &[&Transaction],
    amount: Decimal,
) -> Result<(), Error> {
    let touched: BTreeSet<(&str, DateTime<Utc>)> = transactions
        .iter()
        .filter(|t| t.total_amount >= amount)
        .map(|t| (t.user_id.as_str(), window(t.timestamp, 1)))
        .collect();
    let users: Vec<&str> = touched.iter().map(|(u, _)| *u).collect();
    let windows: Vec<DateTime<Utc>> = touched.iter().map(|(_, w)| *w).collect();
    // The span of all the windows (none: nothing to recount), so the planner reads only the
    // day partitions it covers.
    let (Some(first), Some(last)) = (windows.iter().min(), windows.iter().max()) else {
        return Ok(());
    };
    let end = *last + TimeDelta::minutes(1);
    tx.execute(SUSPICIOUS, &[&users, &windows, &amount, first, &end])
        .await?;
    Ok(())
}

/// Recounts the rapid high-value orders of the (user, minute) pairs touched, all of them
/// between $4 and $5: without those bounds the plan reads every day partition of
/// `transactions` (280 ms for 300 pairs over 31 days, against 4 ms with them).
const SUSPICIOUS: &str = "WITH touched AS (
             SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS x(u, w)
         ), orders AS (
             SELECT t.transaction_id, x.u, x.w, min(t.total_amount) AS total
             FROM touched x JOIN transactions t ON t.user_id = x.u
                 AND t.\"timestamp\" >= x.w AND t.\"timestamp\" < x.w + interval '1 minute'
             WHERE t.total_amount >= $3 AND t.\"timestamp\" >= $4 AND t.\"timestamp\" < $5
             GROUP BY t.transaction_id, x.u, x.w
         )
         INSERT INTO suspicious_patterns AS s (user_id, pattern_type, window_start, window_end,
             order_count, total_amount, transaction_ids)
         SELECT u, 'rapid_high_value_orders', w, w + interval '1 minute', count(*), sum(total),
             array_agg(transaction_id ORDER BY transaction_id)
         FROM orders GROUP BY u, w HAVING count(*) >= 2
         ORDER BY u, w
         ON CONFLICT (user_id, pattern_type, window_start) DO UPDATE SET
             order_count = EXCLUDED.order_count, total_amount = EXCLUDED.total_amount,
             transaction_ids = EXCLUDED.transaction_ids
         WHERE s.transaction_ids <> EXCLUDED.transaction_ids";
