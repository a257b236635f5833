//! What the stream's integration tests share: the binary pointed at a test's stack, generated
//! records produced to a broker, and the realtime tables summed up for comparison.

#![allow(dead_code)] // each test file uses its own part of this

pub mod model;
#[allow(unused_imports)] // as dead_code above: not every test file checks against the model
pub use model::assert_saved_as_modelled;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use chrono::Utc;
use globalmart_core::db::Db;
use globalmart_core::event::Event;
use globalmart_core::topics::Topic;
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_generator::timeline::Period;
use globalmart_testkit::{database_env, TestStack};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-stream");

/// Longest a stream run may take in a test before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The stream binary on the stack's broker, topics, group and realtime database, exiting once
/// idle for 3 s.
pub fn stream(stack: &TestStack) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
        .env("KAFKA_TOPIC_PREFIX", stack.topic_prefix())
        .env("STREAM_CONSUMER_GROUP", &stack.group_id)
        .envs(database_env(Db::Realtime, &stack.realtime))
        .env("STREAM_EXIT_WHEN_IDLE", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits (blocking) for a stream run to end, and returns its log; an error when it failed or
/// ran past [`RUN_LIMIT`] (then it is killed).
pub fn finish(mut child: Child) -> Result<String> {
    // Read the log while it runs: a full pipe would stop the process.
    let mut pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        if let Some(pipe) = pipe.as_mut() {
            let _ = pipe.read_to_string(&mut log);
        }
        log
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap_or_default();
    match status {
        None => bail!("the stream ran longer than {RUN_LIMIT:?}: {log}"),
        Some(status) => ensure!(status.success(), "the stream failed ({status}): {log}"),
    }
    Ok(log)
}

/// Runs `command` to its end, off the async runtime.
pub async fn run(mut command: Command) -> Result<String> {
    let child = command.spawn()?;
    tokio::task::spawn_blocking(move || finish(child)).await?
}

pub fn producer(bootstrap_servers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "2000000")
        .create()?)
}

pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<()> {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(60),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// Produces every record to its topic under `prefix` on `bootstrap_servers`, all in flight at
/// once.
pub async fn produce_to(bootstrap_servers: &str, prefix: &str, records: &[Event]) -> Result<()> {
    let producer = producer(bootstrap_servers)?;
    let topics: Vec<String> = records
        .iter()
        .map(|r| format!("{prefix}{}", r.topic().name()))
        .collect();
    let payloads: Vec<Vec<u8>> = records.iter().map(Event::to_json).collect();
    let deliveries = records
        .iter()
        .zip(&topics)
        .zip(&payloads)
        .map(|((record, topic), payload)| send(&producer, topic, record.key().as_bytes(), payload));
    futures::future::try_join_all(deliveries).await?;
    Ok(())
}

/// Produces every record to the stack's topics.
pub async fn produce_all(stack: &TestStack, records: &[Event]) -> Result<()> {
    produce_to(&stack.bootstrap_servers, &stack.topic_prefix(), records).await
}

/// The catalogue (300 users, 60 products) then `n` generated events, spread evenly over the two
/// hours up to now: every second of a minute, many minutes and three hours are in them, so a
/// metric window off by a second or a minute shows.
pub fn events(n: usize) -> Vec<Event> {
    let settings = MixSettings {
        users: 300,
        products: 60,
        anomaly_share: 0.02,
        catalogue_change_rate: 0.005,
        active_sessions: 50,
    };
    let span = chrono::Duration::hours(2);
    let start = globalmart_core::timestamp::to_micros(Utc::now() - span);
    let mut mix = Mix::new(settings, 5, 5, Period::instant(start));
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    let step = span / i32::try_from(n.max(1)).unwrap_or(i32::MAX);
    for i in 0..n {
        let at = start + step * i32::try_from(i).unwrap_or(i32::MAX);
        records.push(mix.next(globalmart_core::timestamp::to_micros(at)));
    }
    records
}

/// [`events`], produced to the stack's topics.
pub async fn produce_events(stack: &TestStack, n: usize) -> Result<Vec<Event>> {
    let records = events(n);
    produce_all(stack, &records).await?;
    Ok(records)
}

/// (table, row count, checksum) of the realtime tables: what "the same tables" means here.
pub async fn tables(stack: &TestStack) -> Result<Vec<(String, i64, String)>> {
    tables_in(&stack.realtime_client().await?).await
}

/// [`tables`] of the realtime database `client` is connected to.
pub async fn tables_in(client: &tokio_postgres::Client) -> Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for (table, key) in [
        ("transactions", "line_item_id::text || quantity || price"),
        ("product_view_events", "event_id::text"),
        (
            "cart_events",
            "event_id::text || coalesce(cart_value::text, '')",
        ),
        ("products", "product_id || price || updated_at"),
        ("users", "user_id || email || country"),
        ("dead_letter_events", "topic || \"offset\" || reason"),
    ] {
        let row = client
            .query_one(
                &format!("SELECT count(*), coalesce(md5(string_agg({key}, ',' ORDER BY {key})), '') FROM {table}"),
                &[],
            )
            .await?;
        out.push((table.to_owned(), row.get(0), row.get(1)));
    }
    Ok(out)
}

