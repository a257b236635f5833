//! The Kafka source: the consumer of the event and catalogue topics in the stream's consumer
//! group. The database is the source of truth for offsets: on assignment a partition resumes at
//! its stored `stream_offsets` and messages below it (saved already) are skipped. After a batch
//! is saved the same offsets are committed to Kafka, so standard tools show the lag.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use deadpool_postgres::Pool;
use globalmart_core::config::KafkaArgs;
use globalmart_core::event::{Event, Rejection};
use globalmart_core::kafka::{self, Refusals};
use globalmart_core::topics::Topic;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::batcher::Received;
use crate::monitoring;
use crate::retry::{on_client, retrying};
use crate::write::offsets::stored_offsets;

/// A lane of the stream: the topics one of its consumers reads, whose batches it saves beside
/// the other lane's (docs/ARCHITECTURE.md, "The stream's lanes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    pub name: &'static str,
    pub topics: &'static [Topic],
}

/// The stream's lanes, between them every topic it saves (alerts-topic is written, not read).
/// A product's stock comes from its catalogue versions and its sales, which take the catalogue
/// lock (`write::catalogue::hold`) against each other: they share a lane, so its saves never
/// wait for the other's. The views need neither: about 60 % of the events but the cheapest to
/// save (a COPY), they are the other lane, and the cart events go with the sales so that the
/// two lanes' work is about even (docs/ARCHITECTURE.md, "The stream's lanes").
pub const LANES: [Lane; 2] = [
    Lane {
        name: "sales",
        topics: &[
            Topic::Transactions,
            Topic::CartEvents,
            Topic::Products,
            Topic::Users,
        ],
    },
    Lane {
        name: "views",
        topics: &[Topic::ProductViews],
    },
];

/// How many times a seek refused right after an assignment is tried, 100 ms apart.
const SEEK_TRIES: u32 = 50;

/// A (topic, partition) by the topic's broker-side name.
type Partition = (String, i32);

/// What the source yields: a message to save (and the event it holds, or why it holds none).
pub type Consumed = (Received, Result<Event, Rejection>);

/// Tells the source which partitions it was just given.
#[derive(Debug)]
pub struct Assignments {
    assigned: mpsc::UnboundedSender<Vec<Partition>>,
    refusals: Refusals,
}

impl ClientContext for Assignments {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.refusals.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.refusals.error(error, reason);
    }
}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            // The group's coordinator answered: what the connection is closed for from now on
            // is not a refusal.
            self.refusals.answered();
            // Incremental: only the partitions added, and a rebalance may add none.
            if partitions.count() == 0 {
                return;
            }
            let assigned = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            // The source only goes away at shutdown, when assignments no longer matter.
            let _ = self.assigned.send(assigned);
        }
    }
}

/// The stream's consumer, and where each of its partitions resumes.
pub struct KafkaSource {
    consumer: StreamConsumer<Assignments>,
    /// Kept apart from the consumer, whose messages borrow it while these change.
    positions: Positions,
    /// The consumer's errors arrive with its messages, as codes: a refusal among them stops
    /// the stream.
    refusals: Refusals,
}

