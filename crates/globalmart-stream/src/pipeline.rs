//! The stream's loop, one per lane (its consumer and its topics, `source::LANES`), the lanes
//! side by side: cut batches from the Kafka source (by size or time), save each in one
//! transaction, then commit the same offsets to Kafka. One cut saves while the next one is
//! read and parsed (a lane behind its partitions cuts two batches of different partitions,
//! saved side by side); a lane's cuts still commit in order, as each waits for the one before.
//! A failed save is retried with backoff and nothing is committed meanwhile; a malformed
//! message becomes a dead letter and never stops the loop. Housekeeping runs beside them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use globalmart_core::event::{Event, Rejection};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::batcher::{Batch, Received};
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
    // Housekeeping stops on a token of its own, a child of the shutdown's: a one-shot load
    // stops it and waits for its round in flight before the final sweep below, which would
    // otherwise judge the same sessions beside a sweep of the loop's.
    let housekeeping_stop = shutdown.child_token();
    let housekeeping = {
        let (pool, publisher) = (pool.clone(), Arc::clone(&publisher));
        let (schedule, stop) = (settings.housekeeping, housekeeping_stop.clone());
        tokio::spawn(async move { housekeeping::run(pool, &publisher, schedule, stop).await })
    };
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
        housekeeping_stop.cancel();
        if let Err(e) = housekeeping.await {
            warn!(error = %e, "housekeeping ended abnormally before the final sweep");
        }
        housekeeping::sweep_once(&pool, settings.housekeeping.abandon_after).await;
        housekeeping::publish_once(&pool, &publisher).await;
    }
    totals.log();
    Ok(())
}

