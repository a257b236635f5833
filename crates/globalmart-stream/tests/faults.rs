//! The stream through faults, on the real broker and PostgreSQL: the database going away
//! mid-flow, a private broker SIGKILLed and restarted mid-flow, and a database restored empty
//! while Kafka's committed offsets say everything was read. Each ends with exactly the rows of
//! the records produced.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{
    counts, events, expected_counts, produce_events, produce_to, rows, run, stream, tables,
    wait_for_rows,
};
use globalmart_testkit::{KafkaBroker, Proxy, TestStack};

#[tokio::test(flavor = "multi_thread")]
async fn the_database_going_away_mid_flow_loses_nothing_and_doubles_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let db = &stack.realtime;
    let proxy = Proxy::start(format!("{}:{}", db.host, db.port)).await?;
    let records = produce_events(&stack, 20_000).await?;
    let mut command = stream(&stack);
    command
        .env("POSTGRES_REALTIME_PORT", proxy.port().to_string())
        .env("STREAM_BATCH_SIZE", "500");
    let flow = tokio::spawn(run(command));

    let client = stack.realtime_client().await?;
    wait_for_rows(&client, "product_view_events").await?;
    proxy.cut();
    // While it is away, nothing more is saved (the check that the cut is real)...
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rows(&client, "product_view_events").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rows(&client, "product_view_events").await?, during);
    // ...and once back, the stream carries on by itself.
    proxy.restore();
    let log = flow.await??;

    assert!(
        log.contains("failed; retrying"),
        "no retry was logged: {log}"
    );
    assert!(
        during < expected_counts(&records)[1].1,
        "the cut came too late"
    );
    assert_eq!(counts(&stack).await?, expected_counts(&records));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_and_restarted_mid_flow_loses_nothing_and_doubles_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let bootstrap = broker.bootstrap_servers();
    globalmart_testkit::create_platform_topics(&bootstrap).await?;
    let records = events(20_000);
    let (before, after) = records.split_at(records.len() / 2);
    produce_to(&bootstrap, "", before).await?;

    let mut command = stream(&stack);
    command
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("KAFKA_TOPIC_PREFIX", "")
        .env("STREAM_BATCH_SIZE", "500")
        // Longer than the broker's absence plus the second half's production on a loaded
        // machine: "idle" would otherwise end the run before the second half arrives.
        .env("STREAM_EXIT_WHEN_IDLE", "30");
    let flow = tokio::spawn(run(command));
    let client = stack.realtime_client().await?;
    wait_for_rows(&client, "product_view_events").await?;
    // SIGKILL of the broker this test started, by its pid; back after a few seconds.
    broker = tokio::task::spawn_blocking(move || {
        broker.kill()?;
        std::thread::sleep(Duration::from_secs(3));
        broker.restart()?;
        anyhow::Ok(broker)
    })
    .await??;
    produce_to(&bootstrap, "", after).await?;
    flow.await??;

    assert_eq!(counts(&stack).await?, expected_counts(&records));
    drop(broker);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restored_empty_is_filled_again_although_kafka_says_all_was_read() -> Result<()>
{
    let stack = TestStack::new().await?;
    produce_events(&stack, 3_000).await?;
    run(stream(&stack)).await?;
    let saved = tables(&stack).await?;

    // The consumer group's offsets in Kafka now point at the end of every partition.
    let client = stack.realtime_client().await?;
    client
        .batch_execute(
            "TRUNCATE transactions, product_view_events, cart_events, products, users,
                 product_history, user_history, dead_letter_events, stream_offsets",
        )
        .await?;
    run(stream(&stack)).await?;
    assert_eq!(tables(&stack).await?, saved);
    Ok(())
}
