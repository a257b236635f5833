//! The real Apache Kafka broker of the local stack, through rdkafka: consumer groups resume at
//! their committed offsets, explicit seeks land where asked, and a consumer waiting while its
//! broker is killed and restarted continues without losing a message.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use globalmart_testkit::{KafkaBroker, TestStack};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// What a consumed message is identified by.
type Seen = (i32, i64, String);

fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .create()?)
}

fn consumer(bootstrap: &str, group: &str) -> Result<StreamConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?)
}

async fn produce(producer: &FutureProducer, topic: &str, payloads: &[String]) -> Result<()> {
    for (i, payload) in payloads.iter().enumerate() {
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(payload),
                Duration::from_secs(120),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("delivery of {payload} failed: {e}"))?;
    }
    Ok(())
}

/// Receives exactly `n` messages (or fails after `max_wait`). Errors while receiving, such as
/// "all brokers down" during a restart, are transient: librdkafka reconnects by itself, so they
/// are counted and the wait goes on.
async fn receive_counting_errors(
    consumer: &StreamConsumer,
    n: usize,
    max_wait: Duration,
) -> Result<(Vec<Seen>, usize)> {
    let mut seen = Vec::with_capacity(n);
    let mut errors = 0;
    let deadline = tokio::time::Instant::now() + max_wait;
    while seen.len() < n {
        let received = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .with_context(|| format!("only {} of {n} messages arrived", seen.len()))?;
        match received {
            Ok(message) => {
                let payload = message.payload().unwrap_or_default();
                let payload = String::from_utf8_lossy(payload).into_owned();
                seen.push((message.partition(), message.offset(), payload));
            }
            Err(e) => {
                eprintln!("transient consumer error: {e}");
                errors += 1;
            }
        }
    }
    Ok((seen, errors))
}

async fn receive(consumer: &StreamConsumer, n: usize, max_wait: Duration) -> Result<Vec<Seen>> {
    Ok(receive_counting_errors(consumer, n, max_wait).await?.0)
}

fn payloads(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

#[tokio::test]
async fn a_restarted_consumer_resumes_at_the_committed_offset() -> Result<()> {
    let mut stack = TestStack::new().await?;
    let topic = format!("{}-resume", stack.id);
    stack.create_topic(&topic, 3, false).await?;
    let sent = payloads("resume", 30);
    produce(&producer(&stack.bootstrap_servers)?, &topic, &sent).await?;

    let first = consumer(&stack.bootstrap_servers, &stack.group_id)?;
    first.subscribe(&[&topic])?;
    let before = receive(&first, 12, Duration::from_secs(30)).await?;
    first.commit_consumer_state(CommitMode::Sync)?;
    drop(first);

    let second = consumer(&stack.bootstrap_servers, &stack.group_id)?;
    second.subscribe(&[&topic])?;
    let after = receive(&second, sent.len() - before.len(), Duration::from_secs(30)).await?;

    let before_set: BTreeSet<&String> = before.iter().map(|s| &s.2).collect();
    let after_set: BTreeSet<&String> = after.iter().map(|s| &s.2).collect();
    assert!(
        before_set.is_disjoint(&after_set),
        "a committed message was delivered again"
    );
    let all: BTreeSet<&String> = before_set.union(&after_set).copied().collect();
    assert_eq!(
        all,
        sent.iter().collect::<BTreeSet<_>>(),
        "a message was lost"
    );
    // Nothing more is waiting: the second consumer got exactly the uncommitted rest.
    ensure!(
        tokio::time::timeout(Duration::from_secs(2), second.recv())
            .await
            .is_err(),
        "an extra message arrived after the resume"
    );
    Ok(())
}

#[tokio::test]
async fn seeking_to_an_explicit_offset_reads_from_there() -> Result<()> {
    let mut stack = TestStack::new().await?;
    let topic = format!("{}-seek", stack.id);
    stack.create_topic(&topic, 1, false).await?;
    let sent = payloads("seek", 10);
    produce(&producer(&stack.bootstrap_servers)?, &topic, &sent).await?;

    // Assign at offset 7: exactly the last three messages.
    let reader = consumer(&stack.bootstrap_servers, &stack.group_id)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Offset(7))?;
    reader.assign(&assignment)?;
    let tail = receive(&reader, 3, Duration::from_secs(30)).await?;
    assert_eq!(
        tail,
        vec![
            (0, 7, sent[7].clone()),
            (0, 8, sent[8].clone()),
            (0, 9, sent[9].clone())
        ]
    );

    // Seek back on the live assignment: reading starts again at offset 2.
    reader.seek(&topic, 0, Offset::Offset(2), Duration::from_secs(10))?;
    let again = receive(&reader, 2, Duration::from_secs(30)).await?;
    assert_eq!(
        again,
        vec![(0, 2, sent[2].clone()), (0, 3, sent[3].clone())]
    );
    Ok(())
}

#[tokio::test]
async fn a_waiting_consumer_survives_a_broker_restart_without_loss() -> Result<()> {
    // A private broker: this test kills it, and must never touch the shared one.
    let mut broker = KafkaBroker::start()?;
    let bootstrap = broker.bootstrap_servers();
    let topic = "restart-topic";
    globalmart_testkit::create_topic(&bootstrap, topic, 3, false).await?;

    let producer = producer(&bootstrap)?;
    let listener = consumer(&bootstrap, "restart-group")?;
    listener.subscribe(&[topic])?;
    let first = payloads("before", 10);
    produce(&producer, topic, &first).await?;
    let mut seen = receive(&listener, first.len(), Duration::from_secs(30)).await?;
    listener.commit_consumer_state(CommitMode::Sync)?;

    let old_pid = broker.pid();
    broker.kill()?;
    // Sent while the broker is down: the producer holds them and retries.
    let second = payloads("during", 10);
    let pending = {
        let producer = producer.clone();
        let second = second.clone();
        tokio::spawn(async move { produce(&producer, topic, &second).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Kept in scope to the end: dropping the handle kills the broker.
    let broker = tokio::task::spawn_blocking(move || broker.restart().map(|()| broker)).await??;
    assert_ne!(broker.pid(), old_pid, "the broker must be a new process");
    pending.await??;
    let third = payloads("after", 10);
    produce(&producer, topic, &third).await?;

    let (rest, errors) = receive_counting_errors(
        &listener,
        second.len() + third.len(),
        Duration::from_secs(90),
    )
    .await?;
    assert!(errors > 0, "the consumer never noticed the broker was gone");
    seen.extend(rest);
    let received: BTreeSet<&String> = seen.iter().map(|s| &s.2).collect();
    let expected: BTreeSet<&String> = first.iter().chain(&second).chain(&third).collect();
    assert_eq!(received, expected, "messages lost across the restart");
    assert_eq!(
        seen.len(),
        expected.len(),
        "messages delivered twice across the restart"
    );
    Ok(())
}
