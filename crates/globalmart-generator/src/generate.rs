//! One run of the generator: publish the catalogue, then events at the configured rate until
//! --count, --duration or Ctrl+C/SIGTERM, then flush and report.

use anyhow::Result;
use chrono::Utc;
use globalmart_core::timestamp;
use rand::RngExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, DEFAULT_CATALOGUE_SEED};
use crate::mix::Mix;
use crate::monitoring::{self, Monitor};
use crate::pace::Pacer;
use crate::producer::{Delivery, Output};

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
    let mut mix = Mix::new(
        config.mix_settings(),
        catalogue_seed,
        seed,
        timestamp::to_micros(Utc::now()),
    );
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

    let deadline = config.duration.map(|d| started + d);
    let mut pacer = Pacer::new(config.rate);
    'run: loop {
        let due = tokio::select! {
            due = pacer.due() => due,
            () = shutdown.cancelled() => break 'run,
        };
        let batch_started = Instant::now();
        let mut now = timestamp::to_micros(Utc::now());
        for i in 0..due {
            if config.count.is_some_and(|n| mix.counts().events() >= n) {
                break 'run;
            }
            if i > 0 && i % CLOCK_EVERY == 0 {
                now = timestamp::to_micros(Utc::now());
            }
            let event = mix.next(now);
            monitor.observe(&event, batch_started);
            output.send(&event).await?;
        }
        monitor.maybe_stats(mix.counts(), output.progress());
        if deadline.is_some_and(|d| Instant::now() >= d) || shutdown.is_cancelled() {
            break;
        }
    }

    // Every record in flight gets its full delivery timeout, then counts as lost.
    let delivery = output.finish(config.delivery_timeout).await?;
    info!(
        "{}",
        monitoring::summary(mix.counts(), catalogue, delivery, started.elapsed())
    );
    Ok(delivery)
}
