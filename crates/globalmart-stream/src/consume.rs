//! The consumer loop: read the event and catalogue topics in a consumer group, cut batches
//! (by size or time), save each with [`Batch::save`], then commit the same offsets to Kafka so
//! standard tools show the lag. The database is the source of truth for offsets: on assignment
//! a partition resumes at its stored `stream_offsets`, and messages below it (already saved)
//! are skipped. A failed save is retried with backoff and nothing is committed meanwhile; a
//! malformed message becomes a dead letter and never stops the loop.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use globalmart_core::config::KafkaArgs;
use globalmart_core::db::{self, Db};
use globalmart_core::event::Event;
use globalmart_core::topics::Topic;
use globalmart_core::{metrics, shutdown};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::alerts::Publisher;
use crate::config::Config;
use crate::report;
use crate::sink::{self, Batch, Received, Saved};
use crate::sweep;
use crate::tally::Thresholds;

/// The topics the stream saves (alerts-topic is written, not read).
const SAVED_TOPICS: [Topic; 5] = [
    Topic::Transactions,
    Topic::ProductViews,
    Topic::CartEvents,
    Topic::Products,
    Topic::Users,
];

/// Tells the loop which partitions it was just given.
#[derive(Debug)]
pub struct Assignments {
    assigned: mpsc::Sender<Vec<(String, i32)>>,
}

impl ClientContext for Assignments {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(%error, "Kafka: {reason}; reconnecting with backoff");
    }
}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let assigned = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            // The loop only goes away at shutdown, when assignments no longer matter.
            let _ = self.assigned.send(assigned);
        }
    }
}

/// Runs until shutdown (or, with --exit-when-idle, until caught up and idle).
pub async fn run(config: Config) -> Result<()> {
    let shutdown = shutdown::on_signal()?;
    metrics::serve(config.metrics_addr, shutdown.clone()).await?;
    info!(?config, "configuration loaded");
    let settings = &config.realtime.settings;
    let pool = db::connect_and_migrate(
        settings,
        Db::Realtime,
        "globalmart-stream",
        4,
        Duration::from_secs(config.db_wait_seconds),
    )
    .await?;
    let (assigned, assignments) = mpsc::channel();
    let consumer = consumer(&config.kafka, &config.group, Assignments { assigned })?;
    info!(group = %config.group, "Starting stream processing jobs...");
    let publisher = Arc::new(Publisher::new(&config.kafka)?);
    tokio::spawn(housekeeping(
        pool.clone(),
        Arc::clone(&publisher),
        Housekeeping {
            sweep_every: config.sweep_interval,
            abandon_after: config.abandon_after,
            retention: config.metrics_retention,
        },
        shutdown.clone(),
    ));

    let mut resume_at: HashMap<(String, i32), i64> = HashMap::new();
    // Partitions assigned whose first message has not arrived yet.
    let mut unchecked: HashSet<(String, i32)> = HashSet::new();
    let mut idle_since = Instant::now();
    let mut last_lag = Instant::now();
    let batch_wait = Duration::from_millis(config.batch_wait_ms);
    let mut totals = report::Totals::default();
    let mut in_flight: Option<JoinHandle<Result<Done>>> = None;
    loop {
        let mut batch = Batch::default();
        // One timer per batch, not one per message.
        let deadline = tokio::time::sleep(batch_wait);
        tokio::pin!(deadline);
        while batch.len() < config.batch_size as usize {
            let received = tokio::select! {
                received = consumer.recv() => Some(received),
                () = &mut deadline => None,
                () = shutdown.cancelled() => None,
            };
            // New partitions resume where the database says, not where Kafka says. Checked
            // after every wait, message or not: with Kafka's offsets ahead of the database's,
            // no message may ever arrive until the seek below.
            for partitions in assignments.try_iter() {
                let stored = stored_offsets(&pool, &config.group, &shutdown).await?;
                info!(
                    partitions = partitions.len(),
                    "partitions assigned: resuming each at its offset stored in the database"
                );
                let mut seeks = TopicPartitionList::new();
                for key in partitions {
                    let at = stored.get(&key).copied().unwrap_or(0);
                    seeks.add_partition_offset(&key.0, key.1, Offset::Offset(at))?;
                    resume_at.insert(key.clone(), at);
                    unchecked.insert(key);
                }
                let sought = tokio::task::block_in_place(|| {
                    consumer.seek_partitions(seeks, Duration::from_secs(5))
                });
                let failed = match sought {
                    Ok(list) => list.elements().iter().find_map(|e| e.error().err()),
                    Err(e) => Some(e),
                };
                if let Some(e) = failed {
                    warn!(error = %e, "could not seek to the stored offsets yet; will on the first message");
                }
            }
            let Some(received) = received else { break };
            match received {
                Ok(message) => {
                    totals.received();
                    report::CONSUMED.with_label_values(&[message.topic()]).inc();
                    let key = (message.topic().to_owned(), message.partition());
                    let floor = resume_at.get(&key).copied().unwrap_or(0);
                    // The first message after an assignment shows where Kafka put us. Below
                    // the stored offset: saved already, jump ahead. Beyond it: go back, the
                    // gap was never saved (the keys absorb anything read twice).
                    if unchecked.remove(&key) && message.offset() != floor {
                        if let Err(e) = consumer.seek(
                            &key.0,
                            key.1,
                            Offset::Offset(floor),
                            Duration::from_secs(5),
                        ) {
                            warn!(topic = %key.0, partition = key.1, error = %e, "could not seek to the stored offset");
                        }
                        if message.offset() > floor {
                            continue;
                        }
                    }
                    if message.offset() < floor {
                        continue;
                    }
                    let (received, parsed) = parse(&message, &config.kafka);
                    batch.add(received, parsed);
                }
                Err(e) => {
                    warn!(error = %e, "Kafka consumer error; librdkafka reconnects by itself")
                }
            }
        }
        if !batch.is_empty() {
            // One batch saves while the next one is read and parsed; batches still commit in
            // order, as each waits for the one before.
            if let Some(previous) = in_flight.take() {
                finish(&consumer, &mut totals, previous.await??);
            }
            in_flight = Some(tokio::spawn(save_until_done(
                pool.clone(),
                batch,
                config.group.clone(),
                config.thresholds(),
                shutdown.clone(),
            )));
            idle_since = Instant::now();
        } else if in_flight
            .as_ref()
            .is_some_and(|saving| saving.is_finished())
        {
            if let Some(previous) = in_flight.take() {
                finish(&consumer, &mut totals, previous.await??);
            }
        }
        if last_lag.elapsed() >= LAG_EVERY {
            if let Err(e) = tokio::task::block_in_place(|| measure_lag(&consumer, &resume_at)) {
                warn!(error = %e, "could not measure the consumer lag");
            }
            last_lag = Instant::now();
        }
        if shutdown.is_cancelled() {
            if let Some(previous) = in_flight.take() {
                finish(&consumer, &mut totals, previous.await??);
            }
            info!("stream processing stopped");
            totals.log();
            return Ok(());
        }
        if let Some(idle) = config.exit_when_idle {
            if idle_since.elapsed() >= Duration::from_secs(idle) && in_flight.is_none() {
                // Idle is not enough: partitions still held by a crashed member (until its
                // session times out) may have messages nobody saved yet.
                // The database or the broker being away means not caught up: wait for them.
                let done = async {
                    let client = pool.get().await?;
                    let stored = sink::stored_offsets(&client, &config.group).await?;
                    tokio::task::block_in_place(|| caught_up(&consumer, &stored))
                };
                match done.await {
                    Ok(true) => {
                        // A one-shot load ends with the carts it left abandoned recorded
                        // and its alerts published.
                        sweep_once(&pool, config.abandon_after).await;
                        publish_once(&pool, &publisher).await;
                        info!("caught up and idle for {idle} s: exiting");
                        totals.log();
                        return Ok(());
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "could not check whether everything is saved")
                    }
                }
                idle_since = Instant::now();
            }
        }
    }
}