/// One lane: cuts batches from its source, saves each cut (one in flight while the next is cut;
/// in halves side by side when the lane is behind) and commits its offsets; returns what it
/// saved.
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
    // Whether the last cut was full: the lane is behind, so the next is cut in halves.
    let mut behind = false;
    loop {
        let halves = if behind { BEHIND_HALVES } else { 1 };
        let batches = cut(&mut source, pool, settings, shutdown, &mut totals, halves).await?;
        let messages: usize = batches.iter().map(Batch::len).sum();
        if behind != (messages >= settings.batch_size) {
            behind = !behind;
            if behind {
                debug!(
                    lane = name,
                    "behind (a full cut): saving the next cuts in halves"
                );
            } else {
                debug!(
                    lane = name,
                    "keeping up (a cut not full): saving whole cuts"
                );
            }
        }
        if messages > 0 {
            if let Some(previous) = in_flight.take() {
                finish(&source, &mut totals, previous.await??);
            }
            in_flight = Some(tokio::spawn(save_until_done(
                pool.clone(),
                batches,
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

/// Reads messages into `halves` batches until they hold the batch size, the batch wait has
/// passed or shutdown; returns those that hold any. Each partition's messages go to one of them
/// ([`Halves`]), so each can be saved in its own transaction with its own partitions' offsets.
async fn cut(
    source: &mut KafkaSource,
    pool: &Pool,
    settings: &Settings,
    shutdown: &CancellationToken,
    totals: &mut Totals,
    halves: usize,
) -> Result<Vec<Batch>> {
    let mut split = Halves::new(halves);
    // One timer per batch, not one per message.
    let deadline = tokio::time::sleep(settings.batch_wait);
    tokio::pin!(deadline);
    while split.messages() < settings.batch_size {
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
        split.add(received, parsed);
    }
    Ok(split.into_batches())
}

/// A lane behind its partitions (its last cut was full: a backlog, a catalogue's publication)
/// cuts its batch in this many halves, saved side by side on their own connections: one save
/// at a time keeps one PostgreSQL backend busy and leaves a core idle when the other lane has
/// nothing to do (docs/ARCHITECTURE.md, "The stream's lanes"). A lane keeping up cuts one batch,
/// one transaction, as its latency wants.
const BEHIND_HALVES: usize = 2;

/// The batches of one cut, each partition's messages in one of them: a partition first seen
/// in the cut goes to the batch holding the fewest messages, so the halves are about even.
struct Halves {
    batches: Vec<Batch>,
    /// (topic, partition, batch) of the partitions seen so far: a handful, so a list.
    placed: Vec<(String, i32, usize)>,
}

impl Halves {
    fn new(halves: usize) -> Halves {
        Halves {
            batches: (0..halves.max(1)).map(|_| Batch::default()).collect(),
            placed: Vec::new(),
        }
    }

    fn add(&mut self, received: Received, parsed: Result<Event, Rejection>) {
        let half = self.half_of(&received.topic, received.partition);
        self.batches[half].add(received, parsed);
    }

    /// The batch of the partition's messages.
    fn half_of(&mut self, topic: &str, partition: i32) -> usize {
        if self.batches.len() == 1 {
            return 0;
        }
        if let Some((_, _, half)) =
            (self.placed.iter()).find(|(t, p, _)| *p == partition && t == topic)
        {
            return *half;
        }
        let fewest = (0..self.batches.len())
            .min_by_key(|&half| self.batches[half].len())
            .unwrap_or(0);
        self.placed.push((topic.to_owned(), partition, fewest));
        fewest
    }

    fn messages(&self) -> usize {
        self.batches.iter().map(Batch::len).sum()
    }

    /// The batches that hold a message.
    fn into_batches(self) -> Vec<Batch> {
        (self.batches.into_iter())
            .filter(|b| !b.is_empty())
            .collect()
    }
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

/// The batches of a cut saved, with what saving them took.
struct Done {
    batches: Vec<Batch>,
    saved: Saved,
    saving: Duration,
    committed: DateTime<Utc>,
}

/// Saves the batches of a cut side by side, each in its own transaction with its own
/// partitions' offsets, each retried on its own. Offsets move only once a batch is saved; at
/// shutdown an unsaved batch is left to the next start, which reads it again from Kafka (a
/// batch saved beside it keeps its partitions' offsets in the database, where the next start
/// resumes them).
async fn save_until_done(
    pool: Pool,
    batches: Vec<Batch>,
    group: String,
    thresholds: Thresholds,
    shutdown: CancellationToken,
) -> Result<Done> {
    let started = std::time::Instant::now();
    let saves = batches.iter().map(|batch| {
        // Borrowed by each attempt; the batches themselves go back with the result.
        let (pool, group, thresholds) = (&pool, group.as_str(), &thresholds);
        retrying("saving the batch", &shutdown, move || {
            on_client(pool, move |mut c| async move {
                batch.save(&mut c, group, thresholds).await
            })
        })
    });
    let mut saved = Saved::default();
    for each in futures::future::try_join_all(saves)
        .await
        .context("shutting down with a batch the database did not take; it will be read again")?
    {
        saved += each;
    }
    Ok(Done {
        batches,
        saved,
        saving: started.elapsed(),
        committed: Utc::now(),
    })
}

/// Reports the saved batches, then commits their offsets to Kafka.
fn finish(source: &KafkaSource, totals: &mut Totals, done: Done) {
    monitoring::BATCH_SECONDS.observe(done.saving.as_secs_f64());
    for at in done.batches.iter().flat_map(Batch::event_times) {
        let seconds = (done.committed - *at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        monitoring::END_TO_END_SECONDS.observe(seconds.max(0.0));
    }
    monitoring::saved(&done.saved);
    let messages = done.batches.iter().map(Batch::len).sum();
    totals.committed(messages, &done.saved, done.saving);
    source.commit(done.batches.iter().flat_map(Batch::next_offsets));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A malformed message of `topic`'s `partition` at `offset`: a dead letter, one message.
    fn message(topic: &str, partition: i32, offset: i64) -> (Received, Result<Event, Rejection>) {
        let received = Received {
            topic: topic.to_owned(),
            partition,
            offset,
            key: None,
            payload: Some(b"{".to_vec()),
        };
        (received, Err(Rejection::NotUtf8))
    }

    /// The (topic, partition) pairs of each batch.
    fn partitions(batches: &[Batch]) -> Vec<Vec<(String, i32)>> {
        (batches.iter())
            .map(|b| b.next_offsets().map(|(key, _)| key.clone()).collect())
            .collect()
    }

    #[test]
    fn each_partition_stays_in_one_half_and_a_new_one_goes_to_the_lighter() {
        let mut split = Halves::new(2);
        for offset in 0..5 {
            let (received, parsed) = message("cart-events-topic", 0, offset);
            split.add(received, parsed);
        }
        for (partition, offset) in [(1, 0), (2, 0), (1, 1), (0, 5), (2, 1)] {
            let (received, parsed) = message("cart-events-topic", partition, offset);
            split.add(received, parsed);
        }
        assert_eq!(split.messages(), 10);
        let batches = split.into_batches();
        let topic = || "cart-events-topic".to_owned();
        assert_eq!(
            partitions(&batches),
            vec![vec![(topic(), 0)], vec![(topic(), 1), (topic(), 2)]]
        );
        assert_eq!(
            batches.iter().map(Batch::len).collect::<Vec<_>>(),
            vec![6, 4]
        );
    }

    #[test]
    fn a_lane_keeping_up_cuts_one_batch() {
        let mut split = Halves::new(1);
        for partition in 0..3 {
            let (received, parsed) = message("transactions-topic", partition, 7);
            split.add(received, parsed);
        }
        let batches = split.into_batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(partitions(&batches)[0].len(), 3);
    }

    #[test]
    fn an_empty_half_is_left_out() {
        let mut split = Halves::new(2);
        let (received, parsed) = message("users-topic", 2, 0);
        split.add(received, parsed);
        assert_eq!(split.into_batches().len(), 1);
    }
}
