//! Stock on hand per product, in the same transaction as the rows: it starts from the
//! catalogue's inventory, each sale saved takes its units off, and a restock (a newer catalogue
//! version with another inventory) resets it. Event time decides: the stock is the inventory of
//! the product's last restock less the units sold since that restock's time, whatever order the
//! messages arrive in. A sale taking the stock below the threshold records one low-stock (or
//! out-of-stock) alert for that crossing, in `restock_alerts` and in `alerts`. A sale after which
//! the last hour's sales velocity would empty the stock within the restock horizon records one
//! `restock_needed` alert per restock (the next one comes after the next restock).
//!
//! The same statement recounts `high_demand_alerts`: at least the high-demand units of one
//! product within one 10-minute window (`order_count` counts its order lines), a new window
//! also an alert. A recount, not an increment: replays and other instances converge on the same
//! rows. The hour's pace and the 10-minute demand both read the product's per-minute sales from
//! the sale lines saved, for sales within the metrics' retention only (a backfill's older sales
//! cost no lookup); one probe per product serves both (they were two statements reading the
//! same rows, 244 and 153 ms a batch on a day within the retention: docs/ARCHITECTURE.md, "An
//! eleventh run").

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use globalmart_core::event::Transaction;
use tokio_postgres::{Error, Transaction as DbTransaction};

use crate::config::Thresholds;
use crate::write::alerts::{self, Alert};
use crate::write::metrics::window;

/// Takes the units of the sales of `transactions` (those this batch inserted) off the stock;
/// sales older than the product's last restock are in its inventory already. Records an alert
/// for each product that crossed below the low-stock threshold, and for each product not yet
/// low whose units sold in the hour up to the sale would empty it within the restock horizon.
/// Both are checked once per batch and product, at the batch's last sale of it. Recounts the
/// 10-minute demand of the windows the sales are in. The pace and the demand count the sale
/// lines saved per minute, this batch's among them: for sales from `since` only (the metrics'
/// retention), so the older sales of a backfill cost no lookup of them.
pub async fn sell(
    tx: &DbTransaction<'_>,
    transactions: &[&Transaction],
    thresholds: &Thresholds,
    since: DateTime<Utc>,
) -> Result<Vec<Alert>, Error> {
    let lines: Vec<(&str, DateTime<Utc>, i64)> = (transactions.iter())
        .flat_map(|t| {
            (t.products.iter()).map(|l| (l.product_id.as_str(), t.timestamp, i64::from(l.quantity)))
        })
        .collect();
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let products: Vec<&str> = lines.iter().map(|l| l.0).collect();
    let times: Vec<DateTime<Utc>> = lines.iter().map(|l| l.1).collect();
    let units: Vec<i64> = lines.iter().map(|l| l.2).collect();
    let windows: BTreeSet<(&str, DateTime<Utc>)> = (lines.iter())
        .filter(|l| l.1 >= since)
        .map(|l| (l.0, window(l.1, 10)))
        .collect();
    let window_products: Vec<&str> = windows.iter().map(|(p, _)| *p).collect();
    let window_starts: Vec<DateTime<Utc>> = windows.iter().map(|(_, w)| *w).collect();
    let rows = tx
        .query(
            SELL,
            &[
                &products,
                &times,
                &units,
                &thresholds.low_stock,
                &thresholds.restock_horizon_hours,
                &window_products,
                &window_starts,
                &thresholds.high_demand_units,
                &since,
            ],
        )
        .await?;
    Ok(alerts::of(&rows))
}

/// Recounts the stock of `products` (whose catalogue versions this batch saved) from their
/// history: the inventory of the last version that changed it, less the units sold since.
pub async fn restock(tx: &DbTransaction<'_>, products: &[&str]) -> Result<(), Error> {
    if products.is_empty() {
        return Ok(());
    }
    tx.execute(RESTOCK, &[&products]).await?;
    Ok(())
}