/// How often the consumer lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// Sets the lag gauge of each assigned partition: its end minus where this instance is.
fn measure_lag(
    consumer: &StreamConsumer<Assignments>,
    resume_at: &HashMap<(String, i32), i64>,
) -> Result<()> {
    let positions = consumer.position()?;
    for element in consumer.assignment()?.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
        let position = match positions
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(at)) => at,
            _ => resume_at
                .get(&(topic.to_owned(), partition))
                .copied()
                .unwrap_or(0),
        };
        report::LAG
            .with_label_values(&[topic, &partition.to_string()])
            .set((high - position).max(0));
    }
    Ok(())
}

/// Whether every partition of the subscribed topics has its stored offset at its end.
fn caught_up(
    consumer: &StreamConsumer<Assignments>,
    stored: &HashMap<(String, i32), i64>,
) -> Result<bool> {
    let timeout = Duration::from_secs(10);
    for topic in consumer.subscription()?.elements() {
        let metadata = consumer.fetch_metadata(Some(topic.topic()), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic.topic(), partition.id(), timeout)?;
            let key = (topic.topic().to_owned(), partition.id());
            let at = stored.get(&key).copied().unwrap_or(0);
            if at.max(low) < high {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn consumer(
    kafka: &KafkaArgs,
    group: &str,
    context: Assignments,
) -> Result<StreamConsumer<Assignments>> {
    let consumer: StreamConsumer<Assignments> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", group)
        .set("client.id", "globalmart-stream")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A crashed instance's partitions move to the others after 10 s, not the default 45.
        .set("session.timeout.ms", "10000")
        .create_with_context(context)
        .context("creating the Kafka consumer (KAFKA_BOOTSTRAP_SERVERS)")?;
    let topics: Vec<String> = SAVED_TOPICS.iter().map(|t| kafka.topic_name(*t)).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .context("subscribing to the topics")?;
    Ok(consumer)
}

/// The message as kept, and the event it holds or why it holds none.
fn parse(
    message: &BorrowedMessage<'_>,
    kafka: &KafkaArgs,
) -> (Received, Result<Event, globalmart_core::event::Rejection>) {
    let name = message
        .topic()
        .strip_prefix(kafka.topic_prefix.as_str())
        .unwrap_or(message.topic());
    let parsed = match Topic::from_name(name) {
        Some(topic) => Event::parse(topic, message.payload().unwrap_or_default(), Utc::now()),
        None => Err(globalmart_core::event::Rejection::UnknownTopic(
            name.to_owned(),
        )),
    };
    // Only a dead letter keeps the raw key and payload: copying them for every valid event
    // would be wasted work on the hot path.
    let keep = parsed.is_err();
    let received = Received {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().filter(|_| keep).map(<[u8]>::to_vec),
        payload: message.payload().filter(|_| keep).map(<[u8]>::to_vec),
    };
    (received, parsed)
}

/// The periodic work beside the batches.
#[derive(Debug, Clone, Copy)]
struct Housekeeping {
    sweep_every: Duration,
    abandon_after: Duration,
    retention: Duration,
}

/// Until shutdown: the abandoned-cart sweep every `sweep_every`, alerts published every second,
/// and old metric windows pruned every hour.
async fn housekeeping(
    pool: Pool,
    publisher: Arc<Publisher>,
    every: Housekeeping,
    shutdown: CancellationToken,
) {
    let mut sweeps = tokio::time::interval(every.sweep_every);
    let mut publishes = tokio::time::interval(Duration::from_secs(1));
    let mut prunes = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = sweeps.tick() => sweep_once(&pool, every.abandon_after).await,
            _ = publishes.tick() => publish_once(&pool, &publisher).await,
            _ = prunes.tick() => prune_once(&pool, every.retention).await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// Deletes old metric windows; a failure is logged and the next round tries again.
async fn prune_once(pool: &Pool, retention: Duration) {
    let pruned = on_client(pool, |c| async move { sweep::prune(&c, retention).await });
    match pruned.await {
        Ok(0) => {}
        Ok(n) => info!("pruned {n} metric rows older than {retention:?}"),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "pruning old metric windows failed; trying again in an hour")
        }
    }
}

/// Publishes the alerts waiting; a failure is logged and the next round tries again.
async fn publish_once(pool: &Pool, publisher: &Publisher) {
    match publisher.publish(pool).await {
        Ok(0) => {}
        Ok(n) => {
            report::ALERTS_PUBLISHED.inc_by(n);
            info!("[AlertPublisher] {n} alerts published to alerts-topic");
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "publishing alerts failed; trying again in a second")
        }
    }
}

/// One sweep; a failure is logged and the next sweep tries again.
async fn sweep_once(pool: &Pool, timeout: Duration) {
    let swept = on_client(pool, |c| async move {
        sweep::abandoned_carts(&c, timeout).await
    });
    match swept.await {
        Ok(0) => {}
        Ok(n) => {
            report::ABANDONED_CARTS.inc_by(n);
            info!("[CartAbandonment] {n} abandoned carts recorded");
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "the abandoned-cart sweep failed; trying again at the next one")
        }
    }
}

