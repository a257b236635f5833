//! The stream binary between the real local broker and a real realtime database: generated
//! events become exactly the expected rows, a malformed flood becomes dead letters while the
//! valid messages are saved once, and a kill -9 in the middle of a flow followed by a restart
//! leaves the same tables as an uninterrupted run; SIGTERM and Ctrl+C finish the batch in flight;
//! the anomaly thresholds come from the environment.

mod common;

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use common::{
    assert_saved_as_modelled, events, finish, lines, produce_all, produce_events, producer, rows,
    run, send, stream, tables, wait_for_count, wait_for_group, wait_for_rows,
};
use globalmart_core::config::Secret;
use globalmart_core::db::{self, Db, PgSettings};
use globalmart_core::event::Event;
use globalmart_stream::source::LANES;
use globalmart_testkit::metrics::{free_port, scrape};
use globalmart_testkit::{database_env, Cli, TestStack};

#[tokio::test(flavor = "multi_thread")]
async fn as_its_runtime_role_the_stream_checks_the_schema_and_leaves_migrating_to_the_owner(
) -> Result<()> {
    let stack = TestStack::new().await?;
    // A binary newer than the schema: its last migration is not applied yet.
    let needed = db::needed_version(Db::Realtime);
    stack
        .realtime_client()
        .await?
        .execute(
            "DELETE FROM refinery_schema_history WHERE version = $1",
            &[&needed],
        )
        .await?;
    let runtime = PgSettings {
        user: "globalmart_stream".into(),
        password: Secret::new("stream_password"),
        ..stack.realtime.clone()
    };
    let cli = |settings: &PgSettings| {
        Cli::new(env!("CARGO_BIN_EXE_globalmart-stream"))
            .database(Db::Realtime, settings)
            .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
            .env("METRICS_ADDR", "127.0.0.1:0")
    };
    let refused = cli(&runtime).run()?;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let behind = format!(
        "schema is at version {}, this binary needs {needed}; run `globalmart-stream migrate` \
         as the owner role",
        needed - 1
    );
    assert!(refused.stderr.contains(&behind), "{}", refused.stderr);
    // The runtime role cannot migrate even when asked to; the owner can.
    let denied = cli(&runtime).args(["migrate"]).run()?;
    assert_eq!(denied.code, Some(1), "{}", denied.stderr);
    assert!(
        denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    let migrated = cli(&stack.realtime).args(["migrate"]).run()?;
    assert_eq!(migrated.code, Some(0), "{}", migrated.stderr);

    let records = produce_events(&stack, 2_000).await?;
    let mut command = stream(&stack);
    command.envs(database_env(Db::Realtime, &runtime));
    let log = run(command).await?;
    assert!(log.contains("this role does not migrate"), "{log}");
    assert_saved_as_modelled(&stack.realtime_client().await?, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_events_become_exactly_the_expected_rows() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 3_000).await?;
    let stderr = run(stream(&stack)).await?;
    // The guide's lines, whose records add up to what was saved.
    let logged = |saver: &str| -> i64 {
        let prefix = format!("[{saver}] Batch processed: ");
        (stderr.lines().filter_map(|l| l.split_once(prefix.as_str())))
            .filter_map(|(_, rest)| rest.split_whitespace().next()?.parse::<i64>().ok())
            .sum()
    };
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
    for (saver, table) in [
        ("TransactionSaver", "transactions"),
        ("ProductViewSaver", "product_view_events"),
        ("CartEventSaver", "cart_events"),
    ] {
        assert_eq!(Some(logged(saver)), count(table), "{saver}: {stderr}");
    }
    // Not only as many rows: each field of each row as the events say.
    assert_saved_as_modelled(&stack.realtime_client().await?, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_flood_becomes_dead_letters_and_the_valid_messages_are_saved_once() -> Result<()>
{
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 500).await?;
    let producer = producer(&stack.bootstrap_servers)?;
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
    // Running until everything is saved, so its counters can be read, then stopped.
    let port = free_port()?;
    let child = stream(&stack)
        .env_remove("STREAM_EXIT_WHEN_IDLE")
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .spawn()?;
    let client = stack.realtime_client().await?;
    let repeated = match &again {
        Some(Event::Transaction(t)) => t.products.len(),
        _ => 0,
    };
    let counters = [
        format!("globalmart_stream_dead_letters_total {}", bad.len()),
        format!("globalmart_stream_duplicates_skipped_total {repeated}"),
    ];
    let metrics = scrape_until(port, &counters).await?;
    for counter in &counters {
        assert!(
            metrics.contains(counter.as_str()),
            "no {counter} in:\n{metrics}"
        );
    }
    // The bad messages are all in the sales' lane: the views' lane may still be saving.
    let views = records
        .iter()
        .filter(|r| matches!(r, Event::ProductView(_)))
        .count() as i64;
    wait_for_count(&client, "product_view_events", views).await?;
    let log = stop(child, "-TERM").await?;
    assert!(
        log.contains(&format!(
            ", {} dead letters, {repeated} duplicates skipped",
            bad.len()
        )),
        "the summary: {log}"
    );
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
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_flow_then_restart_gives_the_same_tables_as_no_crash() -> Result<()> {
    let crashed = TestStack::new().await?;
    let clean = TestStack::new().await?;
    // The same records into both stacks; the crashed one gets its second half only after the
    // kill, so the kill is mid-flow whatever the machine's pace.
    let records = events(20_000);
    let (first, second) = records.split_at(records.len() / 2);
    produce_all(&crashed, first).await?;
    produce_all(&clean, &records).await?;

    let mut victim = stream(&crashed).env("STREAM_BATCH_SIZE", "500").spawn()?;
    // Kill as soon as the first batches are in.
    let client = crashed.realtime_client().await?;
    wait_for_rows(&client, "product_view_events").await?;
    // SIGKILL of the process this test started, by its pid.
    victim.kill()?;
    victim.wait()?;
    produce_all(&crashed, second).await?;
    run(stream(&crashed)).await?;
    run(stream(&clean)).await?;
    assert_eq!(tables(&crashed).await?, tables(&clean).await?);
    assert_saved_as_modelled(&client, &records).await?;
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
    // Each instance is one member per lane.
    wait_for_group(&shared, 2 * LANES.len()).await?;
    let records = produce_events(&shared, 20_000).await?;
    produce_all(&single, &records).await?;
    let both = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((finish(first)?, finish(second)?))
    });
    let alone = run(stream(&single));
    let (first_log, second_log) = both.await??;
    alone.await?;
    for log in [&first_log, &second_log] {
        assert!(
            log.contains("Batch processed"),
            "an instance saved nothing: {log}"
        );
    }
    assert_eq!(tables(&shared).await?, tables(&single).await?);
    assert_saved_as_modelled(&shared.realtime_client().await?, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_batch_in_flight_and_exits_zero() -> Result<()> {
    stops_cleanly_on("-TERM", "SIGTERM").await
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_finishes_the_batch_in_flight_and_exits_zero() -> Result<()> {
    stops_cleanly_on("-INT", "Ctrl+C").await
}

/// Sends `signal` mid-flow: the stream finishes the batch in flight, logs `name` and its
/// summary, exits 0, and a restart saves the rest.
async fn stops_cleanly_on(signal: &str, name: &str) -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 10_000).await?;
    let port = free_port()?;
    let child = stream(&stack)
        .env_remove("STREAM_EXIT_WHEN_IDLE")
        .env("STREAM_BATCH_SIZE", "500")
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .spawn()?;
    let client = stack.realtime_client().await?;
    wait_for_rows(&client, "cart_events").await?;
    // Every counter is there from the start, at 0 when nothing happened (nothing is read
    // twice: a lane joining the group takes no partition from the other).
    let expected = [
        "globalmart_stream_messages_total{topic=",
        "globalmart_stream_rows_inserted_total{table=\"cart_events\"}",
        "globalmart_stream_batch_seconds_count",
        "globalmart_stream_end_to_end_seconds_count",
        "globalmart_stream_dead_letters_total 0",
        "globalmart_stream_duplicates_skipped_total 0",
    ];
    let metrics = scrape_until(port, &expected).await?;
    for expected in expected {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
    let stderr = stop(child, signal).await?;
    assert!(stderr.contains(&format!("{name} received")), "{stderr}");
    assert!(stderr.contains("stream processing stopped"), "{stderr}");
    assert!(stderr.contains("saved: "), "no summary: {stderr}");
    // A restart saves the rest: nothing was lost by stopping, and nothing is offered twice
    // (the first message of a lane, fetched before the seek to the stored offsets, once came
    // again after it).
    let log = run(stream(&stack)).await?;
    assert!(log.contains(", 0 duplicates skipped"), "the restart: {log}");
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn anomaly_thresholds_come_from_the_environment() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 3_000).await?;
    let mut command = stream(&stack);
    command
        .env("STREAM_HIGH_VALUE_THRESHOLD", "500")
        .env("STREAM_HIGH_QUANTITY_THRESHOLD", "4");
    run(command).await?;
    let transactions = records.iter().filter_map(|r| match r {
        Event::Transaction(t) => Some(t),
        _ => None,
    });
    let (mut values, mut quantities) = (0, 0);
    for t in transactions {
        values += usize::from(t.total_amount >= rust_decimal::Decimal::from(500));
        quantities += t.products.iter().filter(|l| l.quantity >= 4).count();
    }
    let client = stack.realtime_client().await?;
    for (table, expected) in [
        ("high_value_anomalies", values),
        ("high_quantity_anomalies", quantities),
    ] {
        assert!(expected > 0, "no {table} in the events to test with");
        assert_eq!(rows(&client, table).await?, expected as i64, "{table}");
    }
    Ok(())
}

/// The /metrics text on `port` once it holds every one of `expected` (at most 30 s; then as it
/// is). A refused connection is a stream not listening yet (on a loaded machine the spawned
/// process may take a while to get there): tried again until the 30 s.
async fn scrape_until(port: u16, expected: &[impl AsRef<str>]) -> Result<String> {
    let started = std::time::Instant::now();
    loop {
        let timed_out = started.elapsed() > Duration::from_secs(30);
        match scrape(port) {
            Ok(metrics) if timed_out || expected.iter().all(|e| metrics.contains(e.as_ref())) => {
                return Ok(metrics)
            }
            Err(e) if timed_out => return Err(e.context(format!("no metrics on port {port}"))),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `signal` (`-TERM`, `-INT`) to the stream this test started, by its pid; its log once it
/// exited 0.
async fn stop(child: std::process::Child, signal: &str) -> Result<String> {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    tokio::task::spawn_blocking(move || finish(child)).await?
}
