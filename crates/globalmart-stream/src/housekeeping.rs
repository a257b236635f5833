//! Housekeeping beside the batches, until shutdown: the abandoned-cart sweep, alerts published
//! to alerts-topic every second, and old metric windows pruned every hour. Each round's failure
//! is logged and the next round tries again.
//!
//! Abandoned carts: a session with items in its cart and no checkout, quiet for the inactivity
//! timeout, is recorded once in `abandoned_carts` and counted in the `cart_metrics` window (and
//! country) of its last activity. Time is event time, so a backfill of old events is judged as
//! it happened: "now" is the event time every partition of cart-events-topic has reached
//! (`stream_offsets.event_time`; a session's events share a partition, so its checkout cannot
//! be behind that time), leaving out partitions saved nothing for a minute (idle); with none,
//! the newest cart event saved. Each sweep looks at the sessions active since the latest
//! abandonment recorded (less a day, for late events), so one that comes after days of
//! backfilled event time still judges them all. The sweep is one statement keyed by session:
//! run twice, or by two instances at once, it records and counts each session once.
//! Retention: metric windows older than the retention are deleted; raw events by whole days
//! (`retention.rs`), and with them the product activity read from them (`trending_products`,
//! `category_performance`: views over the raw events).

use std::time::Duration;

use anyhow::Result;
use deadpool_postgres::Pool;
use tokio_postgres::{Client, Error};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::monitoring;
use crate::publish::Publisher;
use crate::retention;
use crate::retry::on_client;

/// How often, and by what rules, the housekeeping runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// How often to look for abandoned carts.
    pub sweep_every: Duration,
    /// How long a cart stays quiet before it is abandoned (event time).
    pub abandon_after: Duration,
    /// How long metric windows are kept.
    pub retention: Duration,
    /// How long raw events are kept (whole days, once the warehouse has loaded them).
    pub raw_retention: Duration,
    /// How often raw retention runs, the first round one interval after start.
    pub raw_retention_every: Duration,
}

/// Until shutdown: the abandoned-cart sweep every `sweep_every`, alerts published every second,
/// and old metric windows pruned every hour.
pub async fn run(pool: Pool, publisher: &Publisher, every: Schedule, shutdown: CancellationToken) {
    let mut sweeps = tokio::time::interval(every.sweep_every);
    let mut publishes = tokio::time::interval(Duration::from_secs(1));
    let mut prunes = tokio::time::interval(Duration::from_secs(3600));
    // Not at start: a stream back after a long stop first reads its backlog, so the days its
    // partitions have read past (what retention waits for) are known before anything goes.
    let mut retains = tokio::time::interval_at(
        tokio::time::Instant::now() + every.raw_retention_every,
        every.raw_retention_every,
    );
    loop {
        tokio::select! {
            _ = sweeps.tick() => sweep_once(&pool, every.abandon_after).await,
            _ = publishes.tick() => publish_once(&pool, publisher).await,
            _ = prunes.tick() => prune_once(&pool, every.retention).await,
            _ = retains.tick() => retain_once(&pool, every).await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Deletes old metric windows; a failure is logged and the next round tries again.
async fn prune_once(pool: &Pool, retention: Duration) {
    let pruned = on_client(pool, |c| async move { prune(&c, retention).await });
    match pruned.await {
        Ok(0) => {}
        Ok(n) => info!("pruned {n} metric rows older than {retention:?}"),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "pruning old metric windows failed; trying again in an hour")
        }
    }
}

/// One round of raw retention; a failure (the raw tables busy past the wait, say) is logged and
/// the next round tries again.
pub async fn retain_once(pool: &Pool, every: Schedule) {
    let keep = every.raw_retention;
    let retained = on_client(pool, |c| async move { retention::apply(&c, keep).await });
    match retained.await {
        Ok((0, _)) => {}
        Ok((days, horizon)) => info!(
            "[RawRetention] dropped {days} days of raw events the warehouse has loaded; the \
             realtime database keeps them from {horizon}"
        ),
        Err(e) => warn!(
            error = %format!("{e:#}"),
            "raw retention did not run; trying again in {:?}",
            every.raw_retention_every
        ),
    }
}

/// Publishes the alerts waiting; a failure is logged and the next round tries again.
pub async fn publish_once(pool: &Pool, publisher: &Publisher) {
    match publisher.publish(pool).await {
        Ok(0) => {}
        Ok(n) => {
            monitoring::ALERTS_PUBLISHED.inc_by(n);
            info!("[AlertPublisher] {n} alerts published to alerts-topic");
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "publishing alerts failed; trying again in a second")
        }
    }
}