/// Runs `job` on a pooled connection, describing a database error the way people can act on.
async fn on_client<T, F, Fut>(pool: &Pool, job: F) -> Result<T>
where
    F: FnOnce(deadpool_postgres::Object) -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let client = pool.get().await.context("getting a database connection")?;
    job(client)
        .await
        .map_err(|e| anyhow::anyhow!(db::describe(&e)))
}

/// Runs `attempt` until it succeeds, logging each failure and waiting with backoff (0.1 s,
/// doubling up to 10 s) while the database is unreachable; at shutdown the error is returned.
async fn retrying<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) if shutdown.is_cancelled() => return Err(e),
            Err(e) => {
                warn!(error = %format!("{e:#}"), retry_in = ?pause, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The stored offsets of `group`: new partitions cannot be read before the database says
/// where they resume.
async fn stored_offsets(
    pool: &Pool,
    group: &str,
    shutdown: &CancellationToken,
) -> Result<HashMap<(String, i32), i64>> {
    retrying("reading the stored offsets", shutdown, || {
        on_client(
            pool,
            |c| async move { sink::stored_offsets(&c, group).await },
        )
    })
    .await
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

/// Reports a saved batch, then commits the same offsets to Kafka: after the database, and
/// exactly the saved offsets (not the consumer's position, which is further on); Kafka's
/// offsets are for lag tools only.
fn finish(consumer: &StreamConsumer<Assignments>, totals: &mut report::Totals, done: Done) {
    report::BATCH_SECONDS.observe(done.saving.as_secs_f64());
    for at in done.batch.event_times() {
        let seconds = (done.committed - *at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        report::END_TO_END_SECONDS.observe(seconds.max(0.0));
    }
    report::saved(&done.saved);
    totals.committed(done.batch.len(), &done.saved, done.saving);
    let mut saved_offsets = TopicPartitionList::new();
    for ((topic, partition), next) in done.batch.next_offsets() {
        if let Err(e) = saved_offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))
        {
            warn!(error = %e, "could not list an offset to commit to Kafka (the database has it)");
        }
    }
    if let Err(e) = consumer.commit(&saved_offsets, CommitMode::Async) {
        warn!(error = %e, "could not commit offsets to Kafka (the database has them)");
    }
}