/// Takes the sold units off, records the low-stock and restock warnings crossed, recounts the
/// 10-minute demand of the windows sold in ($6, $7), and returns the alerts of all three. The
/// per-minute sales are read for the sales from $9 only: a sale older than that has no pace
/// (its last hour is older too) and no demand.
const SELL: &str = "WITH lines AS (
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) AS x(p, t, u)
         ), minutes AS MATERIALIZED (
             -- Each product's sales per minute over the span both figures read (the minutes
             -- starting after the hour before its first sale and before the end of its last
             -- sale's 10-minute window), from the sale lines saved, this batch's among them.
             SELECT s.p, m.w, m.units, m.orders
             FROM (
                 SELECT p, min(t) - interval '1 hour' AS lo, max(t) + interval '10 minutes' AS hi
                 FROM lines WHERE t >= $9 GROUP BY p
             ) s, LATERAL (
                 SELECT date_bin('1 minute', l.\"timestamp\", '1970-01-01 00:00:00+00') AS w,
                     sum(l.quantity) AS units, count(*) AS orders
                 FROM transactions l
                 WHERE l.product_id = s.p AND l.\"timestamp\" > s.lo
                     AND l.\"timestamp\" < s.hi + interval '1 minute'
                 GROUP BY 1
             ) m
             WHERE m.w > s.lo AND m.w < s.hi
         ), sold AS (
             SELECT x.p, sum(x.u)::int AS units, max(x.t) AS at
             FROM lines x
             JOIN product_stock s ON s.product_id = x.p
             WHERE x.t >= s.restocked_at
             GROUP BY x.p
             ORDER BY x.p
         ), changed AS (
             UPDATE product_stock s SET stock = s.stock - sold.units,
                 units_sold = s.units_sold + sold.units, updated_at = now()
             FROM sold WHERE s.product_id = sold.p
             RETURNING s.product_id, s.stock + sold.units AS before, s.stock AS after, sold.at,
                 s.restocked_at
         ), low AS (
             INSERT INTO restock_alerts (product_id, alert_type, triggered_at, current_stock,
                 threshold)
             SELECT product_id, CASE WHEN after <= 0 THEN 'out_of_stock' ELSE 'low_stock' END,
                 at, after, $4
             FROM changed WHERE before >= $4 AND after < $4
             ON CONFLICT DO NOTHING
             RETURNING *
         ), velocity AS (
             -- Only products not low yet and not warned since their last restock.
             SELECT c.product_id, c.after, c.at, sum(m.units) AS units
             FROM changed c
             JOIN minutes m ON m.p = c.product_id
                 AND m.w > c.at - interval '1 hour' AND m.w <= c.at
             WHERE c.after >= $4 AND NOT EXISTS (
                 SELECT 1 FROM restock_alerts r
                 WHERE r.product_id = c.product_id AND r.alert_type = 'restock_needed'
                     AND r.triggered_at >= c.restocked_at)
             GROUP BY c.product_id, c.after, c.at
         ), soon AS (
             INSERT INTO restock_alerts (product_id, alert_type, triggered_at, current_stock,
                 threshold, units_per_hour, hours_until_stockout)
             SELECT product_id, 'restock_needed', at, after, ceil(units * $5::int)::int, units,
                 round(after::numeric / units, 2)
             FROM velocity WHERE units > 0 AND after < units * $5::int
             ON CONFLICT DO NOTHING
             RETURNING *
         ), recorded AS (
             SELECT product_id, alert_type, triggered_at, current_stock, threshold,
                 hours_until_stockout FROM low
             UNION ALL
             SELECT product_id, alert_type, triggered_at, current_stock, threshold,
                 hours_until_stockout FROM soon
         ), demand AS (
             SELECT x.p, x.w, sum(m.units) AS units, sum(m.orders) AS orders
             FROM unnest($6::text[], $7::timestamptz[]) AS x(p, w)
             JOIN minutes m ON m.p = x.p
                 AND m.w >= x.w AND m.w < x.w + interval '10 minutes'
             GROUP BY x.p, x.w
             HAVING sum(m.units) >= $8::int8
         ), high AS (
             INSERT INTO high_demand_alerts AS h (product_id, window_start, window_end,
                 units_sold, order_count)
             SELECT p, w, w + interval '10 minutes', units, orders FROM demand ORDER BY p, w
             ON CONFLICT (product_id, window_start) DO UPDATE SET
                 units_sold = EXCLUDED.units_sold, order_count = EXCLUDED.order_count
             WHERE h.units_sold <> EXCLUDED.units_sold
             RETURNING *, (xmax = 0) AS new
         )
         SELECT alert_type || ':' || product_id || ':'
                 || to_char(triggered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                 AS alert_key,
             alert_type,
             CASE alert_type WHEN 'out_of_stock' THEN 'critical' WHEN 'low_stock' THEN 'high'
                 ELSE 'medium' END AS severity,
             product_id AS entity_id,
             CASE WHEN alert_type = 'restock_needed'
                 THEN format('%s: %s left, empty in %s h at the last hour''s sales', product_id,
                     current_stock, hours_until_stockout)
                 ELSE format('%s: %s left (threshold %s)', product_id, current_stock, threshold)
             END AS message,
             jsonb_strip_nulls(jsonb_build_object('product_id', product_id,
                 'current_stock', current_stock, 'threshold', threshold,
                 'hours_until_stockout', hours_until_stockout))::text AS details,
             triggered_at AS event_timestamp
         FROM recorded
         UNION ALL
         SELECT 'high_demand:' || product_id || ':'
                 || to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
             'high_demand', 'medium', product_id,
             format('%s: %s units in 10 minutes', product_id, units_sold),
             jsonb_build_object('product_id', product_id, 'units_sold', units_sold,
                 'order_count', order_count, 'window_start', window_start)::text,
             window_start
         FROM high WHERE new";

/// Recounts the stock of the products restocked: last inventory change less units sold since.
const RESTOCK: &str = "WITH versions AS (
             SELECT product_id, inventory, updated_at,
                 lag(inventory) OVER (PARTITION BY product_id ORDER BY updated_at) AS before
             FROM product_history WHERE product_id = ANY($1)
         ), restocked AS (
             SELECT DISTINCT ON (product_id) product_id, inventory, updated_at
             FROM versions WHERE before IS NULL OR before <> inventory
             ORDER BY product_id, updated_at DESC
         )
         INSERT INTO product_stock AS s (product_id, stock, catalogue_inventory, units_sold,
             restocked_at)
         SELECT r.product_id, r.inventory - sold.units, r.inventory, sold.units, r.updated_at
         FROM restocked r, LATERAL (
             SELECT coalesce(sum(quantity), 0)::int AS units FROM transactions t
             WHERE t.product_id = r.product_id AND t.\"timestamp\" >= r.updated_at) sold
         ORDER BY r.product_id
         ON CONFLICT (product_id) DO UPDATE SET stock = EXCLUDED.stock,
             catalogue_inventory = EXCLUDED.catalogue_inventory,
             units_sold = EXCLUDED.units_sold, restocked_at = EXCLUDED.restocked_at,
             updated_at = now()
         WHERE s.restocked_at IS DISTINCT FROM EXCLUDED.restocked_at";
