//! The realtime metrics against oracles: after a flow with a kill -9, a restart and a second
//! instance joining, every metric table equals the same aggregate recounted from scratch with
//! SQL over the raw tables, and the anomalies are exactly the events over the thresholds.

mod common;

use anyhow::Result;
use common::{assert_metrics_match_recounts, produce_events, run, stream, wait_for_rows};
use globalmart_testkit::TestStack;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_equal_sql_recounts_after_a_kill_9_a_restart_and_a_second_instance() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = produce_events(&stack, 20_000).await?;
    let client = stack.realtime_client().await?;

    let mut victim = stream(&stack).env("STREAM_BATCH_SIZE", "500").spawn()?;
    wait_for_rows(&client, "cart_events").await?;
    // SIGKILL of the process this test started, by its pid.
    victim.kill()?;
    victim.wait()?;
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
    assert_metrics_match_recounts(&client).await?;
    let high_value: i64 = client
        .query_one("SELECT count(*) FROM high_value_anomalies", &[])
        .await?
        .get(0);
    assert_eq!(high_value, anomalies as i64);
    Ok(())
}
