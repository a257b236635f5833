//! The realtime metrics against oracles: after a flow with a kill -9, a restart and a second
//! instance joining, every table equals the reference model of the events produced
//! (`common/model.rs`), the anomalies are exactly the events over the thresholds, and every
//! critical anomaly and stock alert is one alert, published to alerts-topic once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use common::{assert_saved_as_modelled, model, produce_events, run, stream, texts, wait_for_rows};
use globalmart_core::topics::Topic;
use globalmart_testkit::TestStack;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_equal_the_model_after_a_kill_9_a_restart_and_a_second_instance() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 20_000).await?;
    let client = stack.realtime_client().await?;

    let mut victim = stream(&stack).env("STREAM_BATCH_SIZE", "500").spawn()?;
    wait_for_rows(&client, "cart_events").await?;
    // SIGKILL of the process this test started, by its pid.
    victim.kill()?;
    victim.wait()?;
    // The alerts it may have delivered without marking them published.
    let unmarked: BTreeSet<String> = texts(
        &client,
        "SELECT alert_key FROM alerts WHERE published_at IS NULL",
    )
    .await?
    .into_iter()
    .collect();
    // A restart and a second instance in the same group, side by side.
    let first = tokio::spawn(run(stream(&stack)));
    let mut second = stream(&stack);
    second.env("STREAM_BATCH_SIZE", "700");
    run(second).await?;
    first.await??;

    let anomalies = records
        .iter()
        .filter(|r| match r {
            globalmart_core::event::Event::Transaction(t) => {
                t.total_amount >= rust_decimal::Decimal::from(3000)
            }
            _ => false,
        })
        .count();
    assert!(
        anomalies > 0,
        "the generator injected no high-value anomaly"
    );
    assert_saved_as_modelled(&client, &records).await?;
    let high_value: i64 = client
        .query_one("SELECT count(*) FROM high_value_anomalies", &[])
        .await?
        .get(0);
    assert_eq!(high_value, anomalies as i64);

    // Every critical anomaly, high-demand window and stock alert is one alert. The stock alerts'
    // own rules are held against hand-made cases in sink.rs; here their keys come from their
    // table.
    let mut causes = model::alert_keys(&records);
    causes.extend(
        texts(
            &client,
            "SELECT alert_type || ':' || product_id || ':'
                 || to_char(triggered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM restock_alerts",
        )
        .await?,
    );
    causes.sort();
    assert!(!causes.is_empty(), "the flow raised no alert");
    assert_eq!(
        texts(&client, "SELECT alert_key FROM alerts ORDER BY 1").await?,
        causes
    );
    let unpublished = texts(
        &client,
        "SELECT alert_key FROM alerts WHERE published_at IS NULL",
    )
    .await?;
    assert!(unpublished.is_empty(), "not published: {unpublished:?}");
    let topic = stack.topic(Topic::Alerts);
    let bootstrap = stack.bootstrap_servers.clone();
    let expected = causes.len();
    let published =
        tokio::task::spawn_blocking(move || read_keys(&bootstrap, &topic, expected)).await??;
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for key in &published {
        *times.entry(key).or_default() += 1;
    }
    assert_eq!(
        times.keys().copied().collect::<Vec<_>>(),
        causes.iter().map(String::as_str).collect::<Vec<_>>(),
        "alerts-topic holds every alert and nothing else"
    );
    // Once each. The one exception: the SIGKILL may land between a delivery and its mark, and
    // those alerts (unmarked when it landed) are produced again after the restart.
    for (key, n) in times {
        assert!(
            n == 1 || (n == 2 && unmarked.contains(key)),
            "{key} published {n} times"
        );
    }
    Ok(())
}

/// The alert_key of every message of `topic`, read from the start until `expected` arrived
/// and nothing more comes for 2 s (at most 60 s).
fn read_keys(bootstrap: &str, topic: &str, expected: usize) -> Result<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut keys = Vec::new();
    let mut quiet_since = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(message) => {
                let message = message?;
                let value: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap_or_default())?;
                keys.push(value["alert_key"].as_str().unwrap_or_default().to_owned());
                quiet_since = Instant::now();
            }
            None if keys.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => {
                break
            }
            None => {}
        }
    }
    Ok(keys)
}
