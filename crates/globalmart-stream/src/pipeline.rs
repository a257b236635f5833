//! The stream's loop, one per lane (its consumer and its topics, `source::LANES`), the lanes
//! side by side: cut batches from the Kafka source (by size or time), save each in one
//! transaction, then commit the same offsets to Kafka. One batch saves while the next one is
//! read and parsed; a lane's batches still commit in order, as each waits for the one before.
//! A failed save is retried with backoff and nothing is committed meanwhile; a malformed
//! message becomes a dead letter and never stops the loop. Housekeeping runs beside them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::batcher::Batch;
use crate::config::{Config, Thresholds};
use crate::housekeeping::{self, Schedule};
use crate::monitoring::{self, Totals};
use crate::publish::Publisher;
use crate::retry::{on_client, retrying};
use crate::save::Saved;
use crate::source::KafkaSource;
use crate::write::offsets::stored_offsets;

/// How often the consumer lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// What the loop needs, built by `main`: one source per lane ([`crate::source::LANES`]).
#[derive(Debug)]
pub struct Parts {
    pub sources: Vec<KafkaSource>,
    pub pool: Pool,
    pub publisher: Publisher,
    pub shutdown: CancellationToken,
}

/// The loop's settings, from the stream's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub exit_when_idle: Option<Duration>,
    pub thresholds: Thresholds,
    pub housekeeping: Schedule,
}

impl From<&Config> for Settings {
    fn from(config: &Config) -> Settings {
        Settings {
            batch_size: config.batch_size as usize,
            batch_wait: Duration::from_millis(config.batch_wait_ms),
            exit_when_idle: config.exit_when_idle.map(Duration::from_secs),
            thresholds: config.thresholds(),
            housekeeping: Schedule {
                sweep_every: config.sweep_interval,
                abandon_after: config.abandon_after,
                retention: config.metrics_retention,
                raw_retention: config.raw_retention,
                raw_retention_every: config.raw_retention_interval,
            },
        }
    }
}

