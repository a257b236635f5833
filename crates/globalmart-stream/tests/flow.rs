//! The stream binary between the real local broker and a real realtime database: generated
//! events become exactly the expected rows, a malformed flood becomes dead letters while the
//! valid messages are saved once, and a kill -9 in the middle of a flow followed by a restart
//! leaves the same tables as an uninterrupted run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Result};
use chrono::Utc;
use globalmart_core::event::Event;
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_testkit::TestStack;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-stream");

fn stream(stack: &TestStack) -> Command {
    let db = &stack.realtime;
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
        .env("KAFKA_TOPIC_PREFIX", stack.topic_prefix())
        .env("STREAM_CONSUMER_GROUP", &stack.group_id)
        .env("POSTGRES_REALTIME_HOST", &db.host)
        .env("POSTGRES_REALTIME_PORT", db.port.to_string())
        .env("POSTGRES_REALTIME_USER", &db.user)
        .env("POSTGRES_REALTIME_PASSWORD", db.password.expose())
        .env("POSTGRES_REALTIME_DB", &db.dbname)
        .env("STREAM_EXIT_WHEN_IDLE", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn producer(stack: &TestStack) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "2000000")
        .create()?)
}

async fn send(producer: &FutureProducer, topic: &str, key: &[u8], payload: &[u8]) -> Result<()> {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// Produces every record to the stack's topics, all in flight at once.
async fn produce_all(stack: &TestStack, records: &[Event]) -> Result<()> {
    let producer = producer(stack)?;
    let topics: Vec<String> = records.iter().map(|r| stack.topic(r.topic())).collect();
    let payloads: Vec<Vec<u8>> = records.iter().map(Event::to_json).collect();
    let deliveries = records
        .iter()
        .zip(&topics)
        .zip(&payloads)
        .map(|((record, topic), payload)| send(&producer, topic, record.key().as_bytes(), payload));
    futures::future::try_join_all(deliveries).await?;
    Ok(())
}

/// `n` generated events plus the catalogue, produced to the stack's topics.
async fn produce_events(stack: &TestStack, n: usize) -> Result<Vec<Event>> {
    let settings = MixSettings {
        users: 300,
        products: 60,
        anomaly_share: 0.02,
        catalogue_change_rate: 0.005,
        active_sessions: 50,
    };
    let mut mix = Mix::new(settings, 5, 5, Utc::now());
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    for _ in 0..n {
        records.push(mix.next(globalmart_core::timestamp::to_micros(Utc::now())));
    }
    produce_all(stack, &records).await?;
    Ok(records)
}

/// (row count, checksum) of the realtime tables: what "the same tables" means here.
async fn tables(stack: &TestStack) -> Result<Vec<(String, i64, String)>> {
    let client = stack.realtime_client().await?;
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

fn finish(child: Child) -> Result<String> {
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(output.status.success(), "the stream failed: {stderr}");
    Ok(stderr)
}

fn lines(records: &[Event]) -> i64 {
    records
        .iter()
        .map(|r| match r {
            Event::Transaction(t) => t.products.len() as i64,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_events_become_exactly_the_expected_rows() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 3_000).await?;
    let stderr = tokio::task::spawn_blocking({
        let child = stream(&stack).spawn()?;
        move || finish(child)
    })
    .await??;
    assert!(
        stderr.contains("[TransactionSaver] Batch processed:"),
        "{stderr}"
    );
    let counted = tables(&stack).await?;
    let count = |table: &str| {
        counted
            .iter()
            .find(|(t, _, _)| t == table)
            .map(|(_, n, _)| *n)
    };
    let of = |f: fn(&Event) -> bool| records.iter().filter(|r| f(r)).count() as i64;
    assert_eq!(count("transactions"), Some(lines(&records)));
    assert_eq!(
        count("product_view_events"),
        Some(of(|r| matches!(r, Event::ProductView(_))))
    );
    assert_eq!(
        count("cart_events"),
        Some(of(|r| matches!(r, Event::Cart(_))))
    );
    assert_eq!(count("products"), Some(60));
    assert_eq!(count("users"), Some(300));
    assert_eq!(count("dead_letter_events"), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_flood_becomes_dead_letters_and_the_valid_messages_are_saved_once() -> Result<()>
{
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 500).await?;
    let producer = producer(&stack)?;
    let topic = stack.topic(globalmart_core::topics::Topic::Transactions);
    let cart_topic = stack.topic(globalmart_core::topics::Topic::CartEvents);
    let huge = vec![b'x'; 900_000];
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (&topic, br#"{"transaction_id": "#.to_vec()),
        (&topic, br#"{"transaction_id": 7, "user_id": []}"#.to_vec()),
        (&topic, huge),
        (&cart_topic, br#"{"event_type": "wishlist"}"#.to_vec()),
        (&topic, b"\xff\xfe\xfd".to_vec()),
    ];
    for (topic, payload) in &bad {
        send(&producer, topic, b"USER_00000001", payload).await?;
    }
    // The same valid event twice.
    let again = records
        .iter()
        .find(|r| matches!(r, Event::Transaction(_)))
        .cloned();
    if let Some(event) = &again {
        send(
            &producer,
            &stack.topic(event.topic()),
            event.key().as_bytes(),
            &event.to_json(),
        )
        .await?;
    }
    tokio::task::spawn_blocking({
        let child = stream(&stack).spawn()?;
        move || finish(child)
    })
    .await??;
    let client = stack.realtime_client().await?;
    let reasons: Vec<String> = client
        .query(
            "SELECT reason FROM dead_letter_events ORDER BY \"offset\", topic",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons.len(), bad.len(), "{reasons:?}");
    for expected in [
        "malformed JSON",
        "invalid transaction",
        "exceeds",
        "invalid cart event",
        "not valid UTF-8",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no {expected:?} in {reasons:?}"
        );
    }
    let saved: i64 = client
        .query_one("SELECT count(*) FROM transactions", &[])
        .await?
        .get(0);
    assert_eq!(saved, lines(&records), "the duplicate must not add rows");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_flow_then_restart_gives_the_same_tables_as_no_crash() -> Result<()> {
    let crashed = TestStack::new().await?;
    let clean = TestStack::new().await?;
    // The same records into both stacks.
    let records = produce_events(&crashed, 20_000).await?;
    produce_all(&clean, &records).await?;

    let mut victim = stream(&crashed).env("STREAM_BATCH_SIZE", "500").spawn()?;
    // Kill as soon as the first batches are in: mid-flow, not after it.
    let client = crashed.realtime_client().await?;
    let views_saved = || async {
        let row = client
            .query_one("SELECT count(*) FROM product_view_events", &[])
            .await?;
        anyhow::Ok(row.get::<_, i64>(0))
    };
    let started = std::time::Instant::now();
    while views_saved().await? == 0 {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the stream saved nothing in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL of the process this test started, by its pid.
    victim.kill()?;
    victim.wait()?;
    let partial = views_saved().await?;
    tokio::task::spawn_blocking({
        let child = stream(&crashed).spawn()?;
        move || finish(child)
    })
    .await??;
    tokio::task::spawn_blocking({
        let child = stream(&clean).spawn()?;
        move || finish(child)
    })
    .await??;
    let after_crash = tables(&crashed).await?;
    assert_eq!(after_crash, tables(&clean).await?);
    let views = records
        .iter()
        .filter(|r| matches!(r, Event::ProductView(_)))
        .count() as i64;
    assert!(
        partial < views,
        "the kill came too late to test anything ({partial} of {views} saved)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_in_one_group_save_what_one_saves() -> Result<()> {
    let shared = TestStack::new().await?;
    let single = TestStack::new().await?;
    // Both instances join first and the group splits the partitions between them; only then
    // do the events arrive, so both have work.
    let idle = ("STREAM_EXIT_WHEN_IDLE", "6");
    let first = stream(&shared).env(idle.0, idle.1).spawn()?;
    let second = stream(&shared).env(idle.0, idle.1).spawn()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let records = produce_events(&shared, 20_000).await?;
    produce_all(&single, &records).await?;
    let both = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((finish(first)?, finish(second)?))
    });
    let alone = tokio::task::spawn_blocking({
        let child = stream(&single).spawn()?;
        move || finish(child)
    });
    let (first_log, second_log) = both.await??;
    alone.await??;
    for log in [&first_log, &second_log] {
        assert!(
            log.contains("Batch processed"),
            "an instance saved nothing: {log}"
        );
    }
    assert_eq!(tables(&shared).await?, tables(&single).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_batch_in_flight_and_exits_zero() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 10_000).await?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = stream(&stack)
        .env_remove("STREAM_EXIT_WHEN_IDLE")
        .env("STREAM_BATCH_SIZE", "500")
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .spawn()?;
    let client = stack.realtime_client().await?;
    let started = std::time::Instant::now();
    while client
        .query_one("SELECT count(*) FROM cart_events", &[])
        .await?
        .get::<_, i64>(0)
        == 0
    {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the stream saved nothing in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = scrape(metrics_port)?;
    for expected in [
        "globalmart_stream_messages_total{topic=",
        "globalmart_stream_rows_inserted_total{table=\"cart_events\"}",
        "globalmart_stream_batch_seconds_count",
        "globalmart_stream_end_to_end_seconds_count",
    ] {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let stderr = tokio::task::spawn_blocking(move || finish(child)).await??;
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("stream processing stopped"), "{stderr}");
    // A restart saves the rest: nothing was lost by stopping.
    tokio::task::spawn_blocking({
        let child = stream(&stack).spawn()?;
        move || finish(child)
    })
    .await??;
    let lines_saved: i64 = client
        .query_one("SELECT count(*) FROM transactions", &[])
        .await?
        .get(0);
    assert_eq!(lines_saved, lines(&records));
    Ok(())
}

/// The /metrics text of a binary listening on `port`.
fn scrape(port: u16) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
