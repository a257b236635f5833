//! Delivery: to Kafka with an idempotent, acks=all, lz4-compressed producer keyed by user_id
//! (catalogue records by their id), or, with --dry-run, as JSON lines on stdout. Sending never
//! blocks: librdkafka queues the record and reports its fate to a delivery callback that counts
//! it, so the summary counts exactly what the broker acknowledged, what it refused and what
//! never got an answer.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use globalmart_core::config::KafkaArgs;
use globalmart_core::event::Event;
use globalmart_core::kafka::{self, Refusals};
use globalmart_core::topics::Topic;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::monitoring;

/// What happened to the records sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records handed to the output.
    pub sent: u64,
    /// Acknowledged by the broker (or written, with --dry-run).
    pub delivered: u64,
    /// Refused by the broker or timed out in the producer.
    pub failed: u64,
}

impl Delivery {
    /// Sent but with no answer yet (at the end of a run: lost).
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.failed)
    }
}

/// How often the end of a run checks whether everything in flight got its answer.
const FLUSH_CHECK: Duration = Duration::from_millis(1);

/// One record in this many has its delivery latency measured.
const LATENCY_SAMPLE: u64 = 64;

/// librdkafka's callbacks: delivery reports are counted, errors (broker down, connection
/// refused) are logged as what they mean to a user.
#[derive(Debug)]
pub struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    failures_logged: AtomicU32,
    /// The clock the sampled enqueue times (the delivery opaque, in µs) are read on.
    started: std::time::Instant,
    prefix: String,
    refusals: Refusals,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.refusals.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !self.refusals.observe(&error, reason) {
            warn!(%error, "Kafka: {reason}; retrying with backoff, messages wait in the producer queue");
        }
    }
}

impl ProducerContext for Deliveries {
    /// Microseconds since `started` when the record was sent, for one record in
    /// [`LATENCY_SAMPLE`]; 0 for the others.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, enqueued_micros: usize) {
        match result {
            Ok(_) => {
                self.refusals.answered();
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if enqueued_micros > 0 {
                    let now = self.started.elapsed().as_micros() as usize;
                    let seconds = now.saturating_sub(enqueued_micros) as f64 / 1e6;
                    monitoring::DELIVERY_LATENCY.observe(seconds);
                }
            }
            Err((error, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let name = message
                    .topic()
                    .strip_prefix(&self.prefix)
                    .unwrap_or(message.topic());
                let topic = Topic::from_name(name).map_or("unknown", Topic::name);
                monitoring::DELIVERY_ERRORS
                    .with_label_values(&[topic])
                    .inc();
                if self.failures_logged.fetch_add(1, Ordering::Relaxed) < 10 {
                    warn!(topic, %error, "a message was not delivered");
                }
            }
        }
    }
}

/// Where records go: the broker, or stdout with --dry-run.
#[derive(Debug)]
pub enum Output {
    Kafka(KafkaOutput),
    DryRun(DryRun),
}

/// The Kafka side of [`Output`].
pub struct KafkaOutput {
    producer: ThreadedProducer<Deliveries>,
    names: Vec<(Topic, String)>,
    /// The record being sent, serialised (one buffer for all: librdkafka copies it).
    payload: Vec<u8>,
    sent: u64,
}

impl std::fmt::Debug for KafkaOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOutput")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The --dry-run side of [`Output`].
#[derive(Debug)]
pub struct DryRun {
    out: std::io::BufWriter<std::io::Stdout>,
    prefix: String,
    /// The record being written, serialised (one buffer for all).
    payload: Vec<u8>,
    sent: u64,
}

impl Output {
    /// The output `config` asks for: stdout with --dry-run, the broker otherwise (reporting
    /// refused connections to `refusals`).
    pub fn for_config(config: &crate::config::Config, refusals: Refusals) -> Result<Output> {
        if config.dry_run {
            Ok(Output::dry_run(&config.kafka.topic_prefix))
        } else {
            Output::kafka(
                &config.kafka,
                config.delivery_timeout,
                config.queue_records,
                refusals,
            )
        }
    }

    /// A producer for `kafka` (connections open lazily; nothing is sent yet). A record is
    /// retried for `delivery_timeout` before it counts as failed; at most `queue_records` wait
    /// for the broker, then sending waits for room.
    pub fn kafka(
        kafka: &KafkaArgs,
        delivery_timeout: Duration,
        queue_records: u32,
        refusals: Refusals,
    ) -> Result<Output> {
        let deliveries = Deliveries {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failures_logged: AtomicU32::new(0),
            started: std::time::Instant::now(),
            prefix: kafka.topic_prefix.clone(),
            refusals,
        };
        let producer: ThreadedProducer<Deliveries> =
            kafka::client_config(kafka, "globalmart-generator")?
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("compression.type", "lz4")
                .set("linger.ms", "5")
                .set("batch.num.messages", "10000")
                .set("queue.buffering.max.messages", queue_records.to_string())
                .set(
                    "message.timeout.ms",
                    delivery_timeout.as_millis().to_string(),
                )
                .create_with_context(deliveries)
                .context("creating the Kafka producer (KAFKA_BOOTSTRAP_SERVERS)")?;
        let names = Topic::ALL
            .into_iter()
            .map(|t| (t, kafka.topic_name(t)))
            .collect();
        Ok(Output::Kafka(KafkaOutput {
            producer,
            names,
            payload: Vec::with_capacity(1024),
            sent: 0,
        }))
    }

