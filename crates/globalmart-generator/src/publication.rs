//! Whether products-topic and users-topic already hold this run's catalogue, so that a restart
//! does not publish it again: at the course's scale that is 10 million records, and the
//! restart's cost would grow with the catalogue.
//!
//! Once a publication is complete (every record acknowledged), the generator commits, as the
//! consumer group `globalmart-generator` on every partition of the two topics, the partition's
//! end offset with `<fingerprint>@<offset the publication started at>` as the commit's metadata.
//! A later run skips the publication when every partition carries its fingerprint, the log
//! still starts at or before the publication (retention deleted none of it) and ends at or after
//! the commit (the topic was not recreated). Anything else, or any error asking, publishes: a
//! second copy costs time, never correctness (the stream keeps the latest version of a record).

use std::time::Duration;

use anyhow::{Context, Result};
use globalmart_core::config::KafkaArgs;
use globalmart_core::kafka;
use globalmart_core::topics::Topic;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// The consumer group whose commits mark a published catalogue.
pub const GROUP: &str = "globalmart-generator";

const TIMEOUT: Duration = Duration::from_secs(10);

/// The catalogue topics' partitions as found at start.
pub struct Publication {
    consumer: BaseConsumer,
    fingerprint: String,
    /// (topic, partition, log start, log end).
    partitions: Vec<(String, i32, i64, i64)>,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("fingerprint", &self.fingerprint)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// Looks at the catalogue topics (blocking: run it off the async threads).
    pub fn look(kafka: &KafkaArgs, fingerprint: String) -> Result<Publication> {
        let consumer: BaseConsumer = kafka::client_config(kafka, "globalmart-generator")?
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the Kafka client that checks the published catalogue")?;
        let mut partitions = Vec::new();
        for topic in [Topic::Products, Topic::Users] {
            let name = kafka.topic_name(topic);
            let metadata = consumer
                .fetch_metadata(Some(&name), TIMEOUT)
                .with_context(|| format!("reading the partitions of {name}"))?;
            for t in metadata.topics() {
                if let Some(error) = t.error() {
                    anyhow::bail!("{name}: {}", rdkafka::error::RDKafkaErrorCode::from(error));
                }
                for p in t.partitions() {
                    let (low, high) = consumer
                        .fetch_watermarks(&name, p.id(), TIMEOUT)
                        .with_context(|| format!("reading the offsets of {name}/{}", p.id()))?;
                    partitions.push((name.clone(), p.id(), low, high));
                }
            }
        }
        Ok(Publication {
            consumer,
            fingerprint,
            partitions,
        })
    }

    /// Whether every partition holds the catalogue of this fingerprint.
    pub fn holds(&self) -> Result<bool> {
        let mut wanted = TopicPartitionList::new();
        for (topic, partition, _, _) in &self.partitions {
            wanted.add_partition(topic, *partition);
        }
        let committed = self
            .consumer
            .committed_offsets(wanted, TIMEOUT)
            .context("reading the generator's commits")?;
        let held = self.partitions.iter().all(|(topic, partition, low, high)| {
            let Some(commit) = committed.find_partition(topic, *partition) else {
                return false;
            };
            let Offset::Offset(end) = commit.offset() else {
                return false;
            };
            let Some((fingerprint, start)) = commit.metadata().split_once('@') else {
                return false;
            };
            let start = start.parse::<i64>().unwrap_or(i64::MAX);
            fingerprint == self.fingerprint && *low <= start && end <= *high
        });
        Ok(!self.partitions.is_empty() && held)
    }

    /// Marks the catalogue published: every record sent since [`Publication::look`] was
    /// acknowledged.
    pub fn mark(&self) -> Result<()> {
        let mut commits = TopicPartitionList::new();
        for (topic, partition, _, start) in &self.partitions {
            let (_, end) = self
                .consumer
                .fetch_watermarks(topic, *partition, TIMEOUT)
                .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
            commits.add_partition_offset(topic, *partition, Offset::Offset(end))?;
            if let Some(mut commit) = commits.find_partition(topic, *partition) {
                commit.set_metadata(format!("{}@{start}", self.fingerprint));
            }
        }
        self.consumer
            .commit(&commits, CommitMode::Sync)
            .context("committing the catalogue's mark")
    }
}
