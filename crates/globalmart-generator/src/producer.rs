//! Delivery: to Kafka with an idempotent, acks=all, lz4-compressed FutureProducer keyed by
//! user_id (catalogue records by their id), or, with --dry-run, as JSON lines on stdout. A
//! collector task awaits every delivery report, so the summary counts exactly what the broker
//! acknowledged, what it refused and what never got an answer.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use globalmart_core::config::KafkaArgs;
use globalmart_core::event::Event;
use globalmart_core::topics::Topic;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::report;

/// What happened to the records sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records handed to the sink.
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

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// One record in this many has its delivery latency measured.
const LATENCY_SAMPLE: u64 = 64;

/// Where records go.
#[derive(Debug)]
pub enum Sink {
    Kafka(KafkaSink),
    DryRun(DryRun),
}

/// Logs librdkafka's errors (broker down, connection refused) as what they mean to a user.
#[derive(Debug, Clone, Copy)]
pub struct ProducerLog;

impl ClientContext for ProducerLog {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(%error, "Kafka: {reason}; retrying with backoff, messages wait in the producer queue");
    }
}

/// The Kafka side of [`Sink`].
pub struct KafkaSink {
    producer: FutureProducer<ProducerLog>,
    names: Vec<(Topic, String)>,
    pending: mpsc::Sender<(Topic, Option<Instant>, DeliveryFuture)>,
    collector: JoinHandle<()>,
    counters: Arc<Counters>,
    sent: u64,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The --dry-run side of [`Sink`].
#[derive(Debug)]
pub struct DryRun {
    out: std::io::BufWriter<std::io::Stdout>,
    prefix: String,
    sent: u64,
}

impl Sink {
    /// A producer for `kafka` (connections open lazily; nothing is sent yet). A record is
    /// retried for `delivery_timeout` before it counts as failed.
    pub fn kafka(kafka: &KafkaArgs, delivery_timeout: Duration) -> Result<Sink> {
        let producer: FutureProducer<ProducerLog> = ClientConfig::new()
            .set("bootstrap.servers", &kafka.bootstrap_servers)
            .set("client.id", "globalmart-generator")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set(
                "message.timeout.ms",
                delivery_timeout.as_millis().to_string(),
            )
            .create_with_context(ProducerLog)
            .context("creating the Kafka producer (KAFKA_BOOTSTRAP_SERVERS)")?;
        let names = Topic::ALL
            .into_iter()
            .map(|t| (t, kafka.topic_name(t)))
            .collect();
        let counters = Arc::new(Counters::default());
        let (pending, deliveries) = mpsc::channel(100_000);
        let collector = tokio::spawn(collect(deliveries, Arc::clone(&counters)));
        Ok(Sink::Kafka(KafkaSink {
            producer,
            names,
            pending,
            collector,
            counters,
            sent: 0,
        }))
    }

    /// JSON lines on stdout, topic names with `prefix`.
    pub fn dry_run(prefix: &str) -> Sink {
        Sink::DryRun(DryRun {
            out: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
            prefix: prefix.to_owned(),
            sent: 0,
        })
    }

    /// Hands one record over. Waits (never drops) while the producer queue is full.
    pub async fn send(&mut self, event: &Event) -> Result<()> {
        let payload = event.to_json();
        match self {
            Sink::Kafka(sink) => sink.send(event, &payload).await,
            Sink::DryRun(dry) => {
                let out = &mut dry.out;
                out.write_all(b"{\"topic\":")?;
                serde_json::to_writer(
                    &mut *out,
                    &format!("{}{}", dry.prefix, event.topic().name()),
                )?;
                out.write_all(b",\"key\":")?;
                serde_json::to_writer(&mut *out, event.key())?;
                out.write_all(b",\"value\":")?;
                out.write_all(&payload)?;
                out.write_all(b"}\n")?;
                dry.sent += 1;
                Ok(())
            }
        }
    }

    /// Where delivery stands now.
    pub fn progress(&self) -> Delivery {
        match self {
            Sink::Kafka(sink) => Delivery {
                sent: sink.sent,
                delivered: sink.counters.delivered.load(Ordering::Relaxed),
                failed: sink.counters.failed.load(Ordering::Relaxed),
            },
            Sink::DryRun(dry) => Delivery {
                sent: dry.sent,
                delivered: dry.sent,
                failed: 0,
            },
        }
    }

    /// Flushes everything in flight (Kafka: up to `max_wait`) and returns the final count.
    pub async fn finish(self, max_wait: Duration) -> Result<Delivery> {
        match self {
            Sink::Kafka(sink) => {
                info!(in_flight = sink.sent, "flushing the producer");
                let KafkaSink {
                    producer,
                    pending,
                    collector,
                    counters,
                    sent,
                    ..
                } = sink;
                drop(pending);
                let flushed = tokio::task::spawn_blocking(move || producer.flush(max_wait)).await?;
                if let Err(e) = flushed {
                    warn!(error = %e, "the producer could not flush everything within {max_wait:?}");
                }
                // After a flush every report is in; if the flush gave up, stop waiting for
                // the rest and count them as undelivered.
                if tokio::time::timeout(Duration::from_secs(5), collector)
                    .await
                    .is_err()
                {
                    warn!("delivery reports still missing after the flush");
                }
                Ok(Delivery {
                    sent,
                    delivered: counters.delivered.load(Ordering::Relaxed),
                    failed: counters.failed.load(Ordering::Relaxed),
                })
            }
            Sink::DryRun(mut dry) => {
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

impl KafkaSink {
    async fn send(&mut self, event: &Event, payload: &[u8]) -> Result<()> {
        let topic = event.topic();
        let name = self
            .names
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, name)| name.as_str())
            .unwrap_or(topic.name());
        let mut record = FutureRecord::to(name).key(event.key()).payload(payload);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.sent += 1;
                    // The latency histogram needs a sample, not a clock read per record.
                    let timed = self.sent.is_multiple_of(LATENCY_SAMPLE).then(Instant::now);
                    self.pending
                        .send((topic, timed, delivery))
                        .await
                        .context("the delivery collector stopped")?;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // The broker is slower than we generate (or down): wait for room.
                    report::QUEUE_FULL.inc();
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e).context(format!("producing to {name}")),
            }
        }
    }
}

/// Awaits each delivery report in order and counts it.
async fn collect(
    mut deliveries: mpsc::Receiver<(Topic, Option<Instant>, DeliveryFuture)>,
    counters: Arc<Counters>,
) {
    let mut failures_logged = 0u32;
    while let Some((topic, enqueued, delivery)) = deliveries.recv().await {
        let outcome = match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e.to_string()),
            Err(_) => Err("the producer was dropped before answering".to_owned()),
        };
        match outcome {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(enqueued) = enqueued {
                    report::DELIVERY_LATENCY.observe(enqueued.elapsed().as_secs_f64());
                }
            }
            Err(reason) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                report::DELIVERY_ERRORS
                    .with_label_values(&[topic.name()])
                    .inc();
                if failures_logged < 10 {
                    failures_logged += 1;
                    warn!(topic = topic.name(), %reason, "a message was not delivered");
                }
            }
        }
    }
}
