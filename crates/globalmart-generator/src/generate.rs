//! One run of the generator: publish the catalogue, then the backfill's history on its
//! simulated clock (with --from/--days), then live events at the configured rate (without a
//! backfill, or with --then-live) until --count, --duration or Ctrl+C/SIGTERM, then flush and
//! report.

use anyhow::Result;
use chrono::Utc;
use globalmart_core::timestamp;
use rand::RngExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, DEFAULT_CATALOGUE_SEED};
use crate::mix::{Mix, TRANSACTION_SHARE};
use crate::monitoring::{self, Monitor};
use crate::pace::Pacer;
use crate::producer::{Delivery, Output};
use crate::timeline::Timeline;

/// Events stamped with one clock read: tens of microseconds apart at most at full speed, and
/// a clock read per event was a twentieth of the work of building one.
const CLOCK_EVERY: u64 = 64;

/// Generates into `output` until done or `shutdown`; returns what was delivered.
pub async fn run(
    config: &Config,
    mut output: Output,
    shutdown: CancellationToken,
) -> Result<Delivery> {
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let catalogue_seed = config.seed.unwrap_or(DEFAULT_CATALOGUE_SEED);
    info!(
        "=== GlobalMart Data Generation Started === (seed {seed}, catalogue seed {catalogue_seed})"
    );
    let backfill = config
        .backfill(timestamp::to_micros(Utc::now()))
        .map_err(anyhow::Error::msg)?;
    // A backfill's catalogue is as of its first day, so the same seed gives the same history.
    let catalogue_time = backfill.map_or_else(|| timestamp::to_micros(Utc::now()), |p| p.start);
    let mix = Mix::new(config.mix_settings(), catalogue_seed, seed, catalogue_time);
    let mut monitor = Monitor::new(config.stats_interval);
    let started = Instant::now();

    let mut catalogue = 0;
    for record in mix.catalogue.events().collect::<Vec<_>>() {
        monitor.observe(&record, Instant::now());
        output.send(&record).await?;
        catalogue += 1;
    }
    info!(
        "published the catalogue: {} products, {} users",
        config.products, config.users
    );

    let mut run = Run {
        config,
        mix,
        monitor,
        output,
        shutdown,
        deadline: config.duration.map(|d| started + d),
    };
    let stopped = match backfill {
        Some(period) => {
            let per_day = f64::from(config.orders_per_day) / TRANSACTION_SHARE;
            let stopped = run
                .backfill(Timeline::new(seed, config.shape(), per_day, period))
                .await?;
            info!(
                "backfilled {} to {}: {} events",
                timestamp::format(&period.start),
                timestamp::format(&period.end),
                run.mix.counts().events()
            );
            stopped
        }
        None => false,
    };
    if backfill.is_none() || (config.then_live && !stopped) {
        run.live().await?;
    }
    let Run { mix, output, .. } = run;

    // Every record in flight gets its full delivery timeout, then counts as lost.
    let delivery = output.finish(config.delivery_timeout).await?;
    info!(
        "{}",
        monitoring::summary(mix.counts(), catalogue, delivery, started.elapsed())
    );
    Ok(delivery)
}

/// What the generation loops share.
struct Run<'a> {
    config: &'a Config,
    mix: Mix,
    monitor: Monitor,
    output: Output,
    shutdown: CancellationToken,
    deadline: Option<Instant>,
}

impl Run<'_> {
    /// Whether --count events were generated.
    fn counted(&self) -> bool {
        self.config
            .count
            .is_some_and(|n| self.mix.counts().events() >= n)
    }

    /// Whether --count, --duration or a shutdown says to stop.
    fn done(&self) -> bool {
        self.counted()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.shutdown.is_cancelled()
    }

    /// Generates the backfill's events at the times of `timeline`, never waiting for the wall
    /// clock; true if it was stopped before its end.
    async fn backfill(&mut self, timeline: Timeline) -> Result<bool> {
        // One clock read per look, as the live loop reads it once per batch.
        let mut looked = Instant::now();
        for (i, at) in timeline.enumerate() {
            if i % LOOK_EVERY == 0 {
                self.monitor
                    .maybe_stats(self.mix.counts(), self.output.progress());
                if self.done() {
                    return Ok(true);
                }
                looked = Instant::now();
            } else if self.counted() {
                return Ok(true);
            }
            let event = self.mix.next(at);
            self.monitor.observe(&event, looked);
            self.output.send(&event).await?;
        }
        Ok(false)
    }

    /// Generates events stamped with the wall clock at the configured rate until done.
    async fn live(&mut self) -> Result<()> {
        let mut pacer = Pacer::new(self.config.rate);
        loop {
            let due = tokio::select! {
                due = pacer.due() => due,
                () = self.shutdown.cancelled() => return Ok(()),
            };
            let batch_started = Instant::now();
            let mut now = timestamp::to_micros(Utc::now());
            for i in 0..due {
                if self.counted() {
                    return Ok(());
                }
                if i > 0 && i % CLOCK_EVERY == 0 {
                    now = timestamp::to_micros(Utc::now());
                }
                let event = self.mix.next(now);
                self.monitor.observe(&event, batch_started);
                self.output.send(&event).await?;
            }
            self.monitor
                .maybe_stats(self.mix.counts(), self.output.progress());
            if self.done() {
                return Ok(());
            }
        }
    }
}

/// Backfill events between two looks at the statistics, the deadline and the shutdown signal.
const LOOK_EVERY: usize = 4096;
