//! The stream binary between the real local broker and a real realtime database: generated
//! events become exactly the expected rows, a malformed flood becomes dead letters while the
//! valid messages are saved once, and a kill -9 in the middle of a flow followed by a restart
//! leaves the same tables as an uninterrupted run.

mod common;

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use common::{
    assert_saved_as_modelled, events, finish, lines, produce_all, produce_events, producer, run,
    scrape, send, stream, tables, wait_for_group, wait_for_rows,
};
use globalmart_core::event::Event;
use globalmart_testkit::TestStack;

#[tokio::test(flavor = "multi_thread")]
async fn generated_events_become_exactly_the_expected_rows() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 3_000).await?;
    let stderr = run(stream(&stack)).await?;
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
    run(stream(&stack)).await?;
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
    wait_for_group(&shared, 2).await?;
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
    wait_for_rows(&client, "cart_events").await?;
    // A batch is reported once committed, right after its rows become visible: poll briefly.
    let expected = [
        "globalmart_stream_messages_total{topic=",
        "globalmart_stream_rows_inserted_total{table=\"cart_events\"}",
        "globalmart_stream_batch_seconds_count",
        "globalmart_stream_end_to_end_seconds_count",
    ];
    let started = std::time::Instant::now();
    let mut metrics = scrape(metrics_port)?;
    while !expected.iter().all(|e| metrics.contains(e)) && started.elapsed().as_secs() < 10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = scrape(metrics_port)?;
    }
    for expected in expected {
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
    run(stream(&stack)).await?;
    let lines_saved: i64 = client
        .query_one("SELECT count(*) FROM transactions", &[])
        .await?
        .get(0);
    assert_eq!(lines_saved, lines(&records));
    Ok(())
}
