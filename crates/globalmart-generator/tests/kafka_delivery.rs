//! The generator binary against the real local broker: it delivers exactly what --dry-run
//! prints for the same seed, SIGTERM flushes everything in flight and exits 0, and records that
//! cannot be delivered are counted (in the summary and in the queue-full and delivery-error
//! counters) and make the exit code non-zero.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use globalmart_core::topics::Topic;
use globalmart_testkit::metrics::{free_ports, scrape, total};
use globalmart_testkit::{KafkaBroker, TestStack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-generator");

/// Per topic: the sorted (key, payload without timestamps) of every record.
type Records = BTreeMap<String, Vec<(String, serde_json::Value)>>;

/// The catalogue of [`generator`]: 300 users and 80 products.
const CATALOGUE: usize = 380;

fn generator(stack: &TestStack) -> Command {
    generator_on(&stack.bootstrap_servers, &stack.topic_prefix())
}

fn generator_on(bootstrap: &str, prefix: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_TOPIC_PREFIX", prefix)
        .env("DATA_GEN_NUM_USERS", "300")
        .env("DATA_GEN_NUM_PRODUCTS", "80");
    command
}

/// The first `limit` records `command --dry-run` prints, by topic (without `prefix`).
fn dry_run(command: &mut Command, prefix: &str, limit: usize) -> Result<Records> {
    let dry = command.arg("--dry-run").output()?;
    ensure!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let mut printed = Records::new();
    for line in String::from_utf8(dry.stdout)?.lines().take(limit) {
        let record: serde_json::Value = serde_json::from_str(line)?;
        let topic = record["topic"].as_str().context("topic")?;
        let topic = topic.trim_start_matches(prefix).to_owned();
        let key = record["key"].as_str().context("key")?.to_owned();
        printed
            .entry(topic)
            .or_default()
            .push((key, without_timestamps(record["value"].clone())));
    }
    Ok(sorted(printed))
}

/// Waits until the platform topics (names with `prefix`) hold at least `n` records, at most
/// 120 s; returns how many they hold.
fn wait_for_records(bootstrap: &str, prefix: &str, n: i64) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let started = std::time::Instant::now();
    loop {
        let mut held = 0;
        for topic in Topic::ALL {
            let name = format!("{prefix}{}", topic.name());
            for partition in 0..3 {
                // A broker on its way up answers with an error: count that as nothing yet.
                if let Ok((low, high)) =
                    consumer.fetch_watermarks(&name, partition, Duration::from_secs(5))
                {
                    held += high - low;
                }
            }
        }
        if held >= n {
            return Ok(held);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the topics hold {held} records, not {n}, after 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wall-clock fields differ between runs; everything else is determined by the seed.
fn without_timestamps(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        for field in ["timestamp", "updated_at", "registration_date"] {
            object.remove(field);
        }
    }
    value
}

fn sorted(mut records: Records) -> Records {
    for list in records.values_mut() {
        list.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
    }
    records
}

/// Reads every platform topic (names with `prefix`) from the beginning until `expected`
/// records arrived (or 60 s passed), then 1 s more to catch extras.
fn consume(bootstrap: &str, prefix: &str, expected: usize) -> Result<Records> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{prefix}reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in Topic::ALL {
        for partition in 0..3 {
            let name = format!("{prefix}{}", topic.name());
            assignment.add_partition_offset(&name, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut records = Records::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_until = None;
    loop {
        let now = std::time::Instant::now();
        if now > deadline || quiet_until.is_some_and(|q| now > q) {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let topic = message.topic().trim_start_matches(prefix).to_owned();
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let value: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default())?;
        records
            .entry(topic)
            .or_default()
            .push((key, without_timestamps(value)));
        seen += 1;
        if seen >= expected && quiet_until.is_none() {
            quiet_until = Some(std::time::Instant::now() + Duration::from_secs(1));
        }
    }
    Ok(sorted(records))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_receives_exactly_what_the_dry_run_prints() -> Result<()> {
    let stack = TestStack::new().await?;
    let args = ["--seed", "11", "--count", "3000", "--rate", "max"];
    let printed = dry_run(
        generator(&stack).args(args),
        &stack.topic_prefix(),
        usize::MAX,
    )?;
    let total: usize = printed.values().map(Vec::len).sum();

    let run = generator(&stack).args(args).output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    ensure!(run.status.success(), "{stderr}");
    assert!(stderr.contains("generated: 3000 events"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{total} sent, {total} delivered, 0 failed, 0 undelivered"
        )),
        "{stderr}"
    );

    let received = tokio::task::block_in_place(|| {
        consume(&stack.bootstrap_servers, &stack.topic_prefix(), total)
    })?;
    assert_eq!(
        received.keys().collect::<Vec<_>>(),
        printed.keys().collect::<Vec<_>>()
    );
    for (topic, records) in &printed {
        assert_eq!(received[topic].len(), records.len(), "{topic}: count");
        assert!(
            received[topic] == *records,
            "{topic}: contents differ from the dry run"
        );
    }
    // The guide's monitoring line names a real transaction: its id, user and total.
    let line = (stderr.lines())
        .find_map(|l| l.split_once("[Transaction] Generated transaction "))
        .map(|(_, rest)| rest.to_owned())
        .context("no [Transaction] line")?;
    let (id, rest) = line.split_once(" for user ").context(line.clone())?;
    let (user, total) = rest.split_once(" - $").context(line.clone())?;
    let sent = (received["transactions-topic"].iter())
        .find(|(_, v)| v["transaction_id"].as_str() == Some(id))
        .with_context(|| format!("{id} was not sent"))?;
    assert_eq!(sent.1["user_id"].as_str(), Some(user));
    assert_eq!(sent.1["total_amount"].as_f64(), total.parse::<f64>().ok());
    // Events are keyed by their user, catalogue records by their id.
    for (key, value) in &received["transactions-topic"] {
        assert_eq!(value["user_id"].as_str(), Some(key.as_str()));
    }
    for (key, value) in &received["products-topic"] {
        assert_eq!(value["product_id"].as_str(), Some(key.as_str()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_what_is_in_flight_and_exits_zero() -> Result<()> {
    let stack = TestStack::new().await?;
    let args = ["--seed", "5", "--rate", "400"];
    let child = generator(&stack)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    // Stopped mid-flow: once the catalogue and some events are in.
    let (bootstrap, prefix) = (stack.bootstrap_servers.clone(), stack.topic_prefix());
    let held = tokio::task::spawn_blocking(move || {
        wait_for_records(&bootstrap, &prefix, (CATALOGUE + 400) as i64)
    })
    .await??;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    let sent = all_delivered(&stderr)?;
    assert!(sent as i64 >= held, "{sent} sent, {held} seen delivered");
    // Exactly the records the seed makes, up to where it stopped: none lost in flight, none
    // twice.
    let expected = dry_run(
        generator(&stack).args(["--seed", "5", "--count", "20000", "--rate", "max"]),
        &stack.topic_prefix(),
        sent,
    )?;
    let received = tokio::task::block_in_place(|| {
        consume(&stack.bootstrap_servers, &stack.topic_prefix(), sent)
    })?;
    assert!(received == expected, "not the records the seed makes");
    Ok(())
}

#[tokio::test]
async fn undeliverable_records_are_counted_and_fail_the_run() -> Result<()> {
    // A port with nothing behind it: every record waits out its delivery timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let output = Command::new(BIN)
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("localhost:{port}"))
        .args([
            "--users",
            "5",
            "--products",
            "5",
            "--count",
            "20",
            "--rate",
            "max",
        ])
        // No catalogue changes: exactly 10 catalogue records and 20 events are sent.
        .args(["--delivery-timeout", "3s", "--catalogue-change-rate", "0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("30 sent, 0 delivered"), "{stderr}");
    assert!(
        stderr.contains("30 of 30 records were not delivered"),
        "{stderr}"
    );
    assert!(
        stderr.contains("retrying with backoff"),
        "the outage must be reported: {stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_moves_the_queue_full_and_delivery_error_counters() -> Result<()> {
    // Nothing listens on `port`: the producer queue fills (nothing leaves it), then its records
    // time out. A small queue fills at once however slowly this machine generates.
    let [port, metrics_port] = free_ports()?;
    let child = Command::new(BIN)
        .env_clear()
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("localhost:{port}"))
        .args(["--users", "5", "--products", "5", "--rate", "max"])
        .args([
            "--duration",
            "2m",
            "--delivery-timeout",
            "3s",
            "--queue-records",
            "1000",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let started = std::time::Instant::now();
    let counted = loop {
        let metrics = scrape(metrics_port).unwrap_or_default();
        let counted = [
            "globalmart_generator_queue_full_total",
            "globalmart_generator_delivery_errors_total",
        ]
        .map(|name| total(&metrics, name));
        if counted.iter().all(|n| *n > 0.0) || started.elapsed() > Duration::from_secs(90) {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(counted[0] > 0.0, "the queue never filled: {stderr}");
    assert!(counted[1] > 0.0, "no delivery error counted: {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("were not delivered"), "{stderr}");
    Ok(())
}

/// The number in "N sent, N delivered, 0 failed, 0 undelivered", after checking that nothing
/// was lost.
fn all_delivered(stderr: &str) -> Result<usize> {
    let summary = stderr
        .lines()
        .find(|l| l.contains(" sent, "))
        .context("no delivery summary")?;
    let sent: usize = summary
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .context("no count in the summary")?;
    ensure!(
        summary.contains(&format!(
            "{sent} sent, {sent} delivered, 0 failed, 0 undelivered"
        )),
        "{summary}"
    );
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_mid_run_loses_and_doubles_nothing() -> Result<()> {
    // A private broker: this test kills it, and must never touch the shared one.
    let mut broker = KafkaBroker::start()?;
    let bootstrap = broker.bootstrap_servers();
    globalmart_testkit::create_platform_topics(&bootstrap).await?;
    let args = ["--seed", "3", "--count", "3000"];
    let expected = dry_run(
        generator_on(&bootstrap, "")
            .args(args)
            .args(["--rate", "max"]),
        "",
        usize::MAX,
    )?;
    let child = generator_on(&bootstrap, "")
        .args(args)
        .args(["--rate", "300"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    // Killed mid-run: once the catalogue and some events are in.
    let before = wait_for_records(&bootstrap, "", (CATALOGUE + 300) as i64)?;
    broker.kill()?;
    // Down for 2 s: the length of the outage, not a wait for anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Kept in scope to the end: dropping the handle kills the broker.
    let broker = tokio::task::spawn_blocking(move || broker.restart().map(|()| broker)).await??;

    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("retrying with backoff"),
        "the outage must be reported: {stderr}"
    );
    let sent = all_delivered(&stderr)?;
    let total: usize = expected.values().map(Vec::len).sum();
    assert_eq!(sent, total);
    assert!(total as i64 > before, "the restart came after the run");
    // Idempotent production: exactly the seed's records, the retries after the restart added
    // no duplicate.
    let received = tokio::task::block_in_place(|| consume(&bootstrap, "", total))?;
    assert!(received == expected, "not the records the seed makes");
    drop(broker);
    Ok(())
}

/// Records on the catalogue topics (products-topic and users-topic) under `prefix`.
fn catalogue_records(bootstrap: &str, prefix: &str) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut held = 0;
    for topic in [Topic::Products, Topic::Users] {
        for partition in 0..3 {
            let name = format!("{prefix}{}", topic.name());
            let (low, high) =
                consumer.fetch_watermarks(&name, partition, Duration::from_secs(5))?;
            held += high - low;
        }
    }
    Ok(held)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_does_not_publish_an_unchanged_catalogue_but_a_changed_one_again() -> Result<()> {
    let stack = TestStack::new().await?;
    let (bootstrap, prefix) = (&stack.bootstrap_servers, &stack.topic_prefix());
    // No catalogue changes among the events: the catalogue topics hold publications only.
    let run = |products: &str| -> Result<String> {
        let out = generator(&stack)
            .args(["--seed", "3", "--count", "500", "--rate", "max"])
            .env("GENERATOR_CATALOGUE_CHANGE_RATE", "0")
            .env("DATA_GEN_NUM_PRODUCTS", products)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(out.status.success(), "{stderr}");
        Ok(stderr)
    };

    let first = run("80")?;
    assert!(
        first.contains("a restart will not publish it again"),
        "{first}"
    );
    assert_eq!(catalogue_records(bootstrap, prefix)?, CATALOGUE as i64);

    let again = run("80")?;
    assert!(again.contains("not published again"), "{again}");
    assert!(again.contains("generated: 500 events"), "{again}");
    assert_eq!(
        catalogue_records(bootstrap, prefix)?,
        CATALOGUE as i64,
        "the restart published catalogue records"
    );

    // Another catalogue (90 products instead of 80) is published in full.
    let changed = run("90")?;
    assert!(!changed.contains("not published again"), "{changed}");
    assert_eq!(
        catalogue_records(bootstrap, prefix)?,
        CATALOGUE as i64 + 300 + 90
    );
    Ok(())
}