/// Where the source's partitions resume, and what it needs to tell.
#[derive(Debug)]
struct Positions {
    lane: Lane,
    assignments: mpsc::UnboundedReceiver<Vec<Partition>>,
    group: String,
    topic_prefix: String,
    /// Each partition's offset of the next message to take: the one stored in the database at
    /// its assignment, then one past the last message taken, so a message read again is
    /// skipped (the first of a lane, fetched from Kafka's committed offset before the seek to
    /// the database's, came again after it and was offered twice).
    next_at: HashMap<Partition, i64>,
    /// Partitions assigned whose first message has not arrived yet.
    unchecked: HashSet<Partition>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A consumer in `group` (as static member `instance`, if given) subscribed to the topics
    /// of `lane` (it connects lazily), reporting refused connections to `refusals`.
    pub fn subscribe(
        kafka: &KafkaArgs,
        group: &str,
        instance: Option<&str>,
        lane: Lane,
        refusals: Refusals,
    ) -> Result<KafkaSource> {
        let (assigned, assignments) = mpsc::unbounded_channel();
        let mut config = kafka::client_config(kafka, "globalmart-stream")?;
        if let Some(instance) = instance {
            // Static membership (crate::instance): closing does not leave the group, so a
            // restart under the same name takes the partitions back without a rebalance. One
            // member per lane.
            config.set("group.instance.id", format!("{instance}-{}", lane.name));
        }
        let consumer: StreamConsumer<Assignments> = config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // A crashed instance's partitions move to the others after 10 s, not the default 45.
            .set("session.timeout.ms", "10000")
            // A member learns of a rebalance at its next heartbeat: a second, not the default
            // three, for an instance joining or leaving to be felt soon.
            .set("heartbeat.interval.ms", "1000")
            // Incremental rebalancing: a member joining takes partitions from the others
            // without revoking the rest. With the eager default, the second lane's join at
            // start revoked every partition of the first, which then re-read the batch it was
            // saving (docs/ARCHITECTURE.md, "The stream's lanes").
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create_with_context(Assignments {
                assigned,
                refusals: refusals.clone(),
            })
            .context("creating the Kafka consumer (KAFKA_BOOTSTRAP_SERVERS)")?;
        let topics: Vec<String> = lane.topics.iter().map(|t| kafka.topic_name(*t)).collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .context("subscribing to the topics")?;
        Ok(KafkaSource {
            consumer,
            positions: Positions {
                lane,
                assignments,
                group: group.to_owned(),
                topic_prefix: kafka.topic_prefix.clone(),
                next_at: HashMap::new(),
                unchecked: HashSet::new(),
            },
            refusals,
        })
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.positions.group
    }

    /// The lane this source reads.
    pub fn lane(&self) -> Lane {
        self.positions.lane
    }