/// One sweep; a failure is logged and the next sweep tries again.
pub async fn sweep_once(pool: &Pool, timeout: Duration) {
    let swept = on_client(pool, |c| async move { abandoned_carts(&c, timeout).await });
    match swept.await {
        Ok(0) => {}
        Ok(n) => {
            monitoring::ABANDONED_CARTS.inc_by(n);
            info!("[CartAbandonment] {n} abandoned carts recorded");
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "the abandoned-cart sweep failed; trying again at the next one")
        }
    }
}

/// How far before the latest abandonment recorded the sweep looks again: late events of older
/// sessions within a day are still judged.
const LOOKBACK: &str = "1 day";

/// Records the sessions abandoned by now; returns how many were new.
pub async fn abandoned_carts(client: &Client, timeout: Duration) -> Result<u64, Error> {
    let row = client
        .query_one(SWEEP, &[&timeout.as_secs_f64(), &LOOKBACK])
        .await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Deletes the metric windows that started more than `retention` ago (wall clock); returns the
/// rows deleted. Raw events, anomalies and alerts are kept.
pub async fn prune(client: &Client, retention: Duration) -> Result<u64, Error> {
    let row = client.query_one(PRUNE, &[&retention.as_secs_f64()]).await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Old windows of every windowed metric table, in one statement.
const PRUNE: &str = "
    WITH cutoff AS (SELECT now() - make_interval(secs => $1) AS t),
    a AS (DELETE FROM sales_per_minute WHERE window_start < (SELECT t FROM cutoff) RETURNING 1),
    b AS (DELETE FROM sales_by_country WHERE window_start < (SELECT t FROM cutoff) RETURNING 1),
    c AS (DELETE FROM cart_metrics WHERE window_start < (SELECT t FROM cutoff) RETURNING 1),
    d AS (DELETE FROM cart_session_windows WHERE window_start < (SELECT t FROM cutoff)
          RETURNING 1)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) + (SELECT count(*) FROM c)
        + (SELECT count(*) FROM d)";

/// Quiet carts with items and no checkout into abandoned_carts, counted in their window.
const SWEEP: &str = "WITH now_ AS (
                     SELECT coalesce(
                         (SELECT min(event_time) FROM stream_offsets
                          WHERE topic LIKE '%cart-events-topic' AND event_time IS NOT NULL
                            AND updated_at > now() - interval '1 minute'),
                         (SELECT max(\"timestamp\") FROM cart_events)) AS t
                 ), since AS (
                     SELECT least(
                         coalesce((SELECT max(last_activity_at) FROM abandoned_carts),
                                  '-infinity'),
                         now_.t - make_interval(secs => $1)) - $2::text::interval AS t
                     FROM now_
                 ), last AS (
                     SELECT DISTINCT ON (c.session_id) c.session_id, c.user_id, c.country,
                         c.event_type, c.cart_size, c.cart_value, c.\"timestamp\"
                     FROM cart_events c, since
                     WHERE c.\"timestamp\" >= since.t
                     ORDER BY c.session_id, c.\"timestamp\" DESC, c.ingest_seq DESC
                 ), quiet AS (
                     SELECT l.* FROM last l, now_
                     WHERE l.\"timestamp\" < now_.t - make_interval(secs => $1)
                       AND l.event_type <> 'checkout' AND coalesce(l.cart_size, 0) > 0
                       -- Recorded by an earlier sweep (most of the day looked at again):
                       -- left before their items are gathered.
                       AND NOT EXISTS (SELECT 1 FROM abandoned_carts a
                                       WHERE a.session_id = l.session_id)
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
                 SELECT count(*) FROM recorded";