/// The row counts every table must reach for `records`: line items per transaction, one row
/// per view and cart event, the latest version of each product and user, no dead letter.
pub fn expected_counts(records: &[Event]) -> Vec<(String, i64)> {
    let of = |f: fn(&Event) -> bool| records.iter().filter(|r| f(r)).count() as i64;
    let distinct = |f: fn(&Event) -> Option<&str>| {
        records
            .iter()
            .filter_map(f)
            .collect::<std::collections::HashSet<_>>()
            .len() as i64
    };
    vec![
        ("transactions".into(), lines(records)),
        (
            "product_view_events".into(),
            of(|r| matches!(r, Event::ProductView(_))),
        ),
        ("cart_events".into(), of(|r| matches!(r, Event::Cart(_)))),
        (
            "products".into(),
            distinct(|r| match r {
                Event::Product(p) => Some(p.product_id.as_str()),
                _ => None,
            }),
        ),
        (
            "users".into(),
            distinct(|r| match r {
                Event::User(u) => Some(u.user_id.as_str()),
                _ => None,
            }),
        ),
        ("dead_letter_events".into(), 0),
    ]
}

/// The row counts of [`tables`].
pub async fn counts(stack: &TestStack) -> Result<Vec<(String, i64)>> {
    counts_in(&stack.realtime_client().await?).await
}

/// [`counts`] of the realtime database `client` is connected to.
pub async fn counts_in(client: &tokio_postgres::Client) -> Result<Vec<(String, i64)>> {
    Ok(tables_in(client)
        .await?
        .into_iter()
        .map(|(table, n, _)| (table, n))
        .collect())
}

/// Line items in the records' transactions.
pub fn lines(records: &[Event]) -> i64 {
    records
        .iter()
        .map(|r| match r {
            Event::Transaction(t) => t.products.len() as i64,
            _ => 0,
        })
        .sum()
}

/// Rows in `table` of the stack's realtime database.
pub async fn rows(client: &tokio_postgres::Client, table: &str) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// Waits until `table` has rows (the stream is mid-flow), at most 60 s.
pub async fn wait_for_rows(client: &tokio_postgres::Client, table: &str) -> Result<()> {
    wait_for_count(client, table, 1).await
}

/// Waits until `table` has at least `count` rows, at most 60 s.
pub async fn wait_for_count(
    client: &tokio_postgres::Client,
    table: &str,
    count: i64,
) -> Result<()> {
    let started = Instant::now();
    while rows(client, table).await? < count {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the stream saved fewer than {count} rows into {table} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until the stack's consumer group is stable with `members` members (each then has its
/// partitions), at most 60 s.
pub async fn wait_for_group(stack: &TestStack, members: usize) -> Result<()> {
    let (bootstrap, group) = (stack.bootstrap_servers.clone(), stack.group_id.clone());
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let admin: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
        let started = Instant::now();
        loop {
            let list = admin.fetch_group_list(Some(&group), Duration::from_secs(10))?;
            let state = list
                .groups()
                .first()
                .map(|g| (g.state().to_owned(), g.members().len()));
            if state
                .as_ref()
                .is_some_and(|(s, n)| s == "Stable" && *n == members)
            {
                return Ok(());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "group {group} is {state:?} after 60 s, not stable with {members} members"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await?
}

pub async fn texts(client: &tokio_postgres::Client, query: &str) -> Result<Vec<String>> {
    Ok(client
        .query(query, &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The valid events the stack's topics hold, each once, read back from the broker: what a flow
/// must become when the test cannot know its events beforehand (the generator's clock).
pub async fn delivered(stack: &TestStack) -> Result<Vec<Event>> {
    delivered_from(&stack.bootstrap_servers, &stack.topic_prefix()).await
}

/// [`delivered`] from the topics under `prefix` on the (plaintext) `bootstrap` servers.
pub async fn delivered_from(bootstrap: &str, prefix: &str) -> Result<Vec<Event>> {
    let bootstrap = bootstrap.to_owned();
    let topics: Vec<(Topic, String)> = [
        Topic::Products,
        Topic::Users,
        Topic::Transactions,
        Topic::ProductViews,
        Topic::CartEvents,
    ]
    .into_iter()
    .map(|t| (t, format!("{prefix}{}", t.name())))
    .collect();
    tokio::task::spawn_blocking(move || read_back(&bootstrap, &topics)).await?
}

fn read_back(bootstrap: &str, topics: &[(Topic, String)]) -> Result<Vec<Event>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let timeout = Duration::from_secs(30);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "read-back")
        .set("enable.auto.commit", "false")
        .create()?;
    let now = Utc::now();
    let mut seen = std::collections::HashSet::new();
    let mut events = Vec::new();
    for (topic, name) in topics {
        let metadata = consumer.fetch_metadata(Some(name), timeout)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        for partition in 0..partitions as i32 {
            let (low, high) = consumer.fetch_watermarks(name, partition, timeout)?;
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(name, partition, Offset::Offset(low))?;
            consumer.assign(&assignment)?;
            let mut next = low;
            while next < high {
                let message = consumer
                    .poll(timeout)
                    .ok_or_else(|| anyhow::anyhow!("{name}/{partition}: nothing after {next}"))??;
                next = message.offset() + 1;
                let event = message
                    .payload()
                    .and_then(|payload| Event::parse(*topic, payload, now).ok());
                // A message produced twice is one event, as the stream keeps it.
                if let Some(event) = event.filter(|e| seen.insert(identity(e))) {
                    events.push(event);
                }
            }
        }
    }
    Ok(events)
}

/// What makes an event the same event: its id, or a catalogue record's id and version.
fn identity(event: &Event) -> String {
    match event {
        Event::Transaction(t) => t.transaction_id.to_string(),
        Event::ProductView(v) => v.event_id.to_string(),
        Event::Cart(c) => c.event_id.to_string(),
        Event::Product(p) => format!("{}@{}", p.product_id, p.updated_at),
        Event::User(u) => format!("{}@{}", u.user_id, u.updated_at),
    }
}