/// Runs every lane until shutdown (or, with `exit_when_idle`, until each is caught up and
/// idle). A lane that fails stops the others, which finish their batch in flight.
pub async fn run(parts: Parts, settings: Settings) -> Result<()> {
    let Parts {
        sources,
        pool,
        publisher,
        shutdown,
    } = parts;
    let group = sources
        .first()
        .map(|s| s.group().to_owned())
        .unwrap_or_default();
    info!(%group, lanes = sources.len(), "Starting stream processing jobs...");
    let publisher = Arc::new(publisher);
    {
        let (pool, publisher, shutdown) = (pool.clone(), Arc::clone(&publisher), shutdown.clone());
        let schedule = settings.housekeeping;
        tokio::spawn(async move { housekeeping::run(pool, &publisher, schedule, shutdown).await });
    }
    let lanes = sources.into_iter().map(|source| {
        let (pool, settings, shutdown) = (pool.clone(), settings.clone(), shutdown.clone());
        tokio::spawn(async move {
            let outcome = lane(source, &pool, &settings, &shutdown).await;
            if outcome.is_err() {
                shutdown.cancel();
            }
            outcome
        })
    });
    let mut totals = Totals::default();
    let mut failed = None;
    for outcome in futures::future::join_all(lanes).await {
        match outcome
            .context("a lane of the stream panicked")
            .and_then(|o| o)
        {
            Ok(lane) => totals.add(lane),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        totals.log();
        return Err(e);
    }
    if settings.exit_when_idle.is_some() && !shutdown.is_cancelled() {
        // A one-shot load ends with the carts it left abandoned recorded and its alerts
        // published.
        housekeeping::sweep_once(&pool, settings.housekeeping.abandon_after).await;
        housekeeping::publish_once(&pool, &publisher).await;
    }
    totals.log();
    Ok(())
}

/// One lane: cuts batches from its source, saves each (one in flight while the next is cut)
/// and commits its offsets; returns what it saved.
async fn lane(
    mut source: KafkaSource,
    pool: &Pool,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<Totals> {
    let name = source.lane().name;
    let mut idle_since = Instant::now();
    let mut last_lag = Instant::now();
    let mut totals = Totals::default();
    let mut in_flight: Option<JoinHandle<Result<Done>>> = None;
    loop {
        let batch = cut(&mut source, pool, settings, shutdown, &mut totals).await?;
        if !batch.is_empty() {
            if let Some(previous) = in_flight.take() {
                finish(&source, &mut totals, previous.await??);
            }
            in_flight = Some(tokio::spawn(save_until_done(
                pool.clone(),
                batch,
                source.group().to_owned(),
                settings.thresholds,
                shutdown.clone(),
            )));
            idle_since = Instant::now();
        } else if in_flight.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(previous) = in_flight.take() {
                finish(&source, &mut totals, previous.await??);
            }
        }
        if last_lag.elapsed() >= LAG_EVERY {
            if let Err(e) = tokio::task::block_in_place(|| source.measure_lag()) {
                warn!(lane = name, error = %e, "could not measure the consumer lag");
            }
            last_lag = Instant::now();
        }
        if shutdown.is_cancelled() {
            if let Some(previous) = in_flight.take() {
                finish(&source, &mut totals, previous.await??);
            }
            info!(lane = name, "stream processing stopped");
            return Ok(totals);
        }
        if let Some(idle) = settings.exit_when_idle {
            if idle_since.elapsed() >= idle && in_flight.is_none() {
                let checked = Instant::now();
                let caught_up = is_caught_up(&source, pool).await;
                debug!(lane = name, caught_up, took = ?checked.elapsed(), "checked whether caught up");
                if caught_up {
                    info!(
                        lane = name,
                        "caught up and idle for {} s: exiting",
                        idle.as_secs()
                    );
                    return Ok(totals);
                }
                idle_since = Instant::now();
            }
        }
    }
}

/// Reads messages into a batch until it is full, the batch wait has passed or shutdown.
async fn cut(
    source: &mut KafkaSource,
    pool: &Pool,
    settings: &Settings,
    shutdown: &CancellationToken,
    totals: &mut Totals,
) -> Result<Batch> {
    let mut batch = Batch::default();
    // One timer per batch, not one per message.
    let deadline = tokio::time::sleep(settings.batch_wait);
    tokio::pin!(deadline);
    while batch.len() < settings.batch_size {
        let stop = async {
            tokio::select! {
                () = &mut deadline => {}
                () = shutdown.cancelled() => {}
            }
        };
        let Some((received, parsed)) = source.next(pool, stop, shutdown).await? else {
            break;
        };
        totals.received();
        batch.add(received, parsed);
    }
    Ok(batch)
}

/// Idle is not enough to exit: partitions still held by a crashed member (until its session
/// times out) may have messages nobody saved yet. The database or the broker being away means
/// not caught up: wait for them.
async fn is_caught_up(source: &KafkaSource, pool: &Pool) -> bool {
    let done = async {
        let client = pool.get().await?;
        let stored = stored_offsets(&client, source.group()).await?;
        tokio::task::block_in_place(|| source.caught_up(&stored))
    };
    match done.await {
        Ok(caught_up) => caught_up,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "could not check whether everything is saved");
            false
        }
    }
}

/// A batch saved, with what saving it took.
struct Done {
    batch: Batch,
    saved: Saved,
    saving: Duration,
    committed: DateTime<Utc>,
}

/// Saves the batch. Offsets move only once it is saved; at shutdown an unsaved batch is left
/// to the next start, which reads it again from Kafka.
async fn save_until_done(
    pool: Pool,
    batch: Batch,
    group: String,
    thresholds: Thresholds,
    shutdown: CancellationToken,
) -> Result<Done> {
    let started = std::time::Instant::now();
    let saved = {
        // Borrowed by each attempt; the batch itself goes back with the result.
        let (batch, group, thresholds) = (&batch, group.as_str(), &thresholds);
        retrying("saving the batch", &shutdown, || {
            on_client(&pool, |mut c| async move {
                batch.save(&mut c, group, thresholds).await
            })
        })
        .await
    }
    .context("shutting down with a batch the database did not take; it will be read again")?;
    Ok(Done {
        batch,
        saved,
        saving: started.elapsed(),
        committed: Utc::now(),
    })
}

/// Reports a saved batch, then commits its offsets to Kafka.
fn finish(source: &KafkaSource, totals: &mut Totals, done: Done) {
    monitoring::BATCH_SECONDS.observe(done.saving.as_secs_f64());
    for at in done.batch.event_times() {
        let seconds = (done.committed - *at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        monitoring::END_TO_END_SECONDS.observe(seconds.max(0.0));
    }
    monitoring::saved(&done.saved);
    totals.committed(done.batch.len(), &done.saved, done.saving);
    source.commit(done.batch.next_offsets());
}
