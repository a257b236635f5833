//! The periodic sweeps. Abandoned carts: a session with items in its cart and no checkout,
//! quiet for the inactivity timeout, is recorded once in `abandoned_carts` and counted in the
//! `cart_metrics` window (and country) of its last activity. Time is event time: "now" is the
//! newest cart event saved, so a backfill of old events is judged as it happened. The sweep is
//! one statement keyed by session: run twice, or by two instances at once, it records and
//! counts each session once. Retention: metric windows older than the retention are deleted.

use std::time::Duration;

use tokio_postgres::{Client, Error};

/// How far before the timeout the sweep looks for quiet sessions: a session whose last activity
/// is older than this when the sweep first runs (after a long stop) is left alone.
pub const LOOKBACK: &str = "1 day";

/// Records the sessions abandoned by now; returns how many were new.
pub async fn abandoned_carts(client: &Client, timeout: Duration) -> Result<u64, Error> {
    let timeout = timeout.as_secs_f64();
    let row = client
        .query_one(
            &format!(
                "WITH now_ AS (SELECT max(\"timestamp\") AS t FROM cart_events),
                 last AS (
                     SELECT DISTINCT ON (c.session_id) c.session_id, c.user_id, c.country,
                         c.event_type, c.cart_size, c.cart_value, c.\"timestamp\"
                     FROM cart_events c, now_
                     WHERE c.\"timestamp\" >= now_.t - make_interval(secs => $1) - interval '{LOOKBACK}'
                     ORDER BY c.session_id, c.\"timestamp\" DESC, c.ingest_seq DESC
                 ), quiet AS (
                     SELECT l.* FROM last l, now_
                     WHERE l.\"timestamp\" < now_.t - make_interval(secs => $1)
                       AND l.event_type <> 'checkout' AND coalesce(l.cart_size, 0) > 0
                       AND NOT EXISTS (SELECT 1 FROM cart_events k
                                       WHERE k.session_id = l.session_id
                                         AND k.event_type = 'checkout')
                 ), recorded AS (
                     INSERT INTO abandoned_carts (session_id, user_id, country, cart_size,
                         cart_value, items, last_activity_at)
                     SELECT q.session_id, q.user_id, q.country, q.cart_size,
                         coalesce(q.cart_value, 0),
                         -- The products still in the cart: last touched by other than a removal.
                         (SELECT coalesce(jsonb_agg(p.product_id ORDER BY p.product_id), '[]')
                          FROM (SELECT DISTINCT ON (product_id) product_id, event_type
                                FROM cart_events
                                WHERE session_id = q.session_id AND product_id IS NOT NULL
                                ORDER BY product_id, \"timestamp\" DESC, ingest_seq DESC) p
                          WHERE p.event_type <> 'remove_from_cart'),
                         q.\"timestamp\"
                     FROM quiet q
                     ON CONFLICT (session_id) DO NOTHING
                     RETURNING country, last_activity_at
                 ), counted AS (
                     UPDATE cart_metrics m SET
                         abandoned_sessions = m.abandoned_sessions + x.n,
                         abandonment_rate_pct = least(100, round(100.0
                             * (m.abandoned_sessions + x.n) / greatest(m.active_sessions, 1), 2)),
                         updated_at = now()
                     FROM (SELECT date_trunc('minute', last_activity_at AT TIME ZONE 'UTC')
                                  AT TIME ZONE 'UTC' AS w, country, count(*) AS n
                           FROM recorded GROUP BY 1, 2) x
                     WHERE m.window_start = x.w AND m.country = x.country
                     RETURNING 1
                 )
                 SELECT count(*) FROM recorded"
            ),
            &[&timeout],
        )
        .await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// The windowed metric tables, pruned by [`prune`].
const WINDOWED: [&str; 6] = [
    "sales_per_minute",
    "sales_by_country",
    "cart_metrics",
    "cart_session_windows",
    "trending_products",
    "category_performance",
];

/// Deletes the metric windows that started more than `retention` ago (wall clock); returns the
/// rows deleted. Raw events, anomalies and alerts are kept.
pub async fn prune(client: &Client, retention: Duration) -> Result<u64, Error> {
    let mut deleted = 0;
    for table in WINDOWED {
        deleted += client
            .execute(
                &format!(
                    "DELETE FROM {table} WHERE window_start < now() - make_interval(secs => $1)"
                ),
                &[&retention.as_secs_f64()],
            )
            .await?;
    }
    Ok(deleted)
}