    /// JSON lines on stdout, topic names with `prefix`.
    pub fn dry_run(prefix: &str) -> Output {
        Output::DryRun(DryRun {
            out: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
            prefix: prefix.to_owned(),
            payload: Vec::with_capacity(1024),
            sent: 0,
        })
    }

    /// Hands one record over. Waits (never drops) while the producer queue is full.
    pub async fn send(&mut self, event: &Event) -> Result<()> {
        match self {
            Output::Kafka(out) => out.send(event).await,
            Output::DryRun(dry) => {
                let out = &mut dry.out;
                out.write_all(b"{\"topic\":")?;
                serde_json::to_writer(
                    &mut *out,
                    &format!("{}{}", dry.prefix, event.topic().name()),
                )?;
                out.write_all(b",\"key\":")?;
                serde_json::to_writer(&mut *out, event.key())?;
                out.write_all(b",\"value\":")?;
                dry.payload.clear();
                event.write_json(&mut dry.payload);
                out.write_all(&dry.payload)?;
                out.write_all(b"}\n")?;
                dry.sent += 1;
                Ok(())
            }
        }
    }

    /// Where delivery stands now.
    pub fn progress(&self) -> Delivery {
        match self {
            Output::Kafka(out) => out.delivery(),
            Output::DryRun(dry) => Delivery {
                sent: dry.sent,
                delivered: dry.sent,
                failed: 0,
            },
        }
    }

    /// Waits until everything sent got its answer (up to `max_wait`) and returns the count.
    pub async fn settle(&self, max_wait: Duration) -> Delivery {
        match self {
            Output::Kafka(out) => out.settle(max_wait).await,
            Output::DryRun(_) => self.progress(),
        }
    }

    /// Flushes everything in flight (Kafka: up to `max_wait`) and returns the final count.
    pub async fn finish(self, max_wait: Duration) -> Result<Delivery> {
        match self {
            Output::Kafka(out) => {
                info!(
                    in_flight = out.delivery().in_flight(),
                    "flushing the producer"
                );
                let delivery = out.settle(max_wait).await;
                if delivery.in_flight() > 0 {
                    warn!(
                        in_flight = delivery.in_flight(),
                        "the producer could not flush everything within {max_wait:?}"
                    );
                }
                // Dropping the producer waits out its polling thread's current 100 ms slice.
                // Nothing is in flight any more (or it counts as lost), so that wait happens off
                // the way out; if no thread can be started, the closure drops it here.
                let _ = std::thread::Builder::new()
                    .name("producer teardown".into())
                    .spawn(move || drop(out));
                Ok(delivery)
            }
            Output::DryRun(mut dry) => {
                dry.out.flush()?;
                Ok(Delivery {
                    sent: dry.sent,
                    delivered: dry.sent,
                    failed: 0,
                })
            }
        }
    }
}

impl KafkaOutput {
    async fn settle(&self, max_wait: Duration) -> Delivery {
        // Waits on the delivery counts rather than `Producer::flush`, which, beside the
        // polling thread, wakes up in 100 ms steps. librdkafka sends what lingers within
        // linger.ms anyway.
        // A refused connection will deliver nothing more.
        let deadline = Instant::now() + max_wait;
        let refusals = &self.producer.context().refusals;
        while self.delivery().in_flight() > 0 && Instant::now() < deadline && !refusals.refused() {
            tokio::time::sleep(FLUSH_CHECK).await;
        }
        self.delivery()
    }

    fn delivery(&self) -> Delivery {
        let counts = self.producer.context();
        Delivery {
            sent: self.sent,
            delivered: counts.delivered.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
        }
    }

    async fn send(&mut self, event: &Event) -> Result<()> {
        self.payload.clear();
        event.write_json(&mut self.payload);
        let topic = event.topic();
        let name = self
            .names
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, name)| name.as_str())
            .unwrap_or(topic.name());
        // The latency histogram needs a sample, not a clock read per record.
        let enqueued = if self.sent.is_multiple_of(LATENCY_SAMPLE) {
            (self.producer.context().started.elapsed().as_micros() as usize).max(1)
        } else {
            0
        };
        let mut record = BaseRecord::with_opaque_to(name, enqueued)
            .key(event.key())
            .payload(&self.payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // The broker is slower than we generate (or down): wait for room, unless
                    // it refused us (main exits with that).
                    if self.producer.context().refusals.refused() {
                        anyhow::bail!("the brokers refused the connection");
                    }
                    monitoring::QUEUE_FULL.inc();
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e).context(format!("producing to {name}")),
            }
        }
    }
}
