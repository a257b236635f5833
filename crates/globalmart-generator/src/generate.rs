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
use tracing::{info, warn};

use globalmart_core::config::KafkaArgs;

use crate::catalogue::fingerprint;
use crate::config::{Config, Publish, DEFAULT_CATALOGUE_SEED};
use crate::mix::{Mix, TRANSACTION_SHARE};
use crate::monitoring::{self, Monitor};
use crate::pace::Pacer;
use crate::producer::{Delivery, Output};
use crate::publication::Publication;
use crate::timeline::{Period, Timeline};

/// Events stamped with one clock read: tens of microseconds apart at most at full speed, and
/// a clock read per event was a twentieth of the work of building one.
const CLOCK_EVERY: u64 = 64;

/// Generates into `output` until done or `shutdown`; returns what was delivered.
pub async fn run(config: &Config, output: Output, shutdown: CancellationToken) -> Result<Delivery> {
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let catalogue_seed = config.seed.unwrap_or(DEFAULT_CATALOGUE_SEED);
    info!(
        "=== GlobalMart Data Generation Started === (seed {seed}, catalogue seed {catalogue_seed})"
    );
    let backfill = config
        .backfill(timestamp::to_micros(Utc::now()))
        .map_err(anyhow::Error::msg)?;
    // A backfill's catalogue is as of its first moment, a live run's as of the start of its
    // day: the same seed gives the same catalogue, registration dates included.
    let shop = backfill.unwrap_or(Period::day_of(Utc::now()));
    let mix = Mix::new(config.mix_settings(), catalogue_seed, seed, shop).promoting(config.shape());
    let started = Instant::now();
    let mut run = Run {
        config,
        mix,
        monitor: Monitor::new(config.stats_interval),
        output,
        shutdown,
        deadline: config.duration.map(|d| started + d),
    };
    let fingerprint = fingerprint(catalogue_seed, config.users(), config.products(), shop);
    let catalogue = run.publish_catalogue(fingerprint).await?;

    let stopped = match backfill {
        Some(period) => {
            let per_day = f64::from(config.orders_per_day()) / TRANSACTION_SHARE;
            let began = Instant::now();
            let stopped = run
                .backfill(Timeline::new(seed, config.shape(), per_day, period))
                .await?;
            let (events, seconds) = (run.mix.counts().events(), began.elapsed());
            info!(
                "backfilled {} to {}: {events} events in {:.1} s ({:.0}/s)",
                timestamp::format(&period.start),
                timestamp::format(&period.end),
                seconds.as_secs_f64(),
                events as f64 / seconds.as_secs_f64().max(f64::EPSILON)
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
    /// Publishes the catalogue, unless products-topic and users-topic hold it already
    /// (publication.rs); returns the records published.
    async fn publish_catalogue(&mut self, fingerprint: String) -> Result<u64> {
        if self.config.catalogue == Publish::Skip {
            info!("the catalogue is not published (--catalogue skip): the topics hold it");
            return Ok(0);
        }
        let publication = match self.output {
            Output::Kafka(_) => look(&self.config.kafka, fingerprint.clone()).await,
            Output::DryRun(_) => None,
        };
        let (users, products) = (self.config.users(), self.config.products());
        if let Some((_, true)) = publication {
            info!(
                "the catalogue topics hold this catalogue already ({products} products, {users} \
                 users; fingerprint {fingerprint}): not published again"
            );
            return Ok(0);
        }
        let (began, mut published) = (Instant::now(), 0u64);
        let mut looked = began;
        for record in self.mix.catalogue.events() {
            // One clock read per look, as in the backfill: a read per record was 3 % of the work.
            if published.is_multiple_of(LOOK_EVERY as u64) {
                looked = Instant::now();
            }
            self.monitor.observe(&record, looked);
            self.output.send(&record).await?;
            published += 1;
        }
        let Some((publication, _)) = publication else {
            info!("published the catalogue: {products} products, {users} users");
            return Ok(published);
        };
        // Marked only once every record is acknowledged: a mark means a complete catalogue.
        let delivery = self.output.settle(self.config.delivery_timeout).await;
        if delivery.failed > 0 || delivery.in_flight() > 0 {
            warn!("the catalogue was not entirely delivered: the next start publishes it again");
            return Ok(published);
        }
        let seconds = began.elapsed().as_secs_f64();
        let marked = tokio::task::spawn_blocking(move || publication.mark()).await?;
        match marked {
            Ok(()) => info!(
                "published the catalogue: {products} products, {users} users, {published} \
                 records acknowledged in {seconds:.1} s ({:.0}/s; fingerprint {fingerprint}: a \
                 restart will not publish it again)",
                published as f64 / seconds.max(f64::EPSILON)
            ),
            Err(e) => warn!("published the catalogue, but could not mark it ({e:#}): the next start publishes it again"),
        }
        Ok(published)
    }

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

/// The catalogue topics as found at start and whether they hold the catalogue of
/// `fingerprint`; None (with a warning) when that could not be found out.
async fn look(kafka: &KafkaArgs, fingerprint: String) -> Option<(Publication, bool)> {
    let kafka = kafka.clone();
    let looked = tokio::task::spawn_blocking(move || {
        let publication = Publication::look(&kafka, fingerprint)?;
        let held = publication.holds()?;
        anyhow::Ok((publication, held))
    })
    .await;
    match looked.map_err(anyhow::Error::from).and_then(|found| found) {
        Ok(found) => Some(found),
        Err(e) => {
            warn!("could not find out whether the catalogue topics hold this catalogue ({e:#}): publishing it");
            None
        }
    }
}

/// Records between two looks at the clock (the statistics, the deadline and the shutdown
/// signal, in a backfill).
const LOOK_EVERY: usize = 4096;