    /// The next message to save; `None` when `stop` came first. Messages below a partition's
    /// stored offset are skipped.
    pub async fn next(
        &mut self,
        pool: &Pool,
        stop: impl std::future::Future<Output = ()>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Consumed>> {
        tokio::pin!(stop);
        loop {
            let received = tokio::select! {
                received = self.consumer.recv() => Some(received),
                () = &mut stop => None,
            };
            // New partitions resume where the database says, not where Kafka says. Checked
            // after every wait, message or not: with Kafka's offsets ahead of the database's,
            // no message may ever arrive until the seek below.
            while let Ok(partitions) = self.positions.assignments.try_recv() {
                (self.positions)
                    .resume(&self.consumer, pool, partitions, shutdown)
                    .await?;
            }
            let Some(received) = received else {
                return Ok(None);
            };
            let message = match received {
                Ok(message) => message,
                Err(e)
                    if e.rdkafka_error_code()
                        == Some(RDKafkaErrorCode::InconsistentGroupProtocol) =>
                {
                    warn!(
                        group = self.positions.group,
                        "the group has members that rebalance eagerly (a stream build from before \
                         cooperative rebalancing, or another client): joining once they leave, \
                         a stopped stream's at its session timeout (10 s)"
                    );
                    continue;
                }
                Err(e) => {
                    if !self.refusals.observe(&e, "") {
                        warn!(error = %e, "Kafka consumer error; librdkafka reconnects by itself");
                    }
                    continue;
                }
            };
            monitoring::CONSUMED
                .with_label_values(&[message.topic()])
                .inc();
            if self.positions.is_saved_or_ahead(&self.consumer, &message) {
                continue;
            }
            return Ok(Some(self.positions.parse(&message)));
        }
    }

    /// Commits the offsets of a saved batch to Kafka: after the database, and exactly the saved
    /// offsets (not the consumer's position, which is further on). Kafka's offsets are for lag
    /// tools only.
    pub fn commit<'a>(&self, saved: impl Iterator<Item = (&'a Partition, &'a i64)>) {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in saved {
            if let Err(e) = offsets.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                warn!(error = %e, "could not list an offset to commit to Kafka (the database has it)");
            }
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            warn!(error = %e, "could not commit offsets to Kafka (the database has them)");
        }
    }

    /// Sets the lag gauge of each assigned partition: its end minus where this instance is.
    pub fn measure_lag(&self) -> Result<()> {
        let positions = self.consumer.position()?;
        let assigned: Vec<Partition> = (self.consumer.assignment()?.elements().iter())
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (key, high) in self.ends(&assigned, Offset::End, Duration::from_secs(5))? {
            let (topic, partition) = (key.0.as_str(), key.1);
            let position = match positions
                .find_partition(topic, partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(at)) => at,
                _ => self.positions.next_at.get(&key).copied().unwrap_or(0),
            };
            monitoring::LAG
                .with_label_values(&[topic, &partition.to_string()])
                .set((high - position).max(0));
        }
        Ok(())
    }

    /// One end of every partition of `partitions` (`Offset::Beginning` or `Offset::End`),
    /// asked in one request: a request per partition waited behind the consumer's fetch on the
    /// broker's connection (up to `fetch.wait.max.ms` when the partitions are idle), 7.5 s for
    /// the sales' lane's 12.
    fn ends(
        &self,
        partitions: &[Partition],
        end: Offset,
        timeout: Duration,
    ) -> Result<HashMap<Partition, i64>> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        // Asked "by time", the ends' sentinels are the protocol's earliest and latest offsets.
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition_offset(topic, *partition, end)?;
        }
        let found = self.consumer.offsets_for_times(list, timeout)?;
        (found.elements().iter())
            .map(|e| {
                e.error()?;
                // A sentinel back (not an offset) would read as caught up: an error.
                let offset = (e.offset().to_raw().filter(|o| *o >= 0))
                    .with_context(|| format!("no offset for {}/{}", e.topic(), e.partition()))?;
                Ok(((e.topic().to_owned(), e.partition()), offset))
            })
            .collect()
    }

    /// Whether every partition of the subscribed topics has its stored offset at its end.
    pub fn caught_up(&self, stored: &HashMap<Partition, i64>) -> Result<bool> {
        let timeout = Duration::from_secs(10);
        let subscribed = self.consumer.subscription()?;
        let subscribed: HashSet<String> = (subscribed.elements().iter())
            .map(|e| e.topic().to_owned())
            .collect();
        // One metadata request for every topic: one per topic waits behind the fetch as above.
        let metadata = self.consumer.fetch_metadata(None, timeout)?;
        let partitions: Vec<Partition> = (metadata.topics().iter())
            .filter(|t| subscribed.contains(t.name()))
            .flat_map(|t| t.partitions().iter().map(|p| (t.name().to_owned(), p.id())))
            .collect();
        let low = self.ends(&partitions, Offset::Beginning, timeout)?;
        for (key, high) in self.ends(&partitions, Offset::End, timeout)? {
            let low = low.get(&key).copied().unwrap_or(0);
            let at = stored.get(&key).copied().unwrap_or(0);
            if at.max(low) < high {
                debug!(
                    lane = self.lane().name,
                    topic = key.0,
                    partition = key.1,
                    stored = at,
                    high,
                    "not caught up yet"
                );
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Events older than this keep their message (see [`Positions::parse`]).
const AGED: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl Positions {
    /// Seeks newly assigned partitions to their offsets stored in the database.
    async fn resume(
        &mut self,
        consumer: &StreamConsumer<Assignments>,
        pool: &Pool,
        partitions: Vec<Partition>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let group = self.group.as_str();
        let stored = retrying("reading the stored offsets", shutdown, || {
            on_client(pool, |c| async move { stored_offsets(&c, group).await })
        })
        .await?;
        info!(
            lane = self.lane.name,
            partitions = partitions.len(),
            "partitions assigned: resuming each at its offset stored in the database"
        );
        for key in &partitions {
            self.next_at
                .insert(key.clone(), stored.get(key).copied().unwrap_or(0));
            self.unchecked.insert(key.clone());
        }
        let mut pending = partitions;
        // Right after an assignment librdkafka may refuse a seek ("Erroneous state") until the
        // partition's fetcher starts: try again for a few seconds. Giving up to seek on the
        // first message is not enough when Kafka's committed offset is at the end of the
        // partition (a database restored from an older backup): no message would ever come.
        for attempt in 1..=SEEK_TRIES {
            let mut seeks = TopicPartitionList::new();
            for key in &pending {
                let at = self.next_at.get(key).copied().unwrap_or(0);
                seeks.add_partition_offset(&key.0, key.1, Offset::Offset(at))?;
            }
            let sought = tokio::task::block_in_place(|| {
                consumer.seek_partitions(seeks, Duration::from_secs(5))
            });
            let refused: Vec<Partition> = match &sought {
                Ok(list) => (list.elements().iter())
                    .filter(|e| e.error().is_err())
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect(),
                Err(_) => pending.clone(),
            };
            if refused.is_empty() {
                break;
            }
            if attempt == SEEK_TRIES {
                let error = sought.err().map(|e| e.to_string()).unwrap_or_default();
                warn!(partitions = refused.len(), %error, "could not seek to the stored offsets; will on the first message");
                break;
            }
            pending = refused;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Whether `message` is to be skipped ([`judge`]); seeks back to where its partition
    /// resumes when its first message after an assignment is not there.
    fn is_saved_or_ahead(
        &mut self,
        consumer: &StreamConsumer<Assignments>,
        message: &BorrowedMessage<'_>,
    ) -> bool {
        let (topic, partition) = (message.topic(), message.partition());
        let key = (topic.to_owned(), partition);
        let first = self.unchecked.remove(&key);
        let next = self.next_at.entry(key).or_insert(0);
        let verdict = judge(message.offset(), *next, first);
        if verdict.seek_back {
            if let Err(e) = consumer.seek(
                topic,
                partition,
                Offset::Offset(*next),
                Duration::from_secs(5),
            ) {
                warn!(topic, partition, error = %e, "could not seek to the stored offset");
            }
        }
        if verdict.take {
            *next = message.offset() + 1;
        }
        !verdict.take
    }

    /// The message as kept, and the event it holds or why it holds none.
    fn parse(&self, message: &BorrowedMessage<'_>) -> Consumed {
        let name = message
            .topic()
            .strip_prefix(self.topic_prefix.as_str())
            .unwrap_or(message.topic());
        let now = Utc::now();
        let parsed = match Topic::from_name(name) {
            Some(topic) => Event::parse(topic, message.payload().unwrap_or_default(), now),
            None => Err(Rejection::UnknownTopic(name.to_owned())),
        };
        // Only a dead letter keeps the raw key and payload: copying them for every valid event
        // would be wasted work on the hot path. An event older than a day may become one too,
        // when raw retention removed its day (batcher.rs, `Batch::retired`).
        let keep = match &parsed {
            Ok(event) => event.time().is_some_and(|at| now - at > AGED),
            Err(_) => true,
        };
        let received = Received {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().filter(|_| keep).map(<[u8]>::to_vec),
            payload: message.payload().filter(|_| keep).map(<[u8]>::to_vec),
        };
        (received, parsed)
    }
}

/// What the source does with a message.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    /// Seek its partition back to the offset it resumes at.
    seek_back: bool,
    /// Hand it on to be saved.
    take: bool,
}

/// The verdict on a message at `offset` of a partition whose next message to take is at
/// `next`; `first`: the first message since the partition was assigned. A message below `next`
/// is saved already or was taken before (read again); the first message after an assignment
/// anywhere but at `next` means Kafka's committed offset is elsewhere than the database's: the
/// source seeks back to `next` (a gap above it was never saved). A later message above `next`
/// is taken: offsets have gaps (compaction, transaction markers).
fn judge(offset: i64, next: i64, first: bool) -> Verdict {
    if first && offset != next {
        return Verdict {
            seek_back: true,
            take: false,
        };
    }
    Verdict {
        seek_back: false,
        take: offset >= next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAKE: Verdict = Verdict {
        seek_back: false,
        take: true,
    };
    const SKIP: Verdict = Verdict {
        seek_back: false,
        take: false,
    };
    const SEEK_BACK: Verdict = Verdict {
        seek_back: true,
        take: false,
    };

    #[test]
    fn the_first_message_at_the_stored_offset_is_taken() {
        assert_eq!(judge(40, 40, true), TAKE);
    }

    #[test]
    fn a_first_message_elsewhere_than_the_stored_offset_seeks_back_and_is_skipped() {
        // Kafka's committed offset behind the database's, or ahead of it.
        assert_eq!(judge(35, 40, true), SEEK_BACK);
        assert_eq!(judge(45, 40, true), SEEK_BACK);
    }

    #[test]
    fn a_message_read_again_after_it_was_taken_is_skipped() {
        // Taken at 40, so the partition's next is 41; the seek to the stored offset 40 that
        // followed brings 40 again.
        assert_eq!(judge(40, 41, false), SKIP);
        assert_eq!(judge(12, 41, false), SKIP);
    }

    #[test]
    fn later_messages_are_taken_across_gaps() {
        assert_eq!(judge(41, 41, false), TAKE);
        assert_eq!(judge(47, 41, false), TAKE);
    }
}
