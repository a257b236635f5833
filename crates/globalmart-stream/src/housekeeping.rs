//! Housekeeping beside the batches, until shutdown: the abandoned-cart sweep, alerts published
//! to alerts-topic every second, old metric windows pruned every hour, raw retention, and the
//! cart events' statistics. Each round's failure is logged and the next round tries again.
//!
//! Abandoned carts: a session with items in its cart and no checkout, quiet for the inactivity
//! timeout, is recorded once in `abandoned_carts`; the `cart_metrics` view counts it in the window
//! (and country) of its last activity. Time is event time, so a backfill of old events is judged as
//! it happened: "now" is the event time every partition of cart-events-topic has reached in its
//! newest batch (`stream_offsets.batch_event_time`; a session's events share a partition, so its
//! checkout cannot be behind that time; a backfill of older days moves it back), leaving out
//! partitions saved nothing for a minute (idle); with none, the newest cart event saved. A sweep
//! judges the sessions whose last event falls between the cutoff of the sweep before (less a margin
//! for events a little out of order) and its own cutoff ("now" less the timeout), so it costs what
//! came in since the last, not a day of events, and one that comes after days of backfilled event
//! time still judges them all. The first sweep, then one an hour, is a full one: from the latest
//! abandonment recorded, less a day for late events. A session is judged by its cart events from
//! a day before the sweep's window on: a checkout or an item older than that is an earlier
//! visit's. Writing is one statement keyed by session: run twice, or by two instances at once,
//! it records each session once.
//! Retention: metric windows older than the retention are deleted; raw events by whole days
//! (`retention.rs`), and with them the product activity and the cart metrics read from them
//! (`trending_products`, `category_performance`, `cart_metrics`: views over the raw events).
//! Statistics: the cart events as a whole are analysed at start and then once a day, for the
//! sweep's plan.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
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
/// old metric windows pruned every hour, the cart events' statistics looked at every hour (and
/// refreshed when missing or a day old), and raw retention every `raw_retention_every`.
pub async fn run(pool: Pool, publisher: &Publisher, every: Schedule, shutdown: CancellationToken) {
    let mut sweeps = tokio::time::interval(every.sweep_every);
    let mut swept = Sweeps::default();
    let mut publishes = tokio::time::interval(Duration::from_secs(1));
    let mut prunes = tokio::time::interval(Duration::from_secs(3600));
    let mut analyses = tokio::time::interval(Duration::from_secs(3600));
    // Not at start: a stream back after a long stop first reads its backlog, so the days its
    // partitions have read past (what retention waits for) are known before anything goes.
    let mut retains = tokio::time::interval_at(
        tokio::time::Instant::now() + every.raw_retention_every,
        every.raw_retention_every,
    );
    loop {
        tokio::select! {
            _ = sweeps.tick() => swept.once(&pool, every.abandon_after).await,
            _ = publishes.tick() => publish_once(&pool, publisher).await,
            _ = prunes.tick() => prune_once(&pool, every.retention).await,
            _ = analyses.tick() => analyse_once(&pool).await,
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

/// Analyses the cart events when they have no statistics as a whole or only a day old ones;
/// a failure is logged and the next round tries again.
async fn analyse_once(pool: &Pool) {
    let started = Instant::now();
    match on_client(pool, |c| async move { refresh_statistics(&c).await }).await {
        Ok(false) => {}
        Ok(true) => info!(
            "[CartAbandonment] cart_events analysed for the sweep's plan in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "analysing cart_events failed; trying again in an hour")
        }
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

/// Where the abandoned-cart sweeps have got to.
#[derive(Debug, Default)]
struct Sweeps {
    /// The cutoff of the last sweep: the next one judges the sessions quiet since.
    judged_to: Option<DateTime<Utc>>,
    /// When the last full sweep ran.
    full_at: Option<Instant>,
}

/// A full sweep (a one-shot load's last); a failure is logged.
pub async fn sweep_once(pool: &Pool, timeout: Duration) {
    Sweeps::default().once(pool, timeout).await;
}

/// How often a sweep looks at the whole lookback again, for events later than the margin.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(3600);

impl Sweeps {
    /// One sweep; a failure is logged and the next sweep starts from the same point.
    async fn once(&mut self, pool: &Pool, timeout: Duration) {
        let full = self.judged_to.is_none()
            || self
                .full_at
                .is_none_or(|at| at.elapsed() >= FULL_SWEEP_EVERY);
        let after = if full { None } else { self.judged_to };
        let swept = on_client(pool, |c| async move {
            abandoned_carts(&c, timeout, after).await
        });
        match swept.await {
            Ok(sweep) => {
                if full {
                    self.full_at = Some(Instant::now());
                }
                self.judged_to = sweep.judged_to;
                if sweep.recorded > 0 {
                    monitoring::ABANDONED_CARTS.inc_by(sweep.recorded);
                    info!(
                        "[CartAbandonment] {} abandoned carts recorded",
                        sweep.recorded
                    );
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "the abandoned-cart sweep failed; trying again at the next one")
            }
        }
    }
}

/// How far before the latest abandonment recorded a full sweep looks again: late events of
/// older sessions within a day are still judged. And how far before its window a sweep reads a
/// session's cart events for its checkout and items (`SWEEP`).
const LOOKBACK: &str = "1 day";

/// How far before the cutoff of the sweep before a sweep looks: events saved a little out of
/// order are judged at the next sweep, later ones at the next full sweep.
const OUT_OF_ORDER: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// The sessions it recorded as abandoned.
    pub recorded: u64,
    /// Its cutoff: the sessions quiet since before it were judged (none without cart events).
    pub judged_to: Option<DateTime<Utc>>,
}

/// Records the sessions abandoned by now: those whose last event is after `after` (the cutoff
/// of the sweep before, less the margin) or, with `None` or a cutoff now behind it, a full
/// sweep's lookback. The window's
/// bounds are worked out first and passed as values, so the plan fits the window: a lookup by
/// session for the few sessions of a live sweep, a sort of the window's events for a day's.
pub async fn abandoned_carts(
    client: &Client,
    timeout: Duration,
    after: Option<DateTime<Utc>>,
) -> Result<Sweep, Error> {
    let bounds = client
        .query_one(WINDOW, &[&timeout.as_secs_f64(), &LOOKBACK])
        .await?;
    let (Some(cutoff), Some(lookback)) = (
        bounds.try_get::<_, Option<DateTime<Utc>>>(0)?,
        bounds.try_get::<_, Option<DateTime<Utc>>>(1)?,
    ) else {
        // No cart events: nothing to judge.
        return Ok(Sweep {
            recorded: 0,
            judged_to: None,
        });
    };
    // A cutoff behind the one before: the partitions moved back in event time (a backfill of
    // days older than what they held), and the sessions before it came in after that sweep:
    // look back as a full sweep does.
    let since = match after.and_then(|after| after.checked_sub_signed(OUT_OF_ORDER)) {
        Some(since) if since <= cutoff => since,
        _ => lookback,
    };
    let row = client
        .query_one(SWEEP, &[&since, &cutoff, &LOOKBACK])
        .await?;
    Ok(Sweep {
        recorded: row.try_get::<_, i64>(0)?.max(0) as u64,
        judged_to: Some(cutoff),
    })
}

/// How old the cart events' statistics may get before they are refreshed.
const STATISTICS_STALE: &str = "1 day";

/// How long the refresh waits for a partition's lock (autovacuum's, a drop's) before it gives up
/// until the next round.
const STATISTICS_WAIT: &str = "200 milliseconds";

/// Analyses the cart events when they have no statistics as a whole or only ones older than a
/// day, for the sweep's plan (`sql/realtime/V21__cart_events_statistics.sql`); returns whether
/// it did.
pub async fn refresh_statistics(client: &Client) -> Result<bool, Error> {
    client
        .query_one(
            "SELECT cart_statistics_refresh($1::text::interval, $2::text::interval)",
            &[&STATISTICS_STALE, &STATISTICS_WAIT],
        )
        .await?
        .try_get(0)
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
    b AS (DELETE FROM sales_by_country WHERE window_start < (SELECT t FROM cutoff) RETURNING 1)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)";

/// A sweep's cutoff (now less the timeout, `$1` seconds) and a full sweep's start (the latest
/// abandonment recorded or the cutoff, whichever is earlier, less the lookback `$2`; with none
/// recorded, the oldest cart event); both NULL without cart events.
const WINDOW: &str = "WITH now_ AS (
                     SELECT coalesce(
                         (SELECT min(batch_event_time) FROM stream_offsets
                          WHERE topic LIKE '%cart-events-topic' AND batch_event_time IS NOT NULL
                            AND updated_at > now() - interval '1 minute'),
                         (SELECT max(\"timestamp\") FROM cart_events)) AS t
                 ), cutoff AS (
                     SELECT t - make_interval(secs => $1) AS t FROM now_
                 ), latest AS (
                     SELECT max(last_activity_at) AS t FROM abandoned_carts
                 )
                 SELECT cutoff.t, CASE WHEN cutoff.t IS NULL THEN NULL
                     WHEN latest.t IS NULL THEN (SELECT min(\"timestamp\") FROM cart_events)
                     ELSE least(latest.t, cutoff.t) - $2::text::interval END
                 FROM cutoff, latest";

/// Quiet carts with items and no checkout into abandoned_carts: the sessions with an event from
/// `$1` to the cutoff `$2` whose last event is before the cutoff. A session is judged by its cart
/// events from the lookback `$3` before `$1` on (at least the day before its last activity): a
/// checkout or an item older than that is another visit's, and the checkout and item lookups
/// read those days' partitions only, not every day the realtime database keeps (a month at the
/// course's scale: docs/ARCHITECTURE.md, "A thirty-fifth run").
const SWEEP: &str = "WITH candidates AS (
                     SELECT DISTINCT session_id FROM cart_events
                     WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2
                 ), last AS (
                     SELECT DISTINCT ON (c.session_id) c.session_id, c.user_id, c.country,
                         c.event_type, c.cart_size, c.cart_value, c.\"timestamp\"
                     FROM cart_events c JOIN candidates s ON s.session_id = c.session_id
                     WHERE c.\"timestamp\" >= $1
                     ORDER BY c.session_id, c.\"timestamp\" DESC, c.ingest_seq DESC
                 ), quiet AS (
                     SELECT l.* FROM last l
                     WHERE l.\"timestamp\" < $2
                       AND l.event_type <> 'checkout' AND coalesce(l.cart_size, 0) > 0
                       -- Recorded by an earlier sweep (a full sweep looks at a day again):
                       -- left before their items are gathered.
                       AND NOT EXISTS (SELECT 1 FROM abandoned_carts a
                                       WHERE a.session_id = l.session_id)
                       AND NOT EXISTS (SELECT 1 FROM cart_events k
                                       WHERE k.session_id = l.session_id
                                         AND k.event_type = 'checkout'
                                         AND k.\"timestamp\" >= $1 - $3::text::interval)
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
                                  AND \"timestamp\" >= $1 - $3::text::interval
                                ORDER BY product_id, \"timestamp\" DESC, ingest_seq DESC) p
                          WHERE p.event_type <> 'remove_from_cart'),
                         q.\"timestamp\"
                     FROM quiet q
                     ON CONFLICT (session_id) DO NOTHING
                     RETURNING 1
                 )
                 SELECT count(*) FROM recorded";
