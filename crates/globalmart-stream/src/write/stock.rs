//! Stock on hand per product, in the same transaction as the rows: it starts from the
//! catalogue's inventory, each sale saved takes its units off, and a restock (a newer catalogue
//! version with another inventory) resets it. Event time decides: the stock is the inventory of
//! the product's last restock less the units sold since that restock's time, whatever order the
//! messages arrive in. A sale taking the stock below the threshold records one low-stock (or
//! out-of-stock) alert for that crossing, in `restock_alerts` and in `alerts`. A sale after which
//! the last hour's sales velocity would empty the stock within the restock horizon records one
//! `restock_needed` alert per restock (the next one comes after the next restock).

use chrono::{DateTime, Utc};
use globalmart_core::event::Transaction;
use tokio_postgres::{Error, Transaction as DbTransaction};

use crate::config::Thresholds;
use crate::write::alerts::{self, Alert};

/// Takes the units of the inserted sales (`lines`: product, time, units) off the stock; sales
/// older than the product's last restock are in its inventory already. Records an alert for each
/// product that crossed below the low-stock threshold, and for each product not yet low whose
/// units sold in the hour up to the sale (the per-minute product activity, folded or pending,
/// which this batch already counted; none for sales older than the metrics' retention) would
/// empty it within the restock horizon. Both are checked once per batch and product, at the
/// batch's last sale of it.
pub async fn sell(
    tx: &DbTransaction<'_>,
    lines: &[(&str, DateTime<Utc>, i64)],
    thresholds: &Thresholds,
) -> Result<Vec<Alert>, Error> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let products: Vec<&str> = lines.iter().map(|l| l.0).collect();
    let times: Vec<DateTime<Utc>> = lines.iter().map(|l| l.1).collect();
    let units: Vec<i64> = lines.iter().map(|l| l.2).collect();
    let rows = tx
        .query(
            SELL,
            &[
                &products,
                &times,
                &units,
                &thresholds.low_stock,
                &thresholds.restock_horizon_hours,
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

/// (product, time, units) of each line of `transactions`.
pub fn lines<'a>(transactions: &[&'a Transaction]) -> Vec<(&'a str, DateTime<Utc>, i64)> {
    transactions
        .iter()
        .flat_map(|t| {
            t.products
                .iter()
                .map(|l| (l.product_id.as_str(), t.timestamp, i64::from(l.quantity)))
        })
        .collect()
}

/// Takes the sold units off, records the low-stock and restock warnings crossed, and returns
/// their alerts.
const SELL: &str = "WITH sold AS (
             SELECT x.p, sum(x.u)::int AS units, max(x.t) AS at
             FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) AS x(p, t, u)
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
             SELECT c.product_id, c.after, c.at, v.units
             FROM changed c, LATERAL (
                 -- The minutes folded and those pending (this batch's among them): under one
                 -- snapshot a fold has moved a tally wholly or not at all.
                 SELECT sum(units) AS units FROM (
                     SELECT units_sold AS units FROM trending_products tp
                     WHERE tp.product_id = c.product_id
                         AND tp.window_start > c.at - interval '1 hour' AND tp.window_start <= c.at
                     UNION ALL
                     SELECT units_sold FROM product_activity_pending pp
                     WHERE pp.product_id = c.product_id AND pp.units_sold > 0
                         AND pp.window_start > c.at - interval '1 hour' AND pp.window_start <= c.at
                 ) minutes
             ) v
             WHERE c.after >= $4 AND NOT EXISTS (
                 SELECT 1 FROM restock_alerts r
                 WHERE r.product_id = c.product_id AND r.alert_type = 'restock_needed'
                     AND r.triggered_at >= c.restocked_at)
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
         FROM recorded";

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
